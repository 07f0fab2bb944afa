"""The gateway as the ``gateway`` user of a locked bus: it calls a worker,
relays its broadcasts (kept for replay) and reads the registry, under the
ACL file daebus renders; a wrong password stops it with one clear line."""

from __future__ import annotations

from support import Service

CONFIG = {"expose_actions": ["basic/*"], "expose_channels": ["test_events"]}


def test_the_gateway_serves_under_its_own_identity(acl_bus, start_gateway):
    basic = Service("basic.py", acl_bus.url, "basic", env=acl_bus.env("worker:basic"))
    try:
        gw = start_gateway(CONFIG, url=acl_bus.url, env=acl_bus.env("gateway"), expose=False)
        response = gw.post("/api/services/basic/echo", {"a": 1})
        assert response.status_code == 200, (response.text, gw.log)
        assert response.json()["result"]["echo"] == {"a": 1}
        assert "basic" in [s["name"] for s in gw.get("/api/services").json()["services"]]
        stream = gw.events("test_events")
        stream.wait_status("up")
        # The worker's broadcast, written to the kept stream under its identity.
        assert gw.post("/api/services/basic/announce", {"n": 7}).status_code == 200
        message = stream.next_message(timeout=5)
        assert message["channel"] == "test_events" and message["data"]["n"] == 7
        # (basic.py's listener writes a key outside its prefix and is refused: not the gateway's concern.)
        assert "NOPERM" not in gw.log, gw.log
    finally:
        basic.stop()
        basic.close()


def test_a_gateway_refused_by_redis_says_so_once(acl_bus, start_gateway, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong\n")
    wrong.chmod(0o600)
    env = {"DAEBUS_REDIS_USERNAME": "gateway", "DAEBUS_REDIS_PASSWORD_FILE": str(wrong)}
    gw = start_gateway(CONFIG, url=acl_bus.url, env=env, expose=False, wait=False)
    gw.wait_ready()
    response = gw.post("/api/services/basic/echo", {})
    assert response.status_code == 403 and response.json()["error"]["code"] == "access_denied", response.text
    errors = [line for line in gw.log.splitlines() if "ERROR" in line and "Redis refused" in line]
    assert len(errors) == 1 and "WRONGPASS" in errors[0], gw.log
    assert "Traceback" not in gw.log, gw.log
