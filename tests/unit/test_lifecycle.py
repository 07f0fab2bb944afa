"""Components start in order, stop in reverse (every stop, then every join), report health."""

import threading

import pytest

from daebus.service.lifecycle import Lifecycle


class Part:
    def __init__(self, name, journal, *, start_result=None, fail=False, busy=False, problem=None):
        self.name, self.journal = name, journal
        self.start_result, self.fail, self.busy, self.problem = start_result, fail, busy, problem

    def start(self, app):
        self.journal.append(("start", self.name, app))
        if self.fail:
            raise OSError("port in use")
        return self.start_result

    def stop(self):
        self.journal.append(("stop", self.name))

    def join(self, timeout):
        self.journal.append(("join", self.name))
        return not self.busy

    def health(self):
        return self.problem


class Bare:
    """A component with only the methods it needs."""

    def __init__(self, journal):
        self.journal = journal

    def stop(self):
        self.journal.append(("stop", "bare"))


def test_start_in_order_then_stop_all_before_joining_in_reverse():
    journal = []
    lifecycle = Lifecycle([Part("pool", journal), Bare(journal), Part("http", journal)])
    assert lifecycle.start("app", threading.Event())
    assert lifecycle.stop(1.0) == []
    assert journal == [("start", "pool", "app"), ("start", "http", "app"),
                       ("stop", "http"), ("stop", "bare"), ("stop", "pool"),
                       ("join", "http"), ("join", "pool")]


def test_a_failed_start_raises_and_only_started_parts_are_stopped():
    journal = []
    lifecycle = Lifecycle([Part("pool", journal), Part("http", journal, fail=True), Part("late", journal)])
    with pytest.raises(OSError):
        lifecycle.start("app", threading.Event())
    lifecycle.stop(1.0)
    assert ("start", "late", "app") not in journal and ("stop", "http") not in journal
    assert ("stop", "pool") in journal


def test_start_ends_early_when_asked_to_stop():
    journal, stopping = [], threading.Event()
    reader = Part("reader", journal, start_result=False)
    lifecycle = Lifecycle([reader, Part("after", journal)])
    assert lifecycle.start("app", stopping) is False
    stopping.set()
    assert Lifecycle([Part("never", journal)]).start("app", stopping) is False
    assert [entry[1] for entry in journal] == ["reader"]


def test_busy_parts_are_named_and_health_collects_problems():
    journal = []
    slow = Part("handlers", journal, busy=True)
    lifecycle = Lifecycle([Part("ok", journal), Part("reader", journal, problem="silent for 9 s"), slow])
    assert lifecycle.health() == []  # nothing started yet
    lifecycle.start("app", threading.Event())
    assert lifecycle.health() == ["reader: silent for 9 s"]
    assert lifecycle.stop(0.1) == [slow]
    assert lifecycle.health() == []


def test_a_failing_stop_does_not_keep_the_rest_running(caplog):
    journal = []

    class Broken(Part):
        def stop(self):
            raise RuntimeError("boom")

    lifecycle = Lifecycle([Part("first", journal), Broken("broken", journal)])
    lifecycle.start("app", threading.Event())
    lifecycle.stop(1.0)
    assert ("stop", "first") in journal and "stop of broken failed" in caplog.text
