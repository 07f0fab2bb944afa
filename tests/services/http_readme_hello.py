# The README's "Usage / HTTP Endpoints" example, verbatim except for the port,
# which the test chooses.
import sys

from daebus import Daebus, DaebusHttp, response, logger

PORT = int(sys.argv[1])

app = Daebus(__name__)
http = DaebusHttp(port=PORT)

app.attach(http)

@app.route("/hello")
def hello(request):
    name = request.params.get("name", "World")
    logger.info(f"HTTP request from {name}")
    return response.send({"message": f"Hello, {name}!"}, 200)

if __name__ == "__main__":
    app.run(service='web-service')
