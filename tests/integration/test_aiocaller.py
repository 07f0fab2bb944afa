"""AsyncCaller against a real service: results, errors, and a loop that stays free."""

import asyncio
import threading
import time

import pytest
import redis

from daebus import AsyncCaller, ConnectionLost, DaebusCaller, RemoteError, RequestTimeout, ServiceUnavailable


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


class Started:
    """Counts basic.py's "slow_started" broadcasts: the handlers that began."""

    def __init__(self, url):
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe("slow_started")
        self.pubsub.get_message(timeout=5)

    def wait(self, count):
        for _ in range(count):
            assert self.pubsub.get_message(timeout=10) is not None, "the handler never started"

    async def until(self, count):
        await asyncio.get_running_loop().run_in_executor(None, self.wait, count)


def test_results_progress_and_errors(service, redis_url):
    service("basic.py", "svc")

    async def main():
        updates = []

        async def on_progress(update):  # an async callback is awaited
            updates.append(update)

        async with AsyncCaller("svc", redis_url=redis_url) as svc:
            assert (await svc.call("echo", {"a": 1}))["echo"] == {"a": 1}
            await svc.call("progress", {}, on_progress=on_progress)
            with pytest.raises(RemoteError) as caught:
                await svc.call("boom")
            assert caught.value.code == "handler_error"
            with pytest.raises(RequestTimeout):
                await svc.call("slow", {"seconds": 3}, timeout=0.5)
            assert await svc.send_message("news", {"n": 1}) == 0
        return updates

    assert len(run(main())) >= 1


def test_nobody_listening_fails_at_once(redis_url):
    async def main():
        began = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            await AsyncCaller("ghost", redis_url=redis_url, timeout=5).call("x")
        return time.monotonic() - began

    assert run(main()) < 1.0


def test_the_loop_keeps_running_while_calls_wait(service, redis_url):
    service("basic.py", "svc")

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        async with AsyncCaller("svc", redis_url=redis_url, timeout=10) as svc:
            await asyncio.gather(*(svc.call("slow", {"seconds": 1, "tag": "t"}) for _ in range(5)))
        stop.set()
        await task
        return ticks

    # About 100 ticks in the second the calls waited; a blocked loop gives a handful.
    assert run(main()) > 30


def test_a_cancelled_call_leaves_the_others_working(service, redis_url):
    service("basic.py", "svc")
    started = Started(redis_url)

    async def main():
        async with AsyncCaller("svc", redis_url=redis_url, timeout=10) as svc:
            doomed = asyncio.create_task(svc.call("slow", {"seconds": 2, "tag": "t"}))
            await started.until(1)
            doomed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await doomed
            began = time.monotonic()
            assert (await svc.call("echo", {"b": 2}))["echo"] == {"b": 2}
            return time.monotonic() - began

    assert run(main()) < 1.0


def test_sync_and_async_callers_share_the_reply_subscription(service, redis_url):
    service("basic.py", "svc")
    results = []

    def sync_calls():
        with DaebusCaller("svc", redis_url=redis_url, timeout=10) as caller:
            for i in range(20):
                results.append(caller.send_request("echo", {"s": i})["echo"]["s"])

    async def main():
        thread = threading.Thread(target=sync_calls)
        thread.start()
        async with AsyncCaller("svc", redis_url=redis_url, timeout=10) as svc:
            got = await asyncio.gather(*(svc.call("echo", {"a": i}) for i in range(20)))
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 15)
        return [g["echo"]["a"] for g in got]

    assert run(main()) == list(range(20))
    assert results == list(range(20))


def test_waiting_calls_fail_at_once_when_redis_dies(service, fresh_redis):
    service("basic.py", "svc", url=fresh_redis.url)
    started = Started(fresh_redis.url)

    async def main():
        async with AsyncCaller("svc", redis_url=fresh_redis.url, timeout=20) as svc:
            calls = [asyncio.create_task(svc.call("slow", {"seconds": 10, "tag": "t"})) for _ in range(3)]
            await started.until(3)
            began = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, fresh_redis.stop, True)
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            return time.monotonic() - began, outcomes

    elapsed, outcomes = run(main())
    assert all(isinstance(o, ConnectionLost) for o in outcomes), outcomes
    assert elapsed < 5


def test_a_group_mode_service_gets_its_requests_through_its_stream(service, redis_url, tmp_path):
    log = tmp_path / "handled.log"
    log.touch()
    member = service("member.py", "async_group", env={"DAEBUS_SERVICE_MODE": "group", "MEMBER_LOG": str(log)})
    channel = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    channel.subscribe("async_group")  # a v1 PUBLISH would show up here
    channel.get_message(timeout=5)

    async def main():
        async with AsyncCaller("async_group", redis_url=redis_url, timeout=10) as group:
            return await asyncio.gather(*(group.call("record", {}) for _ in range(10)))

    answers = run(main())
    assert [a["pid"] for a in answers] == [member.process.pid] * 10
    assert len(log.read_text().splitlines()) == 10  # each handled exactly once
    assert redis.Redis.from_url(redis_url).exists("daebus:stream:async_group")
    assert channel.get_message(timeout=0.5) is None  # sent with XADD, not published
