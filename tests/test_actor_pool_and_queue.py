"""The two utilities built on actors: `util.ActorPool` (share work among a fixed set of actors) and
`util.queue.Queue` (a FIFO queue in an actor, shared between the driver, tasks and actors), as in `ray.util`."""

import asyncio
import importlib
import queue as stdlib_queue
import time

import pytest


def _util(ray):
    return importlib.import_module(ray.__name__ + ".util")


def _queue_module(ray):
    return importlib.import_module(ray.__name__ + ".util.queue")


def _doublers(ray, n=2):
    @ray.remote
    class Doubler:
        def double(self, x, delay=0.0):
            time.sleep(delay)
            return 2 * x

    actors = [Doubler.remote() for _ in range(n)]
    ray.get([a.double.remote(0) for a in actors], timeout=60)  # started, so timings below measure the work
    return actors


def _double(actor, value):
    return actor.double.remote(value)


def _double_slowly(actor, value_and_delay):
    value, delay = value_and_delay
    return actor.double.remote(value, delay)


# ----------------------------------------------------------------------------------------------- ActorPool


def test_pool_map_yields_results_in_input_order(ray_start):
    """map() gives results in the order of the inputs, even when later inputs finish first."""
    ray = ray_start
    pool = _util(ray).ActorPool(_doublers(ray))
    values = [(1, 0.4), (2, 0.0), (3, 0.2), (4, 0.0), (5, 0.0)]
    results = pool.map(_double_slowly, values)
    assert not isinstance(results, list)  # a generator: results come as they are asked for
    assert list(results) == [2, 4, 6, 8, 10]
    assert not pool.has_next()
    assert list(pool.map(_double, range(6))) == [0, 2, 4, 6, 8, 10]  # the pool can be used again


def test_pool_map_runs_values_in_parallel_on_its_actors(ray_start):
    """Four 0.4 s items on two actors take about two rounds, not four."""
    ray = ray_start
    pool = _util(ray).ActorPool(_doublers(ray))
    begin = time.monotonic()
    assert list(pool.map(_double_slowly, [(i, 0.4) for i in range(4)])) == [0, 2, 4, 6]
    assert time.monotonic() - begin < 1.5


def test_pool_map_unordered_yields_results_as_they_are_ready(ray_start):
    """map_unordered() gives every result once, the slow one last."""
    ray = ray_start
    pool = _util(ray).ActorPool(_doublers(ray))
    results = list(pool.map_unordered(_double_slowly, [(1, 0.6), (2, 0.0), (3, 0.0), (4, 0.0)]))
    assert sorted(results) == [2, 4, 6, 8]
    assert results[-1] == 2
    assert not pool.has_next()


def test_pool_submit_get_next_and_has_next(ray_start):
    """submit() more values than actors: the extra ones wait; get_next() returns results in submission order;
    with nothing left, has_next() is False and get_next() raises StopIteration."""
    ray = ray_start
    pool = _util(ray).ActorPool(_doublers(ray))
    assert not pool.has_next()
    for value in (1, 2, 3, 4, 5):
        pool.submit(_double, value)
    assert pool.has_next()
    assert [pool.get_next() for _ in range(5)] == [2, 4, 6, 8, 10]
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()


def test_pool_get_next_with_timeout_raises_timeout_error_and_keeps_the_result(ray_start):
    """get_next(timeout=...) raises TimeoutError when the next result is not ready; the result can still be got."""
    ray = ray_start
    pool = _util(ray).ActorPool(_doublers(ray))
    pool.submit(_double_slowly, (21, 1.0))
    begin = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.2)
    assert time.monotonic() - begin < 0.8  # did not wait for the result
    assert pool.has_next()
    assert pool.get_next(timeout=30) == 42
    assert not pool.has_next()


def test_pool_get_next_unordered_returns_the_first_ready(ray_start):
    """get_next_unordered() returns whichever result is ready first; with a timeout and nothing ready, TimeoutError."""
    ray = ray_start
    pool = _util(ray).ActorPool(_doublers(ray))
    pool.submit(_double_slowly, (1, 0.6))
    pool.submit(_double_slowly, (2, 0.0))
    assert pool.get_next_unordered(timeout=30) == 4
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.1)
    assert pool.get_next_unordered(timeout=30) == 2
    assert not pool.has_next()


