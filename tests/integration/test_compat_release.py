"""Today's callers and services against Daebus 0.0.31 as published.

The wire format is v1 on both sides; what today's code adds (the cancel
message of a call given up, request ids in logs) must change nothing for a
0.0.31 peer: it answers today's caller, and today's service answers it.
"""

import json
import subprocess
import sys
import time

import pytest

import compat
from daebus import DaebusCaller, RequestTimeout
from support import SERVICES, child_env, wait_until


@pytest.fixture
def old_service(redis_server):
    """A 0.0.31 service named ``old-basic`` (tests/services/old_basic.py)."""
    process = subprocess.Popen([sys.executable, str(SERVICES / "old_basic.py"), "old-basic",
                                str(redis_server.port)], env=compat.env(child_env(redis_server.url)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = redis_server.client()

    def serving() -> bool:
        # 0.0.31 sends no READY=1: its subscription to its channel is what shows it serves.
        if process.poll() is not None:
            raise AssertionError(f"the 0.0.31 service did not start:\n{process.communicate()[0]}")
        return client.pubsub_numsub("old-basic")[0][1] >= 1

    try:
        wait_until(serving, 20, "the 0.0.31 service's subscription")
    except AssertionError:
        process.kill()
        process.communicate(timeout=10)
        raise
    yield process
    process.kill()
    process.communicate(timeout=10)


def test_a_0_0_31_service_answers_todays_caller_and_ignores_its_cancel(redis_server, old_service):
    caller = DaebusCaller("old-basic", redis_url=redis_server.url, timeout=10)
    assert caller.send_request("echo", {"x": 1}) == {"echo": {"x": 1}}
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        caller.send_request("slow", {"seconds": 2}, timeout=0.5)
    assert time.monotonic() - started < 1.5, "the cancel held up the caller of a 0.0.31 service"
    # The cancel it cannot read changed nothing: it finishes the slow call and answers again.
    assert caller.send_request("echo", {"after": True}) == {"echo": {"after": True}}
    assert old_service.poll() is None


def test_todays_service_answers_a_0_0_31_caller(redis_server, service):
    service("basic.py", "basic")
    code = (f"from daebus import DaebusCaller\n"
            f"caller = DaebusCaller('basic', redis_host='127.0.0.1', redis_port={redis_server.port}, timeout=10)\n"
            "print(json.dumps(caller.send_request('echo', {'x': 1})))\n"
            "try:\n    caller.send_request('slow', {'seconds': 1}, timeout=0.3)\n"
            "except TimeoutError:\n    print('timed out')\n"
            "print(json.dumps(caller.send_request('echo', {'after': True})))\n"
            "caller.close()\n")
    out = compat.run("import json\n" + code, child_env(redis_server.url))
    assert out.returncode == 0, out.stdout + out.stderr
    first, timed_out, after = out.stdout.splitlines()[-3:]
    assert json.loads(first)["echo"] == {"x": 1}
    assert timed_out == "timed out"
    assert json.loads(after)["echo"] == {"after": True}
