"""Config sources reaching a real service, and the service registry."""

from daebus import DaebusCaller, list_services
from daebus.ops import config
from support import RedisServer


def test_service_uses_the_url_from_the_config_file(service, redis_server, tmp_path):
    conf = tmp_path / "daebus.toml"
    conf.write_text(f'[redis]\nurl = "unix://{redis_server.unix_socket}?db=3"\n')
    service("basic.py", "basic", url="", env={"DAEBUS_CONFIG": str(conf), "DAEBUS_REDIS_URL": ""})
    with DaebusCaller("basic", redis_url=f"unix://{redis_server.unix_socket}") as caller:
        # Nothing listens on the default localhost:6379: only the file's URL can work.
        assert caller.send_request("echo", {"via": "unix"})["echo"] == {"via": "unix"}


def test_password_in_url():
    server = RedisServer(password="s3cret").start()
    try:
        from support import Service
        svc = Service("basic.py", server.url, "basic")
        try:
            with DaebusCaller("basic", redis_url=server.url) as caller:
                assert caller.send_request("echo", {})["echo"] == {}
            assert "s3cret" not in svc.log
        finally:
            svc.close()
    finally:
        server.close()


def test_bad_config_file_is_one_line_and_exit_code_2(service, tmp_path):
    conf = tmp_path / "daebus.toml"
    conf.write_text('[service]\nshutdown_timeout = 3\nqueue_sise = 4\n')
    svc = service("basic.py", "basic", env={"DAEBUS_CONFIG": str(conf)}, wait=False)
    assert svc.wait(15) == 2
    assert svc.log.strip() == (f"basic: configuration error: {conf}:3: unknown key 'queue_sise' in "
                               f"[service] (known: {', '.join(config.SERVICE.keys)})")


def test_registry_lists_running_services_and_forgets_them_on_exit(service, redis_server):
    client = redis_server.client()
    svc = service("basic.py", "registered")
    [info] = [s for s in list_services(client) if s["name"] == "registered"]
    assert info["pid"] == svc.process.pid and info["status"] == "running"
    assert "echo" in info["actions"] and info["channels"] == ["test_events"]
    assert 0 < client.ttl("daebus:service:registered") <= 15
    svc.stop()
    assert [s for s in list_services(client) if s["name"] == "registered"] == []


def test_host_and_port_arguments(run_app, redis_server):
    from daebus import Daebus
    app = Daebus("hostport")
    app.action("ping")(lambda: "pong")
    run_app(app, service="hostport", redis_url=None, redis_host="127.0.0.1", redis_port=redis_server.port)
    with DaebusCaller("hostport", redis_host="127.0.0.1", redis_port=redis_server.port) as caller:
        assert caller.send_request("ping") == "pong"
