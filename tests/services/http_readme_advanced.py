# The README's "Direct Access to Protocol-Specific Classes" example, verbatim
# except for the import line, the port, which the test chooses, and the
# app.run() the snippet leaves out.
import sys

from daebus import Daebus, DaebusHttp, HttpRequest, HttpResponse, PubSubRequest, PubSubResponse

PORT = int(sys.argv[1])

app = Daebus(__name__)
http = DaebusHttp(port=PORT)
app.attach(http)

# Use HTTP-specific classes directly for advanced customization
@app.route("/advanced")
def advanced_handler(req):
    # Check if we have the right request type
    if not isinstance(req, HttpRequest):
        raise TypeError("Expected an HttpRequest object")

    # Create a custom HTTP response
    custom_response = HttpResponse(None)
    return custom_response.send({
        "message": "Custom HTTP response",
        "path": req.path
    }, 200)

app.run(service="advanced_service")
