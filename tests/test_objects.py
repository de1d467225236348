"""Objects: ObjectRef identity and conversions, get/put/wait with Ray's argument checks, ordering and timeouts,
and large numpy arrays (zero-copy, read-only) through the object store."""

import asyncio
import concurrent.futures
import re
import time

import numpy as np
import pytest

MB = 2**20


@pytest.fixture
def blocker(ray_start, sync, tmp_path):
    """`blocker()` submits a task that runs until the test ends (or 30 s); returns its ref. Released at teardown."""
    ray = ray_start
    go = str(tmp_path / "release-blockers")

    @ray.remote
    def blocked(tag):
        sync.wait_for(go, 30)
        return tag

    counter = iter(range(1000))
    yield lambda: blocked.remote(f"blocked-{next(counter)}")
    sync.touch(go)


# ------------------------------------------------------------------------------------------------- ObjectRef


def test_object_ref_equality_and_hash_follow_the_id(ray_start):
    """A ref that travels through a task comes back equal, with the same hash; different objects differ."""
    ray = ray_start
    ref = ray.put("value")
    other = ray.put("value")

    @ray.remote
    def echo(wrapped):
        return wrapped[0]

    back = ray.get(echo.remote([ref]))
    assert isinstance(back, ray.ObjectRef)
    assert back == ref and hash(back) == hash(ref)
    assert ref != other
    table = {ref: "first", other: "second"}
    assert table[back] == "first"
    assert len({ref, back, other}) == 2
    assert ray.get(back) == "value"


def test_object_ref_hex_and_repr(ray_start):
    """hex() is 56 lowercase hex characters, unique per object; repr and str are 'ObjectRef(<hex>)'."""
    ray = ray_start

    @ray.remote
    def f():
        return 1

    refs = [ray.put(1), ray.put(1), f.remote()]
    hexes = [r.hex() for r in refs]
    for h in hexes:
        assert re.fullmatch(r"[0-9a-f]{56}", h), h
    assert len(set(hexes)) == 3
    for r in refs:
        assert repr(r) == f"ObjectRef({r.hex()})"
        assert str(r) == repr(r)


def test_object_ref_future(ray_start):
    """ref.future() is a concurrent.futures.Future that resolves to the value."""
    ray = ray_start

    @ray.remote
    def slow_value():
        time.sleep(0.2)
        return "done"

    fut = slow_value.remote().future()
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=30) == "done"


def test_object_ref_future_carries_task_errors(ray_start):
    """The future of a failing task raises the task's error (still an instance of the original type)."""
    ray = ray_start

    @ray.remote
    def bad():
        raise KeyError("missing-key")

    fut = bad.remote().future()
    with pytest.raises(KeyError):
        fut.result(timeout=30)


def test_await_object_ref(ray_start):
    """`await ref` inside asyncio gives the value; several refs can be gathered."""
    ray = ray_start

    @ray.remote
    def double(x):
        time.sleep(0.1)
        return 2 * x

    async def main():
        one = await double.remote(1)
        rest = await asyncio.gather(*[double.remote(i) for i in range(3)])
        return one, rest

    assert asyncio.run(main()) == (2, [0, 2, 4])


def test_await_failed_ref_raises(ray_start):
    """Awaiting the ref of a failing task raises the task's error."""
    ray = ray_start

    @ray.remote
    def bad():
        raise ValueError("await-failure")

    async def main():
        return await bad.remote()

    with pytest.raises(ValueError, match="await-failure"):
        asyncio.run(main())


# ------------------------------------------------------------------------------------------------------- get


def test_get_single_and_list(ray_start):
    """get(ref) returns the value; get(list) returns a list of values; get([]) returns []."""
    ray = ray_start
    a, b = ray.put({"a": 1}), ray.put(None)
    assert ray.get(a) == {"a": 1}
    assert ray.get([a, b]) == [{"a": 1}, None]
    assert ray.get([]) == []


def test_get_list_keeps_input_order_and_allows_duplicates(ray_start):
    """Results follow the input order even when tasks finish in reverse; a ref may appear twice."""
    ray = ray_start

    @ray.remote
    def after(delay, value):
        time.sleep(delay)
        return value

    refs = [after.remote(0.6 - 0.15 * i, i) for i in range(4)]
    assert ray.get(refs + [refs[0], refs[2]], timeout=30) == [0, 1, 2, 3, 0, 2]


@pytest.mark.parametrize("bad", [lambda ref: (ref,), lambda ref: 1, lambda ref: "ref", lambda ref: None])
def test_get_rejects_non_ref_and_tuple_with_value_error(ray_start, bad):
    """get() of a tuple or of something that is not a ref raises ValueError ('Invalid type of object refs')."""
    ray = ray_start
    with pytest.raises(ValueError, match="Invalid type of object refs"):
        ray.get(bad(ray.put(1)))


