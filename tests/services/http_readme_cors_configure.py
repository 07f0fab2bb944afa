# The README's CORS example with its "configure CORS after initialization"
# alternative un-commented; otherwise as http_readme_cors.py.
import sys

from daebus import Daebus, DaebusHttp, response

PORT = int(sys.argv[1])

app = Daebus(__name__)

# Alternatively, configure CORS after initialization
http = DaebusHttp(port=PORT)
http.configure_cors({
    'allowed_origins': '*',  # Allow all origins
    'allowed_methods': ['GET', 'POST'],
    'allowed_headers': '*',  # Allow all headers
})
app.attach(http)

@app.route("/api/data")
def get_data(req):
    # This endpoint will now include CORS headers in the response
    return response.send({"data": "example"}, 200)

app.run(service="cors_service")
