"""Generator tasks and methods, as in Ray 2.60: streaming by default (ObjectRefGenerator), num_returns="dynamic",
backpressure, errors mid-stream, cancel, retries, actors of every kind (shared public-API tests)."""
import asyncio
import os
import time
import warnings

import pytest


def test_a_generator_task_streams_its_items_while_it_runs(ray_start):
    ray = ray_start

    @ray.remote
    def count(n, pause):
        for i in range(n):
            time.sleep(pause)
            yield i * 10

    assert [ray.get(ref) for ref in count.remote(5, 0)] == [0, 10, 20, 30, 40]
    stream = count.remote(3, 1.0)
    assert isinstance(stream, ray.ObjectRefGenerator)
    started = time.monotonic()
    first = ray.get(next(stream), timeout=60)
    took_first = time.monotonic() - started
    rest = [ray.get(ref, timeout=60) for ref in stream]
    took_all = time.monotonic() - started
    assert (first, rest) == (0, [10, 20])
    assert took_first < took_all - 1.5, (took_first, took_all)  # the first item came while the task still ran
    with pytest.raises(StopIteration):
        next(stream)
    explicit = count.options(num_returns="streaming").remote(2, 0)
    assert [ray.get(ref) for ref in explicit] == [0, 10]
    assert ray.get(explicit.completed(), timeout=60) is None


def test_an_error_mid_stream_arrives_at_its_item_and_ends_the_stream(ray_start, exceptions):
    ray = ray_start

    @ray.remote
    def two_then_fail():
        yield "a"
        yield "b"
        raise ValueError("the third went wrong")

    refs = list(two_then_fail.remote())
    assert len(refs) == 3
    assert ray.get(refs[:2], timeout=60) == ["a", "b"]
    with pytest.raises(ValueError, match="the third went wrong"):
        ray.get(refs[2], timeout=60)


def test_async_for_and_wait_on_generators(ray_start):
    ray = ray_start

    @ray.remote
    def count(n, pause):
        for i in range(n):
            time.sleep(pause)
            yield i

    async def read_all():
        return [await ref async for ref in count.remote(4, 0)]

    assert asyncio.run(read_all()) == [0, 1, 2, 3]
    quick, slow = count.remote(3, 0.05), count.remote(3, 3.0)
    ready, not_ready = ray.wait([slow, quick], num_returns=1, timeout=60)
    assert ready == [quick] and not_ready == [slow]
    ready, not_ready = ray.wait([slow], timeout=0.5)
    assert ready == [] and not_ready == [slow]
    assert [ray.get(ref) for ref in quick] == [0, 1, 2]


def test_dynamic_generators_still_work(ray_start):
    ray = ray_start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in Ray: a warning, and it still works

        @ray.remote(num_returns="dynamic")
        def squares(n):
            for i in range(n):
                yield i * i

    ref = squares.remote(4)
    assert isinstance(ref, ray.ObjectRef)
    dynamic = ray.get(ref, timeout=60)
    assert isinstance(dynamic, ray.DynamicObjectRefGenerator)
    assert [ray.get(item) for item in dynamic] == [0, 1, 4, 9]


def test_backpressure_pauses_the_producer_until_items_are_read(ray_start, tmp_path):
    ray = ray_start
    log = tmp_path / "produced"

    @ray.remote(_generator_backpressure_num_objects=2)
    def produce(path, n):
        for i in range(n):
            with open(path, "a") as f:
                f.write(f"{i}\n")
            yield i

    stream = produce.remote(str(log), 10)
    time.sleep(2)  # unread, the producer stops after a few items instead of running to the end
    produced = len(log.read_text().split()) if log.exists() else 0
    assert 1 <= produced <= 4, produced
    assert [ray.get(ref) for ref in stream] == list(range(10))


def test_generator_methods_on_plain_threaded_and_async_actors(ray_start):
    ray = ray_start

    @ray.remote
    class Counter:
        def up(self, n):
            for i in range(n):
                yield i

    @ray.remote
    class AsyncCounter:
        async def down(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield -i

    plain, threaded = Counter.remote(), Counter.options(max_concurrency=4).remote()
    assert [ray.get(ref) for ref in plain.up.remote(3)] == [0, 1, 2]
    assert [ray.get(ref) for ref in threaded.up.remote(3)] == [0, 1, 2]
    assert [ray.get(ref) for ref in AsyncCounter.remote().down.remote(3)] == [0, -1, -2]


def test_a_generator_is_read_where_it_was_made_and_may_be_made_inside_a_task(ray_start):
    ray = ray_start

    @ray.remote
    def count(n):
        for i in range(n):  # not `yield from range(n)`: Ray 2.60 fails on it ('range_iterator' has no 'send')
            yield i

    @ray.remote
    def total():
        return sum(ray.get(ref) for ref in count.remote(5))

    @ray.remote
    def takes(generator):
        return 1

    assert ray.get(total.remote(), timeout=60) == 10
    with pytest.raises(TypeError, match="generator"):  # as in Ray: pass the refs it gives, not the generator
        takes.remote(count.remote(2))


def test_cancel_stops_a_generator_and_a_crashed_one_is_retried_without_repeats(ray_start, exceptions, tmp_path):
    ray = ray_start

    @ray.remote
    def endless():
        i = 0
        while True:
            time.sleep(0.02)
            yield i
            i += 1

    stream = endless.remote()
    assert ray.get(next(stream), timeout=60) == 0
    ray.cancel(stream)
    seen = []
    with pytest.raises(exceptions.TaskCancelledError):
        for ref in stream:
            seen.append(ray.get(ref, timeout=60))
    assert len(seen) < 1000

    @ray.remote(max_retries=2)
    def crashes_once(flag, n):
        for i in range(n):
            if i == 2 and not os.path.exists(flag):
                open(flag, "w").close()
                os._exit(1)  # the worker dies mid-stream; the retry yields 0 and 1 again
            yield i

    assert [ray.get(ref, timeout=60) for ref in crashes_once.remote(str(tmp_path / "crashed"), 4)] == [0, 1, 2, 3]


@pytest.mark.course_only
def test_items_never_read_are_freed_when_the_generator_is_dropped(ray_start):
    import numpy as np
    ray = ray_start
    from course_runtime import state

    @ray.remote
    def arrays(n):
        for i in range(n):
            yield np.full(100_000, i)

    stream = arrays.remote(5)
    kept = next(stream)
    assert ray.get(stream.completed(), timeout=60) is None  # all five are stored now
    del stream
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(state.summary().objects) > 1:
        time.sleep(0.05)
    assert [row["created_by"] for row in state.summary().objects] == ["yielded by arrays"]
    assert ray.get(kept)[0] == 0
