"""The README's HTTP examples, run as services (tests/services/http_readme_*.py)."""

import json
import time

import requests
from support import free_port

from daebus import DaebusCaller


def url(port, path):
    return f"http://127.0.0.1:{port}{path}"


def test_adding_http_endpoints_example(service):
    port = free_port()
    svc = service("http_readme_endpoints.py", str(port))
    before = time.time()
    r = requests.get(url(port, "/status"), timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert (body["service"], body["status"]) == ("my_service", "running")
    assert before - 5 < body["timestamp"] < time.time() + 5
    r = requests.get(url(port, "/devices/123"), timeout=10)
    assert (r.status_code, r.json()) == (200, {"device_id": "123", "status": "online"})
    r = requests.get(url(port, "/devices/999"), timeout=10)
    assert (r.status_code, r.json()) == (404, {"error": "Device not found"})
    r = requests.post(url(port, "/control"), json={"command": "reboot"}, timeout=10)
    assert (r.status_code, r.json()) == (201, {"success": True, "message": "Command received"})
    assert requests.get(url(port, "/control"), timeout=10).status_code == 405
    assert svc.stop() == 0


def test_protocol_specific_example_serves_http_and_pubsub(service, redis_url):
    port = free_port()
    service("http_readme_protocol.py", str(port))
    expected = {"service": "my_service", "status": "healthy", "uptime": 3600}
    r = requests.get(url(port, "/status"), timeout=10)
    assert (r.status_code, r.json()) == (200, expected)
    with DaebusCaller("my_service", redis_url=redis_url) as caller:
        assert caller.send_request("get_status", {}) == expected


def test_direct_access_to_classes_example(service):
    port = free_port()
    service("http_readme_advanced.py", str(port))
    r = requests.get(url(port, "/advanced"), timeout=10)
    assert (r.status_code, r.json()) == (200, {"message": "Custom HTTP response", "path": "/advanced"})


def test_usage_hello_example(service):
    port = free_port()
    svc = service("http_readme_hello.py", str(port))
    assert requests.get(url(port, "/hello"), timeout=10).json() == {"message": "Hello, World!"}
    assert requests.get(url(port, "/hello?name=Ada"), timeout=10).json() == {"message": "Hello, Ada!"}
    assert svc.stop() == 0
    assert "HTTP request from Ada" in svc.log


def test_cors_example(service):
    port = free_port()
    service("http_readme_cors.py", str(port))
    r = requests.options(url(port, "/api/data"), timeout=10, headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert r.headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Max-Age"] == "3600"

    r = requests.get(url(port, "/api/data"), headers={"Origin": "https://example.com"}, timeout=10)
    assert (r.status_code, r.json()) == (200, {"data": "example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Expose-Headers"] == "X-Custom-Header"
    assert "Origin" in r.headers["Vary"]

    r = requests.get(url(port, "/api/data"), headers={"Origin": "https://evil.example"}, timeout=10)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.options(url(port, "/api/data"), timeout=10, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.options(url(port, "/api/data"), timeout=10, headers={
        "Origin": "https://example.com", "Access-Control-Request-Method": "DELETE"})
    assert r.status_code == 403 and "DELETE" in r.json()["error"]["message"]


def test_cors_configured_after_initialization_example(service):
    port = free_port()
    service("http_readme_cors_configure.py", str(port))
    r = requests.options(url(port, "/api/data"), timeout=10, headers={
        "Origin": "http://anything.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-token"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert r.headers["Access-Control-Allow-Headers"] == "x-token"
    assert "Access-Control-Allow-Credentials" not in r.headers
    r = requests.get(url(port, "/api/data"), headers={"Origin": "http://anything.example"}, timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(r.content) == {"data": "example"}
