"""``@app.background`` tasks on APScheduler 3.

Jobs run on daemon threads (a stuck task can't hold the process past the
shutdown bound), never overlap themselves, and log failures with the task's
name. APScheduler is imported only by services that declare tasks.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import sys
import threading
import time

from daebus.app.blueprint import BackgroundTask, is_async
from daebus.app.context import app_context

log = logging.getLogger("daebus.scheduler")


def _executor_class():
    from apscheduler.executors.base import BaseExecutor, run_job

    class DaemonThreadExecutor(BaseExecutor):
        def _do_submit_job(self, job, run_times):
            def target():
                try:
                    events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
                except BaseException:  # noqa: BLE001 - reported to the scheduler like its own executors do
                    self._run_job_error(job.id, *sys.exc_info()[1:])
                else:
                    self._run_job_success(job.id, events)
            threading.Thread(target=target, name=f"daebus-task-{job.id}", daemon=True).start()

    return DaemonThreadExecutor


def _trigger(task: BackgroundTask):
    if task.cron is not None:
        from apscheduler.triggers.cron import CronTrigger
        try:
            return CronTrigger.from_crontab(task.cron)
        except ValueError as exc:
            raise ValueError(f"background task {task.name!r}: bad cron {task.cron!r}: {exc}") from None
    from apscheduler.triggers.interval import IntervalTrigger
    return IntervalTrigger(seconds=task.interval)


class TaskScheduler:
    """Starts and stops an app's background tasks."""

    def __init__(self, app, tasks: list[BackgroundTask], aio=None, metrics=None):
        self.app = app
        self.tasks = tasks
        self.aio = aio  # the app's EventLoop, for async def tasks
        self.metrics = metrics
        self._scheduler = None

    def _wrap(self, task: BackgroundTask):
        def run():
            started = time.monotonic()
            failed = False
            with app_context(self.app):
                try:
                    if is_async(task.fn):
                        from daebus.service.aio import call_in_app
                        # This job thread waits, so a run still never overlaps the previous one.
                        self.aio.run(call_in_app, self.app, task.fn)
                    else:
                        task.fn()
                except concurrent.futures.CancelledError:
                    log.info("background task %r cancelled at shutdown", task.name)
                except Exception:  # noqa: BLE001 - a failing run must not stop the schedule
                    failed = True
                    log.exception("background task %r failed", task.name)
            if self.metrics is not None:
                self.metrics.task(task.name, time.monotonic() - started, failed)
        return run

    def start(self, app=None) -> None:
        if not self.tasks:
            return
        from apscheduler.schedulers.background import BackgroundScheduler
        scheduler = BackgroundScheduler(
            executors={"default": _executor_class()()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        for task in self.tasks:
            extra = {"next_run_time": datetime.datetime.now().astimezone()} if task.run_at_start else {}
            scheduler.add_job(self._wrap(task), _trigger(task), id=task.name, name=task.name, **extra)
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """No new runs; a run in progress finishes in its own thread."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