def test_get_rejects_list_holding_non_ref_with_type_error(ray_start):
    """get() of a list holding a non-ref (or a nested list) raises TypeError naming the value."""
    ray = ray_start
    ref = ray.put(1)
    with pytest.raises(TypeError, match="Attempting to call `get` on the value 42"):
        ray.get([ref, 42])
    with pytest.raises(TypeError):
        ray.get([[ref]])


def test_get_timeout_raises_get_timeout_error(ray_start, blocker, exceptions):
    """get(timeout=0.5) on an unfinished task raises GetTimeoutError (also a TimeoutError) after about 0.5 s."""
    ray = ray_start
    ref = blocker()
    start = time.monotonic()
    with pytest.raises(exceptions.GetTimeoutError) as info:
        ray.get(ref, timeout=0.5)
    elapsed = time.monotonic() - start
    assert isinstance(info.value, TimeoutError)
    assert 0.4 <= elapsed < 10, elapsed
    with pytest.raises(TimeoutError):
        ray.get([ray.put(1), ref], timeout=0.2)


def test_get_timeout_zero(ray_start, blocker, exceptions):
    """timeout=0 raises GetTimeoutError at once for an unfinished ref and returns a ready one."""
    ray = ray_start
    ref = blocker()
    start = time.monotonic()
    with pytest.raises(exceptions.GetTimeoutError):
        ray.get(ref, timeout=0)
    assert time.monotonic() - start < 3
    ready = ray.put("ready")
    assert ray.get(ready, timeout=0) == "ready"


def test_get_raises_first_error_while_other_refs_pending(ray_start, blocker):
    """get([pending, failing]) raises the failing task's error without waiting for the pending one."""
    ray = ray_start

    @ray.remote
    def fail():
        raise ValueError("early-failure")

    pending = blocker()
    start = time.monotonic()
    with pytest.raises(ValueError, match="early-failure"):
        ray.get([pending, fail.remote()], timeout=25)
    assert time.monotonic() - start < 20


# ------------------------------------------------------------------------------------------------------- put


def test_put_then_get_various_values(ray_start):
    """put() stores any picklable value; get() returns an equal one."""
    ray = ray_start
    values = [1, "text", b"bytes", None, [1, [2, 3]], {"k": (1, 2)}, np.arange(5), 3.5]
    refs = [ray.put(v) for v in values]
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    out = ray.get(refs)
    for got, want in zip(out, values):
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want)
        else:
            assert got == want


def test_put_stores_a_snapshot(ray_start):
    """Mutating a value after put() does not change the stored object."""
    ray = ray_start
    value = [1, 2, 3]
    ref = ray.put(value)
    value.append(4)
    assert ray.get(ref) == [1, 2, 3]


def test_put_of_a_ref_is_a_type_error_but_a_list_of_refs_is_fine(ray_start):
    """put(ref) raises TypeError; put([ref]) stores a list holding an equal ref."""
    ray = ray_start
    ref = ray.put("inner")
    with pytest.raises(TypeError, match="Calling 'put' on an ray.ObjectRef is not allowed"):
        ray.put(ref)
    outer = ray.put([ref])
    (inner,) = ray.get(outer)
    assert isinstance(inner, ray.ObjectRef) and inner == ref
    assert ray.get(inner) == "inner"


# ------------------------------------------------------------------------------------------ large numpy arrays


