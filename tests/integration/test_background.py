"""@app.background on APScheduler and @app.thread, in a running app."""

import logging
import threading
import time

from daebus import Daebus, broadcast


def test_interval_task_runs_at_start_and_repeats(run_app):
    app = Daebus("bg")
    runs = []
    twice = threading.Event()

    @app.background("tick", 0.1, run_at_start=True)
    def tick():
        runs.append(time.monotonic())
        if len(runs) >= 2:
            twice.set()

    run_app(app)
    assert twice.wait(10)


def test_task_never_overlaps_itself(run_app):
    app = Daebus("bg")
    active = []
    peak = []
    done = threading.Event()
    lock = threading.Lock()

    @app.background("slow", 0.05, run_at_start=True)
    def slow():
        with lock:
            active.append(1)
            peak.append(len(active))
        time.sleep(0.3)
        with lock:
            active.pop()
        if len(peak) >= 3:
            done.set()

    run_app(app)
    assert done.wait(15)
    assert max(peak) == 1


def test_failing_task_is_logged_with_its_name_and_keeps_running(run_app, caplog):
    app = Daebus("bg")
    calls = []
    again = threading.Event()

    @app.background("flaky", 0.1, run_at_start=True)
    def flaky():
        calls.append(1)
        if len(calls) >= 2:
            again.set()
        raise RuntimeError("sensor unplugged")

    with caplog.at_level(logging.ERROR, logger="daebus"):
        run_app(app)
        assert again.wait(10)
    assert any("'flaky'" in r.getMessage() and r.exc_info for r in caplog.records)


def test_cron_task_is_scheduled_on_the_next_minute_boundary(run_app):
    app = Daebus("bg")

    @app.background("every_five", cron="*/5 * * * *")
    def every_five():
        pass

    run_app(app)
    job = app._runtime.scheduler._scheduler.get_job("every_five")
    assert job.next_run_time.minute % 5 == 0 and job.next_run_time.second == 0


def test_tasks_can_broadcast_on_the_apps_redis(run_app, redis_server):
    app = Daebus("bg")
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("from_task")
    pubsub.get_message(timeout=5)

    @app.background("announce", 3600, run_at_start=True)
    def announce():
        broadcast.send("from_task", {"ok": True})

    run_app(app)
    message = pubsub.get_message(timeout=10)
    assert message is not None and message["data"] == '{"ok":true}'


def test_thread_sees_running_false_on_stop(run_app):
    app = Daebus("threads")
    ended = threading.Event()

    @app.thread("worker")
    def worker(running):
        while running():
            running.wait(30)
        ended.set()

    thread = run_app(app)
    app.stop()
    thread.join(15)
    assert ended.is_set()
    assert not app.is_running()
