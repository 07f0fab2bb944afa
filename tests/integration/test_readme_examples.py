"""The 0.0.x README's examples run unchanged against a real Redis."""

import concurrent.futures
import json

from daebus import DaebusCaller


def test_quick_start_service_and_caller(service, redis_server, redis_url, monkeypatch):
    monkeypatch.setenv("DAEBUS_REDIS_URL", redis_url)
    svc = service("readme_quickstart.py")
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("notifications")
    pubsub.get_message(timeout=5)

    # The README's caller, verbatim.
    caller = DaebusCaller("my_service")

    try:
        # Send a request to a specific action and wait for a response
        response = caller.send_request("get_status", {
            "detail_level": "full"
        })
        print(f"Service status: {response}")

        # Send a restart request
        restart_response = caller.send_request("restart", {
            "mode": "graceful"
        })
        print(f"Restart result: {restart_response}")

        # Send a message to a broadcast channel
        caller.send_message("notifications", {
            "type": "alert",
            "message": "System temperature high"
        })

        # Send a message directly to the service with a specific action
        caller.send_to_service({
            "timestamp": 1625176230,
            "info": "Direct message with action"
        }, action="log_info")
    finally:
        # Clean up resources when done
        caller.close()

    assert response == {"status": "healthy", "uptime": 3600}
    assert restart_response == {"restarted": True}
    assert json.loads(pubsub.get_message(timeout=5)["data"])["type"] == "alert"
    with DaebusCaller("my_service") as check:
        check.send_request("get_status", {})  # everything before it has been handled
    log = svc.log
    assert "Received status request: {'detail_level': 'full'}" in log
    assert "Received notification: {'type': 'alert', 'message': 'System temperature high'}" in log
    assert "log_info got {'timestamp': 1625176230, 'info': 'Direct message with action'}" in log


def test_usage_patterns(service, redis_server, redis_url, monkeypatch):
    monkeypatch.setenv("DAEBUS_REDIS_URL", redis_url)
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("service_started")
    pubsub.get_message(timeout=5)
    svc = service("readme_patterns.py")
    assert json.loads(pubsub.get_message(timeout=5)["data"])["service_name"] == "my-service"
    with DaebusCaller("my-service") as caller:
        assert caller.send_request("hello_world", {"name": "Kiosk"}) == {"message": "Hello, Kiosk!"}
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            counts = list(pool.map(lambda _: caller.send_request("increment", {})["count"], range(50)))
    assert sorted(counts) == list(range(1, 51))
    assert svc.stop() == 0
    assert "Notification sent, response: 1" in svc.log
