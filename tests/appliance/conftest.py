"""The appliance checks run in order against one booted bookworm root.

Each check is a step of one story (install, run, break, upgrade, purge), so
a failed step makes the ones after it in the same file (one story per
file: amd64, arm64) fail at once, as "not run", instead
of burying the cause under follow-on errors, unless it is marked
``independent`` (it only looks, or cleans up after itself). Every step prints its duration as it ends, and the
summary repeats them.
"""

from __future__ import annotations

import contextlib
import time

import pytest

_steps: list[dict] = []  # name, took, ok, test
_current: dict[str, str] = {"test": ""}
_FAILED = pytest.StashKey[dict]()  # test file -> its first failed step


class Steps:
    """``with steps("install the .deb") as step: ...`` prints the step and its
    duration; what the step measured goes in ``step["figures"]`` (a string)
    and is printed with it and in the summary."""

    def __init__(self, config):
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.capture = config.pluginmanager.get_plugin("capturemanager")

    def _say(self, text: str, end: bool) -> None:
        if self.reporter is None:
            return
        # Straight to the terminal, past output capturing, so a long step
        # shows while it runs.
        with self.capture.global_and_fixture_disabled() if self.capture else contextlib.nullcontext():
            if end:
                self.reporter.write_line(text)
            else:
                self.reporter.ensure_newline()
                self.reporter.write(text, flush=True)

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.monotonic()
        self._say(f"appliance: {name} ... ", end=False)
        step = {"name": name, "took": 0.0, "ok": False, "test": _current["test"], "figures": ""}
        try:
            yield step
            step["ok"] = True
        finally:
            step["took"] = time.monotonic() - start
            _steps.append(step)
            figures = f"; {step['figures']}" if step["figures"] else ""
            self._say(f"{'done' if step['ok'] else 'FAILED'} ({step['took']:.1f} s{figures})", end=True)


@pytest.fixture(scope="session")
def steps(request) -> Steps:
    return Steps(request.config)


def pytest_configure(config):
    config.addinivalue_line("markers", "independent: an appliance step whose failure "
                                       "doesn't stop the steps after it")


def pytest_runtest_setup(item):
    _current["test"] = item.nodeid
    failed = item.session.stash.get(_FAILED, {}).get(item.path)
    if failed is not None:
        # Not a skip: a step that could not run has not passed.
        pytest.fail(f"not run: the earlier appliance step {failed} failed", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when == "call":
        _keep_journals(item, report)
    if report.failed:
        # A step whose action went through but whose checks failed.
        for step in _steps:
            if step["test"] == item.nodeid:
                step["ok"] = False
        if item.get_closest_marker("independent") is None:
            item.session.stash.setdefault(_FAILED, {}).setdefault(item.path, item.name)


def _keep_journals(item, report) -> None:
    # The container's journal says what the step's output does not (which
    # unit failed, what it logged); the container is gone by the next run.
    from appliance.nspawn import Container

    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Container):
            path = value.save_journal(item.name)
            if path is not None:
                report.sections.append(("container journal", f"kept in {path}"))


def pytest_terminal_summary(terminalreporter):
    if not _steps:
        return
    terminalreporter.section("appliance steps")
    for step in _steps:
        figures = f"  [{step['figures']}]" if step["figures"] else ""
        terminalreporter.write_line(f"{step['took']:7.1f} s  {'ok    ' if step['ok'] else 'FAILED'}  "
                                    f"{step['name']}{figures}")
    terminalreporter.write_line(f"{sum(step['took'] for step in _steps):7.1f} s  total")
