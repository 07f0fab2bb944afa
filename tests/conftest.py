import os

import pytest

from leftovers import Leftovers
from support import ManagedProcess, RedisServer, SentinelCluster, Service

# Before anything makes a folder or starts a process: see tests/leftovers.py.
_leftovers = Leftovers()
_leftovers.install()

# Tests must not read the machine's /etc/daebus.
os.environ["DAEBUS_CONFIG"] = "/nonexistent/daebus.toml"
os.environ.pop("DAEBUS_REDIS_URL", None)
# Tests that read a service's stderr lines must get them on a machine that runs
# journald too; tests of the journal bind a socket of their own and say so.
os.environ["DAEBUS_JOURNAL_SOCKET"] = "/nonexistent/daebus-test/journal-socket"


# How much of each child's log a failure report shows (its end).
PROCESS_LOG_TAIL = 4000


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the run: no folder in the temp directory, no process of the run's."""
    yield
    problems = _leftovers.check()
    if problems:
        pytest.fail("the test run left things behind:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def finished_processes_released():
    yield
    ManagedProcess.release_finished()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A failure that happened inside a child (a gateway, a worker) is told by
    # its log: each one still held when the test failed is added to the report.
    # (hookwrapper, not wrapper: Debian's pluggy is older.)
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for process in ManagedProcess.made:
            tail = process.log[-PROCESS_LOG_TAIL:]
            if tail:
                report.sections.append((f"log of {process.name} (pid {process.process.pid})", tail))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    # Before the teardown: the last test's ends the session, and its check.
    _leftovers.after(item.nodeid)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


@pytest.fixture
def fresh_redis():
    """A private server a test may stop, kill and restart."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def sentinel_cluster():
    """A master, a replica and three sentinels on loopback."""
    cluster = SentinelCluster()
    yield cluster
    cluster.close()


@pytest.fixture
def service(redis_url):
    """Start ``tests/services/<script>`` and wait for its READY=1."""
    started = []

    def start(script, *args, url=None, **kwargs):
        svc = Service(script, url or redis_url, *args, **kwargs)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.close()


@pytest.fixture
def run_app(redis_url):
    """Run an app in a thread against the private Redis until the test ends."""
    import threading

    running = []

    def start(app, service="inproc", **kwargs):
        kwargs.setdefault("redis_url", redis_url)
        errors = []

        def target():
            try:
                app.run(service=service, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - surfaced by the test
                errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        running.append((app, thread))
        if not app.wait_ready(15):
            raise AssertionError(f"app did not become ready: {errors}")
        return thread

    yield start
    for app, thread in running:
        app.stop()
        thread.join(15)


@pytest.fixture(scope="module")
def acl_bus():
    """A Redis locked by the rendered ACL: workers ``basic`` (listening to
    ``test_events``) and ``other``, a gateway exposing ``test_events``; see
    tests.support.AclBus."""
    from daebus.security.acl import Worker

    from support import AclBus

    bus = AclBus([Worker("basic", "basic", listen=("test_events",)), Worker("other", "other")],
                 gateway_channels=("test_events",)).start()
    yield bus
    bus.close()
