"""daebus.js's ``call(..., {signal})`` in Chromium: aborting the call
cancels the handler on the service (the gateway sees the fetch's connection
close), with and without a progress stream."""

from __future__ import annotations

import sys

import pytest
from support import HandlerReports, ManagedProcess, RedisServer, Service, child_env, free_port

from gateway.settings import render

# From the abort to the handler's CancelledError: the browser closes the
# socket, the gateway hears it (epoll) and publishes the cancel.
BOUND_MS = 500


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cancel")
    server = RedisServer().start()
    worker = gateway = None
    try:
        worker = Service("cancellable.py", server.url)
        port = free_port()
        site = workdir / "site"   # empty: the gateway's built-in page
        site.mkdir()
        config = workdir / "gateway.toml"
        config.write_text(render(server.url, {"bind": f"127.0.0.1:{port}", "static_dir": str(site),
                                              "expose_actions": ["cancellable/*"], "max_timeout": 30.0}))
        gateway = ManagedProcess([sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf",
                                  "gateway.wsgi:app"], child_env(server.url, {"DAEBUS_CONFIG": str(config)}),
                                 name="gateway", log_path=workdir / "gateway.log")
        gateway.wait_ready(30)
        yield server, f"http://127.0.0.1:{port}"
    finally:
        for process in (gateway, worker):
            if process is not None:
                process.close()
        server.close()


@pytest.fixture
def reports(stack):
    server, _ = stack
    watched = HandlerReports(server.client(), "cancel.events")
    yield watched
    watched.close()


@pytest.fixture
def tab(browser_context, stack):
    _, url = stack
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.evaluate("async () => { window.daebus = await import('/daebus.js'); }")
    yield page
    page.close()
    assert errors == [], f"script errors on the page: {errors}"


ABORTED_CALL = """async ([action, tag, progress]) => {
    const controller = new AbortController();
    const options = {timeout: 30, signal: controller.signal};
    if (progress) options.onProgress = () => {};
    const pending = daebus.call("cancellable", action, {tag, seconds: 10}, options);
    let abortedAt = null;
    setTimeout(() => { abortedAt = Date.now(); controller.abort(); }, 200);
    try {
        await pending;
        return {code: "resolved", abortedAt};
    } catch (err) {
        return {code: err.code, abortedAt};
    }
}"""


@pytest.mark.parametrize("action, progress", [("nap", False), ("pulse", True)])
def test_a_call_aborted_after_200_ms_cancels_the_async_handler(tab, reports, action, progress):
    tag = f"page-{action}"
    got = tab.evaluate(ABORTED_CALL, [action, tag, progress])
    assert got["code"] == "aborted"
    started = reports.wait("started", tag)
    cancelled = reports.wait("cancelled", tag)
    assert cancelled["reason"] == "disconnected"
    assert started["at"] * 1000 < got["abortedAt"]
    assert 0 <= cancelled["at"] * 1000 - got["abortedAt"] < BOUND_MS, cancelled["at"] * 1000 - got["abortedAt"]
