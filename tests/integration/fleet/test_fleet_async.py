"""AsyncFleetCaller: the same calls, awaited."""

import asyncio

import pytest

from daebus import RemoteError
from daebus.fleet import AsyncFleetCaller
from support import Service


def test_async_calls_status_and_publish(box_redis, broker, bridge):
    worker = Service("basic.py", box_redis.url, "basic")
    bridge(call_actions=["basic/echo", "basic/progress"], receive_channels=["news.*"])

    async def main():
        async with AsyncFleetCaller(broker.url, "test", timeout=5) as fleet:
            states = await fleet.status()
            assert [s["device"] for s in states] == ["box"]
            outcomes = [o async for o in fleet.call("all", "basic", "echo", {"a": 1})]
            assert [(o.device, o.result["echo"]) for o in outcomes] == [("box", {"a": 1})]
            seen = []
            assert await fleet.call_device("box", "basic", "progress", on_progress=lambda d, p: seen.append(p)) \
                == {"done": True}
            assert seen == [25.0, 50.0, 75.0]
            with pytest.raises(RemoteError) as caught:
                await fleet.call_device("box", "basic", "increment")
            assert caught.value.code == "forbidden"
            silent = [o async for o in fleet.call("nobody", "basic", "echo", timeout=0.5)]
            assert [o.code for o in silent] == ["timeout"]
            await fleet.publish("all", "news.x", {"n": 1})

    try:
        asyncio.run(main())
    finally:
        worker.close()
