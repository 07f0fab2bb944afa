"""The plain example: a private Redis, the example service and a caller.

Run it with ``python -m examples.run`` from the repository (``./dev run``
starts the kiosk demo instead, see docs/kiosk_demo.md).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from kiosk_demo.launch import start_redis, start_service

HERE = Path(__file__).resolve().parent


def main() -> int:
    redis_url, stop_redis = start_redis()
    os.environ["DAEBUS_REDIS_URL"] = redis_url
    service = start_service(HERE / "hello_service.py", redis_url)
    try:
        from examples import hello_caller
        hello_caller.main()
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(15)
        print(f"my_service stopped with exit code {code}")
        stop_redis()
    return code


if __name__ == "__main__":
    sys.exit(main())
