"""Host, Origin, token and CORS checks of a real gateway, and its refusals to start."""

import http.client

import redis
import requests

TOKEN = "s3cret-token-for-tests-0123456789"


def raw_request(gw, method, path, headers, body=b""):
    """A request with exactly these headers (requests would fix the Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_foreign_host_header_is_400(shared_gateway):
    # What a DNS-rebinding page sends: its own name, resolved to 127.0.0.1.
    for path in ("/api/health", "/api/services", "/"):
        status, _, body = raw_request(shared_gateway, "GET", path, {"Host": f"evil.example:{shared_gateway.port}"})
        assert status == 400, path
        assert b"bad_host" in body
    status, _, _ = raw_request(shared_gateway, "GET", "/api/health", {})
    assert status == 400  # no Host at all


def test_loopback_host_names_are_allowed(shared_gateway):
    for host in (f"localhost:{shared_gateway.port}", f"127.0.0.1:{shared_gateway.port}",
                 f"[::1]:{shared_gateway.port}", "LOCALHOST"):
        status, _, _ = raw_request(shared_gateway, "GET", "/api/health", {"Host": host})
        assert status == 200, host


def test_configured_host_is_allowed(start_gateway):
    gw = start_gateway({"allowed_hosts": ["kiosk.local", "127.0.0.1"]})
    assert raw_request(gw, "GET", "/api/health", {"Host": "kiosk.local:8080"})[0] == 200
    assert raw_request(gw, "GET", "/api/health", {"Host": "localhost"})[0] == 400


def test_cross_origin_form_post_is_rejected_and_never_runs(start_gateway, service, redis_url):
    service("gateway_echo.py", "slowpoke")  # a name no other running worker has
    gw = start_gateway()
    host = f"127.0.0.1:{gw.port}"
    form = {"Host": host, "Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = raw_request(gw, "POST", "/api/services/slowpoke/record",
                                  {**form, "Origin": "http://evil.example"}, b"a=1")
    assert status == 403 and b"origin_not_allowed" in body
    # A browser that sends no Origin is still stopped by the content type.
    status, _, body = raw_request(gw, "POST", "/api/services/slowpoke/record", form, b"a=1")
    assert status == 400 and b"bad_content_type" in body
    # text/plain is what a form or a no-cors fetch can send with a JSON-looking body.
    status, _, _ = raw_request(gw, "POST", "/api/services/slowpoke/record",
                               {"Host": host, "Content-Type": "text/plain"}, b"{}")
    assert status == 400
    assert redis.Redis.from_url(redis_url).get("gateway-test:slowpoke:record") is None
    # The same page's own JSON call works and runs once.
    status, _, body = raw_request(gw, "POST", "/api/services/slowpoke/record",
                                  {"Host": host, "Origin": f"http://{host}",
                                   "Content-Type": "application/json"}, b"{}")
    assert status == 200 and body == b'{"result":1}'


def test_cors_is_closed_unless_configured(start_gateway):
    closed = start_gateway()
    response = closed.get("/api/health", headers={"Origin": "http://kiosk.example"})
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers

    opened = start_gateway({"cors_origins": ["http://kiosk.example"]})
    preflight = requests.options(opened.url + "/api/services/echo/echo", timeout=10, headers={
        "Origin": "http://kiosk.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    response = opened.get("/api/health", headers={"Origin": "http://kiosk.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://kiosk.example"
    refused = opened.get("/api/health", headers={"Origin": "http://other.example"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_token_is_required_to_listen_beyond_loopback(start_gateway):
    gw = start_gateway({"bind": "0.0.0.0:0"}, wait=False)
    assert gw.process.wait(30) == 2
    assert "gateway.bind" in gw.log and "token" in gw.log
    assert f"{gw.config}:" in gw.log  # names the file (and line)
    assert "READY=1" not in gw.notify.messages


def test_token_is_required_when_the_command_line_binds_beyond_loopback(start_gateway):
    gw = start_gateway(args=["--bind", "0.0.0.0:0"], wait=False)
    assert gw.process.wait(30) != 0
    assert "beyond loopback" in gw.log
    assert "READY=1" not in gw.notify.messages


def test_with_a_token_it_listens_beyond_loopback(start_gateway):
    gw = start_gateway({"token": TOKEN}, args=["--bind", "0.0.0.0:0"])
    assert "READY=1" in gw.notify.messages


def test_bearer_token_guards_the_api(start_gateway, service):
    service("gateway_echo.py", "guarded")  # a name no other running worker has
    # trust_loopback = false: the test client is local but must be treated as remote.
    gw = start_gateway({"token": TOKEN, "trust_loopback": False, "expose_actions": ["guarded/*"]})
    denied = gw.post("/api/services/guarded/echo", {})
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    assert gw.post("/api/services/guarded/echo", {}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = gw.post("/api/services/guarded/echo", {"x": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.json() == {"result": {"x": 1}}
    assert gw.get("/api/services").status_code == 401
    assert gw.events("news.a").status == 401
    # EventSource can't set headers: the token may come as a parameter.
    stream = gw.events("news.a", query={"access_token": TOKEN})
    assert stream.status == 200
    stream.close()
    assert gw.get("/api/health").status_code == 200  # monitors need no secret


def test_loopback_clients_need_no_token_by_default(start_gateway):
    gw = start_gateway({"token": TOKEN})
    assert gw.get("/api/services").status_code == 200


def test_bad_config_stops_the_start_with_file_and_line(start_gateway):
    gw = start_gateway({"threads": "many"}, wait=False)
    assert gw.process.wait(30) == 2
    line = gw.config.read_text().splitlines().index('threads = "many"') + 1
    assert f"{gw.config}:{line}: gateway.threads: expected an integer, got str 'many'" in gw.log
    assert "Traceback" not in gw.log


def test_a_token_file_open_to_every_user_stops_the_start_with_one_error_entry(start_gateway, tmp_path):
    token = tmp_path / "token"
    token.write_text("0123456789abcdef-secret\n")
    token.chmod(0o644)
    gw = start_gateway({"token_file": str(token)}, wait=False, env={"JOURNAL_STREAM": "auto"})
    assert gw.process.wait(30) == 2
    # Under journald the line is an error entry (priority 3), not gunicorn's info.
    lines = [line for line in gw.log.splitlines() if "token_file" in line]
    assert len(lines) == 1 and lines[0].startswith("<3>daebus-gateway: configuration error:"), gw.log
    assert "open to every user (mode 0644)" in lines[0] and "chmod o-rwx" in lines[0]
    assert "0123456789abcdef-secret" not in gw.log
    assert "READY=1" not in gw.notify.messages
    token.chmod(0o640)
    assert start_gateway({"token_file": str(token)}).get("/api/health").status_code == 200
