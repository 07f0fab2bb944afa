"""HTTP endpoints inside a Daebus service, on the standard library only.

Example::

    from daebus import Daebus, DaebusHttp, response

    app = Daebus(__name__)
    app.attach(DaebusHttp(port=8080))

    @app.route("/status")
    def status(req):
        return response.send({"status": "running"}, 200)
"""

from .cors import CorsPolicy
from .messages import HttpRequest, HttpResponse
from .routing import Router, Rule
from .server import DaebusHttp
from .wire import Headers, HttpError

__all__ = ["CorsPolicy", "DaebusHttp", "Headers", "HttpError", "HttpRequest", "HttpResponse",
           "Router", "Rule"]
