"""Cancellation's parts without Redis: the Cancellation object, the cancel
message, a service's registry of cancellable requests, their counters and
the ACL rule that lets a worker hear its cancels (the whole path runs
against a real Redis in tests/integration/test_cancel.py)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from daebus.app.cancellation import Cancellation
from daebus.bus import protocol
from daebus.ops.metrics import ServiceMetrics, merge, parse_snapshot
from daebus.security import acl
from daebus.service import cancels as cancels_module
from daebus.service.cancels import Cancels


def request(reply_to="caller:me", request_id="r1") -> protocol.Request:
    return protocol.parse_request({"action": "scan", "payload": {}, "reply_to": reply_to,
                                   "request_id": request_id})


def cancel_data(reply_to="caller:me", request_id="r1", **extra) -> bytes:
    return json.dumps({"request_id": request_id, "reply_to": reply_to, **extra}).encode()


# -- Cancellation -----------------------------------------------------------------
def test_a_cancellation_is_false_until_cancelled_once_then_true_with_its_reason():
    cancellation = Cancellation()
    assert not cancellation and not cancellation.is_set() and cancellation.reason is None
    assert cancellation.wait(0) is False
    assert cancellation.cancel("timeout") is True
    assert cancellation.cancel("interrupted") is False   # the first reason stays
    assert cancellation and cancellation.is_set() and cancellation.reason == "timeout"
    assert cancellation.wait(0) is True
    assert "timeout" in repr(cancellation)


def test_a_waiting_thread_wakes_when_another_cancels():
    cancellation = Cancellation()
    woke: list = []
    waiter = threading.Thread(target=lambda: woke.append((cancellation.wait(30), time.monotonic())))
    waiter.start()
    time.sleep(0.05)   # let it block (it returns at once anyway if it starts late)
    cancelled_at = time.monotonic()
    cancellation.cancel()
    waiter.join(5)
    assert woke and woke[0][0] is True and woke[0][1] - cancelled_at < 1


def test_callbacks_run_once_a_failing_one_spares_the_others_and_an_undone_one_never_runs(caplog):
    cancellation = Cancellation()
    calls: list = []
    cancellation.on_cancel(lambda reason: 1 / 0)
    cancellation.on_cancel(calls.append)
    undo = cancellation.on_cancel(lambda reason: calls.append("undone"))
    undo()
    cancellation.cancel("disconnected")
    cancellation.cancel("again")
    assert calls == ["disconnected"]
    assert "cancellation callback failed" in caplog.text
    cancellation.on_cancel(calls.append)   # already cancelled: at once
    assert calls == ["disconnected", "disconnected"]


# -- the cancel message ---------------------------------------------------------------
def test_a_cancel_round_trips_and_unknown_reasons_read_as_cancelled():
    sent = protocol.cancel_envelope("r1", "caller:me", "timeout", 1234.9)
    assert protocol.parse_cancel(protocol.loads(protocol.dumps(sent))) == ("r1", "caller:me", "timeout", 1234)
    assert protocol.parse_cancel({"request_id": 7, "reply_to": "c", "reason": "bored"}).reason == "cancelled"
    assert protocol.parse_cancel({"request_id": "r", "reply_to": "c", "remaining_ms": -5}).remaining_ms is None
    assert protocol.parse_cancel({"request_id": "r", "reply_to": "c", "remaining_ms": True}).remaining_ms is None


@pytest.mark.parametrize("message", [
    {"request_id": "r1"}, {"reply_to": "caller:me"}, {"request_id": "r1", "reply_to": ""},
    {"request_id": True, "reply_to": "caller:me"}, {"request_id": "", "reply_to": "caller:me"},
    {"request_id": ["r1"], "reply_to": "caller:me"}, {"request_id": "r1", "reply_to": 5},
])
def test_a_cancel_without_both_ids_is_refused(message):
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_cancel(message)


# -- a service's cancellable requests ----------------------------------------------------
def test_a_cancel_naming_both_ids_of_a_watched_request_sets_its_cancellation():
    cancels = Cancels("svc", keep_early=False)
    message = request()
    cancellation = cancels.watch(message)
    assert cancels.of(message) is cancellation and not cancellation
    cancels.on_published(cancel_data(request_id="r2"))                  # another id
    cancels.on_published(cancel_data(reply_to="caller:forger"))         # another caller's channel
    assert not cancellation and cancels.ignored == 2
    cancels.on_published(cancel_data(reason="interrupted"))
    assert cancellation.reason == "interrupted"
    cancels.forget(message)
    assert cancels.of(message) is None and cancels.watched == 0


def test_a_request_without_a_reply_channel_cannot_be_cancelled():
    cancels = Cancels("svc", keep_early=True)
    message = protocol.parse_request({"action": "scan", "x": 1})   # 0.0.x send_to_service
    assert cancels.watch(message) is None and cancels.watched == 0
    cancels.forget(message)


def test_two_requests_with_the_same_ids_share_one_cancellation_until_both_end():
    cancels = Cancels("svc", keep_early=False)
    first, second = request(), request()
    assert cancels.watch(first) is cancels.watch(second)
    cancels.forget(first)
    assert cancels.of(second) is not None
    cancels.forget(second)
    assert cancels.watched == 0


@pytest.mark.parametrize("data", [b"", b"\xff", b"[]", b"null", b"{", b"[" * 10_000,
                                  cancel_data(pad="x" * cancels_module.MAX_CANCEL_BYTES)])
def test_garbage_on_the_cancel_channel_is_dropped(data, caplog, monkeypatch):
    monkeypatch.setattr(cancels_module._garbage, "_last", {})   # each case logs its line
    cancels = Cancels("svc", keep_early=True)
    cancellation = cancels.watch(request())
    cancels.on_published(data)
    assert not cancellation and cancels.early == 0
    assert "malformed cancel" in caplog.text


def test_an_owner_keeps_no_cancel_of_a_request_it_does_not_hold():
    cancels = Cancels("svc", keep_early=False)
    cancels.on_published(cancel_data())
    assert cancels.early == 0
    assert not cancels.watch(request())


def test_a_group_member_keeps_an_early_cancel_for_the_requests_remaining_time(monkeypatch):
    cancels = Cancels("svc", keep_early=True)
    cancels.on_published(cancel_data(remaining_ms=5000, reason="timeout"))
    assert cancels.early == 1
    cancellation = cancels.watch(request())
    assert cancellation.reason == "timeout" and cancels.early == 0
    # One whose request's time is up by the time it is read is not applied.
    cancels.on_published(cancel_data(request_id="r2", remaining_ms=0))
    assert not cancels.watch(request(request_id="r2"))


def test_a_flood_of_early_cancels_keeps_only_the_newest(monkeypatch):
    monkeypatch.setattr(cancels_module, "MAX_EARLY", 100)
    cancels = Cancels("svc", keep_early=True)
    for n in range(1000):
        cancels.on_published(cancel_data(request_id=f"r{n}"))
    assert cancels.early == 100
    assert not cancels.watch(request(request_id="r0"))       # evicted: at worst it runs
    assert cancels.watch(request(request_id="r999"))


def test_an_early_cancel_is_kept_at_most_an_hour_whatever_it_says():
    cancels = Cancels("svc", keep_early=True)
    cancels.on_published(cancel_data(remaining_ms=10 ** 12))
    [(expires, _)] = cancels._early.values()
    assert expires - time.monotonic() <= cancels_module.EARLY_SECONDS


# -- counters ---------------------------------------------------------------------
def test_cancelled_requests_are_counted_and_merged_and_old_snapshots_still_read():
    metrics = ServiceMetrics(["scan"])
    metrics.cancelled("scan")
    metrics.call("scan", 0.01)
    snapshot = parse_snapshot(metrics.snapshot(uptime=1.0, queued=0, in_flight=0))
    assert snapshot["actions"]["scan"]["cancelled"] == 1
    old = json.loads(metrics.snapshot(uptime=1.0, queued=0, in_flight=0))
    del old["actions"]["scan"]["cancelled"]   # a member of a version that did not count them
    older = parse_snapshot(json.dumps(old))
    assert older["actions"]["scan"]["cancelled"] == 0
    assert merge([snapshot, older, snapshot])["actions"]["scan"]["cancelled"] == 2


# -- the locked bus -------------------------------------------------------------------
def test_a_worker_may_hear_its_own_services_cancels_only():
    rules = acl.worker_rules(acl.Worker("sensors-2", "sensors"))
    assert "&daebus:cancel:sensors" in rules
    assert not [r for r in rules if r.startswith("&daebus:cancel:") and r != "&daebus:cancel:sensors"]
    assert "&daebus:cancel:a\\*b" in acl.worker_rules(acl.Worker("odd", "a*b"))
    assert "(&* +publish)" in acl.gateway_rules() and "(&* +publish)" in rules   # callers may send them
