"""A bounded queue: a flood gets replies or 'busy', never silence."""

import concurrent.futures

from daebus import DaebusCaller, ServiceBusy


def test_flood_on_one_worker_ends_every_request(service, redis_url):
    service("basic.py", "basic", env={"TEST_MAX_WORKERS": "1", "DAEBUS_QUEUE_SIZE": "2"})
    caller = DaebusCaller("basic", redis_url=redis_url)

    def call(i):
        try:
            caller.send_request("slow", {"seconds": 0.2, "tag": i}, timeout=30)
            return "ok"
        except ServiceBusy as exc:
            assert exc.code == "busy"
            return "busy"

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(call, range(20)))
    assert len(outcomes) == 20
    # The service's own listener jobs may hold a slot too, so only "some of each".
    assert outcomes.count("ok") >= 1 and outcomes.count("busy") >= 1
    assert set(outcomes) <= {"ok", "busy"}


def test_request_whose_caller_gave_up_is_skipped(service, redis_url):
    svc = service("basic.py", "basic", env={"TEST_MAX_WORKERS": "1", "DAEBUS_LOG_LEVEL": "debug"})
    caller = DaebusCaller("basic", redis_url=redis_url)
    caller.send_to_service({"seconds": 1}, action="slow")  # occupies the only worker
    try:
        caller.send_request("echo", {"late": True}, timeout=0.2)
    except TimeoutError:
        pass
    # Once the worker is free again it sees the expired request and skips it.
    caller.send_request("echo", {}, timeout=30)
    assert "skipped 'echo' request" in svc.log
