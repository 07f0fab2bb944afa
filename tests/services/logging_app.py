"""A service that may configure logging itself (argv[1] == "own")."""

import logging
import sys

from daebus import Daebus, logger

if len(sys.argv) > 1 and sys.argv[1] == "own":
    logging.basicConfig(level=logging.WARNING, format="OWN %(levelname)s %(message)s")

app = Daebus(__name__)


@app.on_start()
def hello():
    logger.debug("debug line")
    logger.info("info line")
    logger.error("error line")


if __name__ == "__main__":
    app.run(service="logs", debug="--debug" in sys.argv)
