"""cancel() of actor calls, and get_runtime_context().is_canceled(), as in Ray 2.60 (shared public-API tests)."""
import asyncio
import time

import pytest


def test_cancelled_async_calls_raise_task_cancelled_even_if_the_coroutine_catches_it(ray_start, exceptions):
    ray = ray_start

    @ray.remote
    class Sleeper:
        def ping(self):
            return "pong"

        async def swallows(self):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                return "caught it and returned"

        async def reraises(self):
            await asyncio.sleep(60)

        async def asks(self):
            return ray.get_runtime_context().is_canceled()

    sleeper = Sleeper.remote()
    assert ray.get(sleeper.ping.remote(), timeout=60) == "pong"
    for method in (sleeper.swallows, sleeper.reraises):
        call = method.remote()
        time.sleep(0.5)
        ray.cancel(call)
        with pytest.raises(exceptions.TaskCancelledError):
            ray.get(call, timeout=30)
    with pytest.raises(RuntimeError, match="not supported in an async actor"):
        ray.get(sleeper.asks.remote(), timeout=30)
    assert ray.get(sleeper.ping.remote(), timeout=30) == "pong"  # the actor lives on


def test_cancelled_sync_and_threaded_calls_see_is_canceled_and_raise(ray_start, exceptions):
    ray = ray_start

    def _poll_canceled(ray):  # defined here: Ray's workers cannot import this test module
        for _ in range(3000):
            if ray.get_runtime_context().is_canceled():
                return "saw is_canceled"
            time.sleep(0.01)
        return "never"

    @ray.remote
    class Looper:
        def ping(self):
            return "pong"

        def loop(self):
            return _poll_canceled(ray)

    @ray.remote
    def task_loop():
        return _poll_canceled(ray)

    for looper in (Looper.remote(), Looper.options(max_concurrency=2).remote()):
        assert ray.get(looper.ping.remote(), timeout=60) == "pong"
        call = looper.loop.remote()
        time.sleep(0.5)
        ray.cancel(call)
        with pytest.raises(exceptions.TaskCancelledError):
            ray.get(call, timeout=30)
        assert ray.get(looper.ping.remote(), timeout=30) == "pong"
        with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
            ray.cancel(looper.loop.remote(), force=True)
    with pytest.raises(RuntimeError, match="only available when the process is a worker"):
        ray.get_runtime_context().is_canceled()  # the driver has nothing to cancel
    call = task_loop.remote()
    time.sleep(0.5)
    ray.cancel(call)
    with pytest.raises(exceptions.TaskCancelledError):
        ray.get(call, timeout=30)
