"""The kiosk demo's real stack for browser tests, and a headless Chromium.

The stack is a private redis-server, the gateway under gunicorn and the three
demo workers, each a subprocess that reports READY=1 on its own notify socket
(as under systemd). The browser is Debian's /usr/bin/chromium driven by
Playwright, with a fresh profile.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from support import ManagedProcess, ROOT, RedisServer, free_port

from daebus import DaebusCaller
from kiosk_demo import launch

CHROMIUM = os.environ.get("KIOSK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "artifacts"
WORKERS = launch.WORKERS
EXPECT_TIMEOUT_MS = 20_000


class DemoProcess(ManagedProcess):
    """The gateway or one worker, with its log kept for failure messages."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path):
        super().__init__(argv, env, name=name, log_path=logdir / f"{name}.log")

    def wait_ready(self, timeout: float = 30) -> None:
        super().wait_ready(timeout)

    def stop(self, timeout: float = 20) -> int:
        try:
            return super().stop(timeout)
        finally:
            self.close()


class KioskStack:
    """Redis, gateway and workers; parts can be stopped and started again."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.redis = RedisServer().start()
        self.port = free_port()
        self.config = workdir / "daebus.toml"
        # A short heartbeat: a stream to a stopped gateway is noticed sooner.
        self.config.write_text(launch.gateway_config(self.redis.url, self.port, heartbeat=2.0))
        self.env = launch.child_env(self.redis.url, self.config)
        self.processes: dict[str, DemoProcess] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _argv(self, name: str) -> list[str]:
        if name == "gateway":
            return [sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf", "gateway.wsgi:app"]
        return [sys.executable, str(launch.HERE / f"{name}.py")]

    def start(self, *names: str) -> None:
        started = []
        for name in names:
            if name in self.processes and self.processes[name].running:
                continue
            started.append(DemoProcess(name, self._argv(name), self.env, self.workdir))
            self.processes[name] = started[-1]
        for process in started:
            process.wait_ready()

    def extra_gateway(self, name: str, gateway: str) -> tuple[DemoProcess, str]:
        """Another gateway on this Redis, configured by the ``[gateway]``
        lines given; returns it (ready) and its URL."""
        port = free_port()
        config = self.workdir / f"{name}.toml"
        config.write_text(f'[redis]\nurl = "{self.redis.url}"\n\n[gateway]\n'
                          f'bind = "127.0.0.1:{port}"\n{gateway}\n')
        process = DemoProcess(name, self._argv("gateway"), launch.child_env(self.redis.url, config),
                              self.workdir)
        process.wait_ready()
        return process, f"http://127.0.0.1:{port}/"

    def stop(self, name: str) -> int:
        return self.processes[name].stop()

    def ensure_running(self) -> None:
        if self.redis.process is None:
            self.redis.start()
        self.start("gateway", *WORKERS)

    def caller(self, service: str) -> DaebusCaller:
        return DaebusCaller(service, redis_url=self.redis.url, timeout=10)

    def close(self) -> None:
        for process in self.processes.values():
            process.close()
        self.redis.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = KioskStack(tmp_path_factory.mktemp("kiosk"))
    try:
        stack.ensure_running()
        yield stack
    finally:
        stack.close()


@pytest.fixture
def kiosk(stack):
    """The stack with every part running (a previous test may have stopped one)."""
    stack.ensure_running()
    with stack.caller("display") as display:
        display.send_request("set_auto", {"enabled": False})
    return stack


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `./dev test` installs it (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: `./dev test` installs the test extra (pip install -e '.[test]')")
    profile = tempfile.mkdtemp(prefix="kiosk-chromium-", dir=tmp_path_factory.getbasetemp())
    with sync_playwright() as playwright:
        # Playwright passes the profile as --user-data-dir itself and refuses
        # it among the arguments.
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 720}, service_workers="block")
        from playwright.sync_api import expect
        expect.set_options(timeout=EXPECT_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context, kiosk):
    """A new tab on the kiosk page that checks, at the end, that the page
    raised no script error and fetched nothing from another origin."""
    tab = browser_context.new_page()
    tab.set_default_timeout(EXPECT_TIMEOUT_MS)
    errors: list[str] = []
    foreign: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("request", lambda req: None if req.url.startswith(kiosk.url) or req.url.startswith("data:")
           else foreign.append(req.url))
    tab.goto(kiosk.url)
    yield tab
    tab.close()
    assert errors == [], f"script errors on the page: {errors}"
    assert foreign == [], f"the page loaded things from elsewhere: {foreign}"


def _wait_live(page) -> None:
    page.wait_for_function("""() => document.body.dataset.connection === 'live'
        && document.getElementById('sensors-card').dataset.stale === 'false'
        && document.querySelectorAll('#services li[data-state=running]').length >= 3""")


@pytest.fixture
def wait_live():
    """``wait_live(page)``: until the page is connected and shows a reading
    and the three services."""
    return _wait_live


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (``artifacts/`` at the top of the repository)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