def test_pool_has_free_pop_idle_and_push(ray_start):
    """has_free() says whether an actor is idle; pop_idle() takes one out (None if all are busy); push() adds an
    actor, and pushing one that is already in the pool, idle or busy, raises ValueError."""
    ray = ray_start
    actors = _doublers(ray)
    pool = _util(ray).ActorPool(actors)
    assert pool.has_free()
    pool.submit(_double_slowly, (1, 0.5))
    assert pool.has_free()
    pool.submit(_double_slowly, (2, 0.5))
    assert not pool.has_free()
    assert pool.pop_idle() is None
    with pytest.raises(ValueError):
        pool.push(actors[0])  # busy, but in the pool
    assert [pool.get_next(), pool.get_next()] == [2, 4]
    assert pool.has_free()

    first = pool.pop_idle()
    second = pool.pop_idle()
    assert first is not None and second is not None
    assert sorted(map(repr, (first, second))) == sorted(map(repr, actors))
    assert pool.pop_idle() is None and not pool.has_free() and not pool.has_next()
    assert ray.get(first.double.remote(5), timeout=30) == 10  # popped actors are ordinary handles

    pool.push(first)
    with pytest.raises(ValueError):
        pool.push(first)  # idle, in the pool
    pool.push(second)
    assert list(pool.map(_double, [1, 2, 3])) == [2, 4, 6]


def test_pool_push_gives_waiting_work_to_the_new_actor(ray_start):
    """Values submitted while every actor is busy start as soon as an actor is pushed into the pool."""
    ray = ray_start
    one, other = _doublers(ray)
    pool = _util(ray).ActorPool([one])
    begin = time.monotonic()
    pool.submit(_double_slowly, (1, 0.6))
    pool.submit(_double_slowly, (2, 0.6))  # waits: the only actor is busy
    assert not pool.has_free()
    pool.push(other)
    assert [pool.get_next(timeout=30), pool.get_next(timeout=30)] == [2, 4]
    assert time.monotonic() - begin < 1.1  # ran side by side


# --------------------------------------------------------------------------------------------------- Queue


def test_queue_empty_and_full_subclass_the_standard_library(ray_start):
    util_queue = _queue_module(ray_start)
    assert issubclass(util_queue.Empty, stdlib_queue.Empty)
    assert issubclass(util_queue.Full, stdlib_queue.Full)


def test_queue_put_get_fifo_and_sizes(ray_start):
    """put/get in FIFO order; qsize(), size(), len() and empty() agree; an unbounded queue is never full."""
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue()
    assert q.empty() and q.qsize() == 0 and q.size() == 0 and len(q) == 0 and not q.full()
    q.put(1)
    q.put("two")
    q.put({"three": [3]})
    assert not q.empty() and q.qsize() == 3 and q.size() == 3 and len(q) == 3 and not q.full()
    assert q.get() == 1
    assert q.get_nowait() == "two"
    assert q.get(block=False) == {"three": [3]}
    assert q.empty() and len(q) == 0
    q.put_nowait_batch(list(range(50)))
    assert q.qsize() == 50 and not q.full()


def test_queue_maxsize_full_and_non_blocking_put(ray_start):
    """With maxsize=2: full() after two items; put(block=False) and put_nowait raise Full (a queue.Full)."""
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue(maxsize=2)
    q.put("a")
    assert not q.full()
    q.put("b")
    assert q.full() and q.qsize() == 2
    with pytest.raises(util_queue.Full):
        q.put("c", block=False)
    with pytest.raises(stdlib_queue.Full):
        q.put_nowait("c")
    assert q.qsize() == 2
    assert q.get() == "a"
    assert not q.full()
    q.put_nowait("c")
    assert [q.get(), q.get()] == ["b", "c"]


def test_queue_non_blocking_get_on_empty_raises_empty(ray_start):
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue()
    with pytest.raises(util_queue.Empty):
        q.get(block=False)
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()


