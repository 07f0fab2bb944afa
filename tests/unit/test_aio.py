"""async def handlers in-process: TestClient, declaration checks, the event loop component."""

import asyncio
import logging
import threading
import time

import pytest

from daebus import Daebus, RemoteError, broadcast, request, response
from daebus.service.aio import EventLoop
from daebus.app.blueprint import uses_async
from daebus.service.pool import WorkerPool
from daebus.testing import TestClient


def make_app():
    app = Daebus("aio_unit")
    seen = []

    @app.on_start()
    async def hook():
        seen.append("started")

    @app.action("greet", schema={"type": "object", "required": ["name"]})
    async def greet():
        await asyncio.sleep(0)
        response.progress({"step": "thinking"}, 50)

        async def child():
            return request.payload["name"]  # the context follows into tasks

        return {"hello": await asyncio.create_task(child())}

    @app.action("fails")
    async def fails():
        raise ValueError("async failure")

    @app.listen("in")
    async def on_in(payload):
        broadcast.send("out", payload)

    @app.background("tick", 60)
    async def tick():
        seen.append("tick")

    return app, seen


def test_the_test_client_runs_async_handlers():
    app, seen = make_app()
    assert uses_async(app)
    with TestClient(app) as client:
        client.run_start_hooks()
        reply = client.request("greet", {"name": "Ada"})
        assert reply.payload == {"hello": "Ada"}
        assert reply.progress == [{"step": "thinking", "progress_percentage": 50.0}]
        assert client.request("greet", {}).payload["details"][0]["path"] == "$"
        with pytest.raises(RemoteError, match="async failure"):
            client.call("fails")
        client.publish("in", {"a": 1})
        client.run_task("tick")
    assert client.broadcasts == [("out", {"a": 1})]
    assert seen == ["started", "tick"]


def test_sync_apps_need_no_loop():
    app = Daebus("plain")
    app.action("a")(lambda: 1)
    assert not uses_async(app)


def test_threads_and_routes_must_be_plain_functions():
    app = Daebus("bad")

    async def loop(running):
        pass

    with pytest.raises(TypeError, match="not an async def"):
        app.thread("t")(loop)
    with pytest.raises(TypeError, match="not an async def"):
        app.route("/x")(loop)


@pytest.fixture
def event_loop_component():
    loop = EventLoop("unit", limit=2)
    loop.start()
    yield loop
    loop.stop(grace=1.0)


def test_at_most_limit_coroutines_run_at_once(event_loop_component):
    running, peak = [0], [0]

    async def job():
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.05)
        running[0] -= 1

    futures = [event_loop_component.submit(job) for _ in range(6)]
    for future in futures:
        future.result(5)
    assert peak[0] == 2


def test_stop_cancels_what_still_runs(caplog):
    loop = EventLoop("unit", limit=2)
    loop.start()
    cleaned = threading.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    future = loop.submit(forever)
    with caplog.at_level(logging.WARNING, logger="daebus.aio"):
        loop.stop(grace=1.0)
    assert cleaned.is_set() and future.cancelled()
    assert "cancelling 1 async handler(s)" in caplog.text
    with pytest.raises(RuntimeError):
        loop.submit(forever)


def test_a_blocked_loop_is_reported_by_handler_name(event_loop_component, caplog):
    async def hog():
        await asyncio.sleep(0.15)  # the watch is ticking by now
        time.sleep(0.8)

    with caplog.at_level(logging.WARNING, logger="daebus.aio"):
        event_loop_component.submit(hog, name="hog_action").result(5)
        deadline = time.monotonic() + 5
        while "blocked" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
    assert "the event loop was blocked" in caplog.text and "hog_action" in caplog.text


def test_admitted_calls_share_the_pool_bound():
    pool = WorkerPool(1, queue_size=1)
    assert pool.admit() and pool.admit()
    assert not pool.admit()
    assert not pool.join(0.01)
    pool.release()
    pool.release()
    assert pool.join(0.01)
    pool.stop()
    assert not pool.admit()


def test_the_testing_example_of_the_async_docs_passes():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "async.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[-1]
    namespace = {"Daebus": Daebus, "TestClient": TestClient, "asyncio": asyncio, "__name__": "docs_async"}
    exec(block, namespace)  # noqa: S102 - the documentation's own code
    namespace["test_measure"]()
