"""HTTP endpoints inside a Daebus service, on the standard library only.

Example::

    from daebus import Daebus, DaebusHttp, response

    app = Daebus(__name__)
    app.attach(DaebusHttp(port=8081))

    @app.route("/status")
    def status(req):
        return response.send({"status": "running"}, 200)
"""

from daebus.http.cors import CorsPolicy
from daebus.http.messages import HttpRequest, HttpResponse
from daebus.http.routing import Router, Rule
from daebus.http.server import DaebusHttp
from daebus.http.wire import Headers, HttpError

__all__ = ["CorsPolicy", "DaebusHttp", "Headers", "HttpError", "HttpRequest", "HttpResponse",
           "Router", "Rule"]
