# The README's "Protocol-Specific Response Methods" example, verbatim except
# for the import line, the port, which the test chooses, and the app.run()
# the snippet leaves out.
import sys

from daebus import Daebus, DaebusHttp, request, response

PORT = int(sys.argv[1])

app = Daebus(__name__)
http = DaebusHttp(port=PORT)
app.attach(http)

# Shared function for business logic
def get_status_data():
    return {
        "service": "my_service",
        "status": "healthy",
        "uptime": 3600
    }

# HTTP route with HTTP-specific response using response.send
@app.route("/status")
def http_status_handler(req):
    try:
        data = get_status_data()

        # Use response.send() for HTTP responses, with status code
        return response.send(data, 200)
    except Exception as e:
        # HTTP errors with appropriate status codes
        return response.send({"error": str(e)}, 500)

# Redis action handler with pub/sub specific response methods
@app.action("get_status")
def redis_status_handler():
    try:
        data = get_status_data()

        # Use response.success() for Redis responses
        return response.success(data)
    except Exception as e:
        # Redis-specific error handling
        return response.error(e)

app.run(service="my_service")
