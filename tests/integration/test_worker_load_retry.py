"""A worker whose code fails to import waits, ever longer, and tries again
in place: one traceback, then one line per try, systemd told it is up and
why it waits, and it heals once its code is fixed."""

from __future__ import annotations

import re
import time

import sys

from daebus import DaebusCaller
from daebus.service import loadretry
from support import ManagedProcess, child_env

BROKEN = "import no_such_module_for_daebus_tests\n"
FIXED = """
from daebus import Daebus

app = Daebus("healed")


@app.action("ping")
def ping():
    return {"pong": True}
"""


def test_an_import_failure_is_retried_later_and_heals(tmp_path, redis_url):
    code = tmp_path / "healing.py"
    code.write_text(BROKEN)
    (tmp_path / "healing.toml").write_text(f'app = "{code}"\n')
    worker = ManagedProcess([sys.executable, "-m", "daebus.cli", "worker", "healing"],
                            child_env(redis_url, {"DAEBUS_WORKERS_DIR": str(tmp_path)}), name="worker")
    try:
        # Up at once (a start never waits for a broken worker), saying why.
        assert worker.notify.wait_for("READY=1", 15), worker.log
        first = time.monotonic()
        status = worker.notify.last("STATUS=")
        assert status.startswith(f"{loadretry.STATUS_PREFIX} {code}"), status
        assert "ModuleNotFoundError: No module named 'no_such_module_for_daebus_tests'" in status
        assert "next try in 5 s" in status
        # The second try, in place (same pid), is one line and waits twice as long.
        assert worker.notify.wait_for("READY=1", 15, count=2), worker.log
        second = time.monotonic()
        assert "next try in 10 s" in worker.notify.last("STATUS=")
        assert worker.running
        code.write_text(FIXED)
        # The next try (10 s on) loads it: READY=1 from the service itself.
        assert worker.notify.wait_for("READY=1", 20, count=3), worker.log
        with DaebusCaller("healing", redis_url=redis_url, timeout=10) as caller:
            assert caller.send_request("ping", {}) == {"pong": True}
        log = worker.log
    finally:
        worker.stop()
        worker.close()
    assert 4.0 <= second - first <= 8.0, second - first
    assert log.count("Traceback") == 1, log
    assert re.search(r"loading \S+healing.py failed again \(2 times in a row\): ModuleNotFoundError", log), log