def test_queue_timeouts_raise_full_and_empty(ray_start):
    """put(timeout=t) on a full queue raises Full after about t seconds; get(timeout=t) on an empty one raises Empty."""
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue(maxsize=1)
    q.put(1)
    begin = time.monotonic()
    with pytest.raises(util_queue.Full) as info:
        q.put(2, timeout=0.3)
    assert 0.25 <= time.monotonic() - begin < 5
    assert isinstance(info.value, stdlib_queue.Full)
    assert q.get(timeout=5) == 1
    begin = time.monotonic()
    with pytest.raises(util_queue.Empty) as info:
        q.get(timeout=0.3)
    assert 0.25 <= time.monotonic() - begin < 5
    assert isinstance(info.value, stdlib_queue.Empty)
    q.put(3, timeout=1)  # the queue still works
    assert q.get(timeout=1) == 3


def test_queue_negative_timeout_is_a_value_error(ray_start):
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue()
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    with pytest.raises(ValueError):
        q.get(timeout=-0.5)
    assert q.empty()


def test_queue_nowait_batches_are_all_or_nothing(ray_start):
    """put_nowait_batch adds every item or none (Full); get_nowait_batch takes n items or none (Empty)."""
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(util_queue.Full):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    q.put_nowait_batch([3])
    assert q.full()
    with pytest.raises(util_queue.Empty):
        q.get_nowait_batch(4)
    assert q.qsize() == 3
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(0) == []
    assert q.get_nowait_batch(1) == [3]
    assert q.empty()


def test_queue_batch_argument_checks(ray_start):
    """put_nowait_batch takes any iterable (Ray 2.60 checks for Iterable, not list) and rejects anything else
    with TypeError; get_nowait_batch wants a non-negative int."""
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue()
    q.put_nowait_batch((1, 2))
    assert q.get_nowait_batch(2) == [1, 2]
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    assert q.empty()


def test_queue_shared_with_a_producer_task(ray_start):
    """A task puts items into a queue it was given; the driver's blocking get() waits for each one."""
    ray = ray_start
    util_queue = _queue_module(ray)
    q = util_queue.Queue()

    @ray.remote
    def produce(q, n, delay):
        for i in range(n):
            time.sleep(delay)
            q.put(i * i)
        return "done"

    done = produce.remote(q, 5, 0.1)
    assert [q.get(timeout=30) for _ in range(5)] == [0, 1, 4, 9, 16]
    assert ray.get(done, timeout=30) == "done"
    assert q.empty()


def test_queue_blocking_put_waits_for_a_consumer_task(ray_start):
    """put() on a full queue blocks until a task takes an item out."""
    ray = ray_start
    util_queue = _queue_module(ray)
    q = util_queue.Queue(maxsize=1)
    q.put("first")

    @ray.remote
    def consume_later(q, delay):
        time.sleep(delay)
        return q.get(timeout=30)

    taken = consume_later.remote(q, 0.5)
    begin = time.monotonic()
    q.put("second", timeout=30)
    assert time.monotonic() - begin >= 0.3
    assert ray.get(taken, timeout=30) == "first"
    assert q.get(timeout=5) == "second"


def test_queue_shared_between_two_actors(ray_start):
    """Two actors share a queue: one produces, the other consumes in order."""
    ray = ray_start
    util_queue = _queue_module(ray)
    q = util_queue.Queue(maxsize=2)

    @ray.remote
    class Producer:
        def run(self, q, n):
            for i in range(n):
                q.put(i)
            return n

    @ray.remote
    class Consumer:
        def run(self, q, n):
            return [q.get(timeout=30) for _ in range(n)]

    produced = Producer.remote().run.remote(q, 6)
    consumed = Consumer.remote().run.remote(q, 6)
    assert ray.get([produced, consumed], timeout=60) == [6, list(range(6))]


def test_queue_async_put_and_get(ray_start):
    """put_async/get_async can be awaited."""
    util_queue = _queue_module(ray_start)
    q = util_queue.Queue()

    async def main():
        await q.put_async("x")
        await q.put_async("y")
        return [await q.get_async(), await q.get_async(timeout=5)]

    assert asyncio.run(main()) == ["x", "y"]


def test_queue_actor_options(ray_start):
    """actor_options are passed to the queue's actor (here a name, so get_actor finds it)."""
    ray = ray_start
    util_queue = _queue_module(ray)
    name = f"queue-{time.monotonic_ns()}"
    q = util_queue.Queue(actor_options={"name": name, "num_cpus": 0})
    q.put(7)
    assert ray.get_actor(name) is not None
    assert q.get(timeout=5) == 7
    q.shutdown()