def test_large_array_put_get_round_trip_read_only(ray_start):
    """A 20 MB array comes back from put/get equal and read-only."""
    ray = ray_start
    arr = np.random.default_rng(0).random(20 * MB // 8)
    out = ray.get(ray.put(arr))
    assert isinstance(out, np.ndarray) and out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable is False
    with pytest.raises(ValueError):
        out[0] = 1.0


def test_large_array_as_task_argument_and_result(ray_start):
    """A 20 MB array passed by value and by ref to tasks arrives equal and read-only; results come back read-only."""
    ray = ray_start
    arr = np.arange(20 * MB // 8, dtype=np.float64)

    @ray.remote
    def inspect_array(a):
        return float(a.sum()), a.shape, a.flags.writeable

    @ray.remote
    def make_array(n):
        return np.full(n, 7, dtype=np.int64)

    expected = float(arr.sum())
    assert ray.get(inspect_array.remote(arr)) == (expected, arr.shape, False)
    assert ray.get(inspect_array.remote(ray.put(arr))) == (expected, arr.shape, False)
    out = ray.get(make_array.remote(20 * MB // 8))
    assert out.shape == (20 * MB // 8,) and out.dtype == np.int64
    assert out.flags.writeable is False
    assert int(out[0]) == 7 and int(out[-1]) == 7 and int(out.sum()) == 7 * (20 * MB // 8)


def test_get_of_stored_large_array_is_zero_copy_fast(ray_start):
    """Getting a stored 100 MB array does not copy it: well under 50 ms (a copy takes ~50-150 ms here)."""
    ray = ray_start
    arr = np.ones(100 * MB // 8)
    ref = ray.put(arr)
    ray.get(ref)  # first access may map memory
    kept, times = [], []
    for _ in range(3):
        start = time.perf_counter()
        kept.append(ray.get(ref))  # keep each result alive so a copying get could not reuse freed memory
        times.append(time.perf_counter() - start)
    assert min(times) < 0.05, times
    assert kept[0].shape == arr.shape and kept[0][-1] == 1.0 and kept[0].flags.writeable is False


# ------------------------------------------------------------------------------------------------------ wait


def _in_order(sub, full):
    positions = [full.index(r) for r in sub]
    return positions == sorted(positions)


def test_wait_partitions_ready_refs_in_input_order(ray_start):
    """With 5 ready refs and num_returns=3: 3 ready, 2 not ready, a partition of the input, each in input order."""
    ray = ray_start
    refs = [ray.put(i) for i in range(5)]
    ready, not_ready = ray.wait(refs, num_returns=3)
    assert len(ready) == 3 and len(not_ready) == 2
    assert sorted(ready + not_ready, key=refs.index) == refs
    assert _in_order(ready, refs) and _in_order(not_ready, refs)
    ready, not_ready = ray.wait(refs, num_returns=5)
    assert ready == refs and not_ready == []


def test_wait_returns_ready_and_pending_in_input_order(ray_start, blocker):
    """Ready refs and the pending ones are each listed in input order."""
    ray = ray_start
    p0, p1, p2 = ray.put(0), ray.put(1), ray.put(2)
    b0, b1 = blocker(), blocker()
    refs = [b0, p0, p1, b1, p2]
    ready, not_ready = ray.wait(refs, num_returns=3, timeout=20)
    assert ready == [p0, p1, p2]
    assert not_ready == [b0, b1]


def test_wait_default_num_returns_is_one(ray_start, blocker):
    """wait() without num_returns returns as soon as one ref is ready."""
    ray = ray_start
    pending = blocker()
    ready_ref = ray.put("x")
    ready, not_ready = ray.wait([pending, ready_ref], timeout=20)
    assert ready == [ready_ref] and not_ready == [pending]


def test_wait_blocks_until_a_task_finishes(ray_start):
    """Without a timeout, wait() blocks until enough tasks finish."""
    ray = ray_start

    @ray.remote
    def nap(t):
        time.sleep(t)
        return t

    refs = [nap.remote(0.3), nap.remote(0.5)]
    ready, not_ready = ray.wait(refs, num_returns=2)
    assert ready == refs and not_ready == []


def test_wait_timeout_returns_what_is_ready(ray_start, blocker):
    """wait(timeout=0.5) returns after about 0.5 s with the ready refs and the rest not ready."""
    ray = ray_start
    pending = blocker()
    done = ray.put(1)
    start = time.monotonic()
    ready, not_ready = ray.wait([pending, done], num_returns=2, timeout=0.5)
    elapsed = time.monotonic() - start
    assert ready == [done] and not_ready == [pending]
    assert 0.4 <= elapsed < 10, elapsed
    start = time.monotonic()
    assert ray.wait([pending], timeout=0) == ([], [pending])
    assert time.monotonic() - start < 3


def test_wait_counts_failed_tasks_as_ready(ray_start):
    """A task that raised is 'ready' for wait()."""
    ray = ray_start

    @ray.remote
    def bad():
        raise RuntimeError("nope")

    ref = bad.remote()
    ready, not_ready = ray.wait([ref], timeout=30)
    assert ready == [ref] and not_ready == []


def test_wait_argument_errors(ray_start):
    """wait(): duplicates and num_returns > len raise ValueError; a single ref or non-refs raise TypeError."""
    ray = ray_start
    ref, other = ray.put(1), ray.put(2)
    with pytest.raises(ValueError, match="unique"):
        ray.wait([ref, ref])
    with pytest.raises(ValueError, match="num_returns"):
        ray.wait([ref, other], num_returns=3)
    with pytest.raises(TypeError):
        ray.wait(ref)
    with pytest.raises(TypeError):
        ray.wait([1, 2])


def test_wait_empty_list_and_fetch_local(ray_start):
    """wait([]) returns ([], []); fetch_local=False is accepted."""
    ray = ray_start
    assert ray.wait([]) == ([], [])
    ref = ray.put(1)
    assert ray.wait([ref], fetch_local=False) == ([ref], [])
    assert ray.wait([ref], num_returns=1, timeout=5, fetch_local=True) == ([ref], [])
