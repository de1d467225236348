"""`util.multiprocessing.Pool`: multiprocessing.Pool's API on actors, as in Ray 2.60 (`ray.util.multiprocessing`).

Public API only, so every test runs on both backends; where Ray's behaviour is a deliberate difference (README,
"Differences from Ray"), the test checks each backend's side. Facts found on Ray 2.60 are in the test names.
"""

import importlib
import multiprocessing
import os
import signal
import threading
import time
import types

import pytest

from conftest import process_alive, wait_until


def _mp(ray):
    return importlib.import_module(ray.__name__ + ".util.multiprocessing")


def _make_helpers():
    """The functions the pools run, built inside a function so that cloudpickle ships them *by value*: Ray's workers
    cannot import this test module (the course runtime's can, see README, workers' sys.path)."""

    def pid(_=None):
        return os.getpid()

    def square(x):
        return x * x

    def fail_on_3(x):
        if x == 3:
            raise ZeroDivisionError(f"bad {x}")
        return 10 * x

    def wait_for_file(path, value=None):
        """Block until `path` exists (the test's signal), then return `value`. At most 30 s."""
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        return value

    def sleep_then(seconds_and_value):
        seconds, value = seconds_and_value
        time.sleep(seconds)
        return value

    def set_env(name, value):
        os.environ[name] = value

    def get_env(name):
        return os.environ.get(name)  # (os.environ.get itself would be pickled with a copy of the driver's environment)

    def refuse():
        raise RuntimeError("initializer failed")

    def crash(_):
        os.kill(os.getpid(), signal.SIGKILL)

    return types.SimpleNamespace(pid=pid, square=square, fail_on_3=fail_on_3, wait_for_file=wait_for_file,
                                 sleep_then=sleep_then, set_env=set_env, get_env=get_env, refuse=refuse, crash=crash)


fn = _make_helpers()


def _pids(pool, n):
    """The pids of the pool's actors (chunks of one item go round the actors in turn)."""
    return set(pool.map(fn.pid, range(n), chunksize=1))


# ------------------------------------------------------------------------------------------ where it is, how big


def test_pool_is_ray_util_multiprocessing_pool_with_the_standard_timeout_error(backend):
    from course_runtime import ray as course_ray  # the course's entry point, on either backend (COURSE_BACKEND)

    module = importlib.import_module(("ray" if backend == "ray" else "course_runtime") + ".util.multiprocessing")
    assert sorted(module.__all__) == ["JoinableQueue", "Pool", "TimeoutError"]
    assert module.TimeoutError is multiprocessing.TimeoutError
    assert course_ray.util.multiprocessing.Pool  # attribute access, without importing the subpackage first


def test_pool_starts_the_runtime_with_num_cpus_processes_when_none_is_running(ray_module):
    ray = ray_module
    assert not ray.is_initialized()
    pool = _mp(ray).Pool(processes=2)
    try:
        assert ray.is_initialized()
        assert ray.cluster_resources()["CPU"] == 2
        assert pool.map(fn.square, range(5)) == [0, 1, 4, 9, 16]
    finally:
        pool.terminate()


def test_default_processes_is_every_cpu_of_the_cluster_and_the_actors_reserve_none(ray_start):
    ray = ray_start
    pool = _mp(ray).Pool()
    try:
        assert len(_pids(pool, 8)) == 2  # num_cpus=2: two actors
        assert ray.available_resources()["CPU"] == 2  # PoolActor is num_cpus=0
    finally:
        pool.terminate()


def test_ray_remote_args_are_the_actors_options_and_context_is_accepted_and_ignored(ray_start, poll):
    ray = ray_start
    pool = _mp(ray).Pool(1, context="spawn", ray_remote_args={"num_cpus": 1})  # context: a warning, nothing more
    try:
        assert pool.apply(abs, (-1,)) == 1
        assert ray.available_resources().get("CPU", 0) == 1  # this PoolActor holds one CPU
    finally:
        pool.terminate()
    assert poll(lambda: ray.available_resources().get("CPU", 0) == 2, timeout=30)


# ------------------------------------------------------------------------------------------ the map family, apply


def test_map_starmap_and_apply_return_results_in_input_order(ray_start):
    pool = _mp(ray_start).Pool(2)
    try:
        assert pool.map(fn.square, range(10)) == [x * x for x in range(10)]
        assert pool.map(fn.square, range(7), chunksize=3) == [x * x for x in range(7)]
        assert pool.map(fn.square, (x for x in range(4))) == [0, 1, 4, 9]  # any iterable, even without len()
        assert pool.map(fn.square, []) == []
        assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
        assert pool.starmap_async(pow, [(2, 5)]).get(timeout=60) == [32]
        assert pool.map_async(fn.square, [3]).get(timeout=60) == [9]
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert pool.apply(sorted, ([3, 1, 2],), {"reverse": True}) == [3, 2, 1]
        assert pool.apply(fn.pid) > 0  # no args at all
    finally:
        pool.terminate()


def test_map_chunks_go_to_the_actors_in_turn_and_run_in_parallel(ray_start, sync, tmp_path):
    """Two items, one per chunk: each waits for the other's signal, so this finishes only if they run at once."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")

    def meet(mine_and_theirs):
        mine, theirs = mine_and_theirs
        sync.touch(mine)
        return sync.wait_for(theirs, timeout=30), os.getpid()

    pool = _mp(ray_start).Pool(2)
    try:
        (met_a, pid_a), (met_b, pid_b) = pool.map(meet, [(a, b), (b, a)], chunksize=1)
        assert met_a and met_b and pid_a != pid_b
    finally:
        pool.terminate()


def test_a_function_raising_in_map_or_apply_raises_its_own_exception_not_a_ray_error(ray_start):
    pool = _mp(ray_start).Pool(2)
    try:
        for call in (lambda: pool.map(fn.fail_on_3, range(6)), lambda: pool.apply(fn.fail_on_3, (3,)),
                     lambda: pool.map_async(fn.fail_on_3, range(6)).get(timeout=60),
                     lambda: pool.starmap(fn.fail_on_3, [(1,), (3,)])):
            with pytest.raises(ZeroDivisionError, match="bad 3") as raised:
                call()
            assert type(raised.value) is ZeroDivisionError
        assert pool.map(fn.square, [2]) == [4]  # the pool still works
    finally:
        pool.terminate()


def test_bad_arguments_to_the_function_raise_the_functions_error(ray_start):
    pool = _mp(ray_start).Pool(1)
    try:
        with pytest.raises(TypeError, match="not callable"):
            pool.apply(5)
        with pytest.raises(TypeError, match="must be an iterable, not int"):
            pool.starmap(abs, [1, 2])  # starmap's items must be argument tuples
        with pytest.raises(TypeError, match="not iterable"):
            pool.map(abs, 5)
    finally:
        pool.terminate()


# ------------------------------------------------------------------------------------------------ imap


def test_imap_gives_results_in_order_and_imap_unordered_as_they_finish(ray_start):
    pool = _mp(ray_start).Pool(2)
    try:
        assert list(pool.imap(fn.square, [1, 2, 3])) == [1, 4, 9]
        assert list(pool.imap(fn.square, (x for x in range(5)), chunksize=2)) == [0, 1, 4, 9, 16]
        assert list(pool.imap(fn.square, [])) == []
        # as they finish. Lazy, and chunks go round the actors by position (not to whichever is free): "b" is sent
        # when "a" is in, to the actor after, the one busy with "slow"; "c" is sent when "slow" is in
        results = list(pool.imap_unordered(fn.sleep_then, [(1.0, "slow"), (0, "a"), (0, "b"), (0, "c")]))
        assert results[:2] == ["a", "slow"] and sorted(results[2:]) == ["b", "c"]
        assert type(pool.imap(fn.square, [1])).__name__ == "OrderedIMapIterator"
        assert type(pool.imap_unordered(fn.square, [1])).__name__ == "UnorderedIMapIterator"
    finally:
        pool.terminate()


def test_imap_is_lazy_one_chunk_per_actor_in_flight(ray_start):
    taken = []

    def items():
        for i in range(100):
            taken.append(i)
            yield i

    pool = _mp(ray_start).Pool(2)
    try:
        results = pool.imap(fn.square, items())
        assert taken == [0, 1]  # one item for each of the two actors, no more
        assert next(results) == 0
        assert len(taken) in (3, 4)  # each result that came in sent the next chunk (item 1 may have come in first)
        assert list(results) == [x * x for x in range(1, 100)]
    finally:
        pool.terminate()


def test_imap_yields_a_failed_item_as_a_pool_task_error_value_as_ray_does(ray_start):
    """Ray 2.60 quirk, matched: imap does not raise (multiprocessing does); the item is a PoolTaskError."""
    pool = _mp(ray_start).Pool(2)
    try:
        for results in (list(pool.imap(fn.fail_on_3, range(5))), list(pool.imap_unordered(fn.fail_on_3, range(5)))):
            errors = [r for r in results if isinstance(r, Exception)]
            assert sorted(r for r in results if not isinstance(r, Exception)) == [0, 10, 20, 40]
            assert len(errors) == 1 and type(errors[0]).__name__ == "PoolTaskError"
            assert isinstance(errors[0].underlying, ZeroDivisionError) and str(errors[0].underlying) == "bad 3"
        assert list(pool.imap(fn.fail_on_3, range(5)))[3].underlying.args == ("bad 3",)  # in its place in imap
    finally:
        pool.terminate()


def test_imap_next_with_a_timeout_raises_multiprocessing_timeout_error(ray_start, tmp_path):
    go = str(tmp_path / "go")
    pool = _mp(ray_start).Pool(1)
    try:
        results = pool.imap(fn.wait_for_file, [go])
        with pytest.raises(multiprocessing.TimeoutError):
            results.next(timeout=0.2)
        open(go, "w").close()
        assert results.next(timeout=30) is None  # the item is still coming
        with pytest.raises(StopIteration):
            next(results)
    finally:
        pool.terminate()


# -------------------------------------------------------------------------------- AsyncResult and callbacks


def test_async_result_get_wait_ready_and_successful(ray_start, tmp_path):
    go = str(tmp_path / "go")
    pool = _mp(ray_start).Pool(1)
    try:
        result = pool.apply_async(fn.wait_for_file, (go, 5))
        assert not result.ready()
        with pytest.raises(ValueError, match="not ready"):
            result.successful()
        with pytest.raises(multiprocessing.TimeoutError):
            result.get(timeout=0.2)
        assert result.wait(0.1) is None  # wait never raises
        open(go, "w").close()
        assert result.get(timeout=30) == 5
        assert result.ready() and result.successful()

        failed = pool.map_async(fn.fail_on_3, range(5))
        failed.wait(30)
        assert failed.ready() and not failed.successful()
    finally:
        pool.terminate()


def test_callbacks_run_in_another_thread_error_callback_gets_the_pool_task_error(ray_start):
    seen = []
    done = threading.Event()

    def note(kind):
        def callback(value):
            seen.append((kind, value, threading.current_thread() is threading.main_thread()))
            done.set()
        return callback

    pool = _mp(ray_start).Pool(2)
    try:
        for submit in (lambda: pool.apply_async(fn.square, (4,), callback=note("ok"), error_callback=note("error")),
                       lambda: pool.map_async(fn.square, range(3), callback=note("ok"), error_callback=note("error")),
                       lambda: pool.apply_async(fn.fail_on_3, (3,), callback=note("ok"), error_callback=note("error")),
                       lambda: pool.starmap_async(fn.fail_on_3, [(1,), (3,)], callback=note("ok"),
                                                  error_callback=note("error"))):
            done.clear()
            result = submit()
            assert done.wait(30)
            result.wait(30)
        assert [(kind, on_main) for kind, _, on_main in seen] == [("ok", False)] * 2 + [("error", False)] * 2
        assert seen[0][1] == 16  # apply: the value
        assert sorted(seen[1][1]) == [0, 1, 4]  # map: the list, in the order the chunks finished (as in Ray)
        for _, error, _ in seen[2:]:
            assert type(error).__name__ == "PoolTaskError" and isinstance(error.underlying, ZeroDivisionError)
    finally:
        pool.terminate()


# ------------------------------------------------------------------------- initializer, maxtasksperchild


def test_initializer_runs_with_initargs_in_every_actor(ray_start):
    pool = _mp(ray_start).Pool(2, initializer=fn.set_env, initargs=("POOL_TAG", "ready"))
    try:
        assert pool.map(fn.get_env, ["POOL_TAG"] * 4, chunksize=1) == ["ready"] * 4
    finally:
        pool.terminate()


def test_an_initializer_that_raises_fails_the_pool_constructor_with_actor_died_error(ray_start, exceptions):
    with pytest.raises(exceptions.ActorDiedError, match="initializer failed"):
        _mp(ray_start).Pool(1, initializer=fn.refuse)


def test_maxtasksperchild_replaces_an_actor_after_that_many_chunks(ray_start):
    pool = _mp(ray_start).Pool(1, maxtasksperchild=2)
    try:
        pids = [pool.apply(fn.pid) for _ in range(5)]
        assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
        assert len(set(pids)) == 3
    finally:
        pool.terminate()


# ------------------------------------------------------------------------------- close, join, terminate, with


def test_close_lets_running_work_finish_and_join_waits_for_the_actors(ray_start, tmp_path):
    go = str(tmp_path / "go")
    pool = _mp(ray_start).Pool(2)
    pids = _pids(pool, 2)
    result = pool.map_async(fn.wait_for_file, [go, go], chunksize=1)
    pool.close()
    pool.close()  # twice is fine
    open(go, "w").close()
    pool.join()
    assert result.get(timeout=30) == [None, None]
    assert wait_until(lambda: not any(process_alive(p) for p in pids), timeout=30)


def test_a_closed_or_terminated_pool_raises_value_error_pool_not_running(ray_start):
    for stop in ("close", "terminate"):
        pool = _mp(ray_start).Pool(1)
        getattr(pool, stop)()
        for use in (lambda: pool.map(abs, [1]), lambda: pool.map_async(abs, [1]), lambda: pool.starmap(abs, [(1,)]),
                    lambda: pool.apply(abs, (1,)), lambda: pool.apply_async(abs, (1,)),
                    lambda: pool.imap(abs, [1]), lambda: pool.imap_unordered(abs, [1]), pool.__enter__):
            with pytest.raises(ValueError, match="^Pool not running$"):
                use()
        pool.terminate()  # terminate after close, or twice: fine
        pool.join()


def test_join_before_close_raises_value_error_pool_is_still_running(ray_start):
    pool = _mp(ray_start).Pool(1)
    try:
        with pytest.raises(ValueError, match="^Pool is still running$"):
            pool.join()
    finally:
        pool.terminate()


def test_terminate_stops_running_work_with_actor_died_error(ray_start, exceptions, tmp_path):
    pool = _mp(ray_start).Pool(2)
    pids = _pids(pool, 2)
    result = pool.map_async(fn.wait_for_file, [str(tmp_path / "never")] * 2, chunksize=1)
    time.sleep(0.3)
    begin = time.monotonic()
    pool.terminate()
    pool.join()
    assert time.monotonic() - begin < 10
    with pytest.raises(exceptions.ActorDiedError):
        result.get(timeout=30)
    assert result.ready() and not result.successful()
    assert wait_until(lambda: not any(process_alive(p) for p in pids), timeout=30)


def test_leaving_the_with_block_terminates_the_pool(ray_start, exceptions, tmp_path):
    with _mp(ray_start).Pool(1) as pool:
        pid = pool.apply(fn.pid)
        result = pool.apply_async(fn.wait_for_file, (str(tmp_path / "never"),))
    with pytest.raises(exceptions.ActorDiedError):
        result.get(timeout=30)
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(abs, [1])
    assert wait_until(lambda: not process_alive(pid), timeout=30)


def test_an_actor_that_crashes_fails_its_work_with_actor_died_error(ray_start, exceptions):
    pool = _mp(ray_start).Pool(1)
    try:
        with pytest.raises(exceptions.ActorDiedError):
            pool.map(fn.crash, [1])
    finally:
        pool.terminate()


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_processes_are_value_or_type_errors(ray_start):
    Pool = _mp(ray_start).Pool
    for processes in (0, -2):
        with pytest.raises(ValueError, match=r"^Processes in the pool must be >0\.$"):
            Pool(processes)
    with pytest.raises(ValueError, match="Tried to start a pool with 3 processes on an existing ray cluster, but "
                                         "there are only 2 CPUs in the ray cluster."):
        Pool(3)
    with pytest.raises(TypeError):
        Pool(1.5)


def test_bad_processes_without_a_running_runtime_fail_before_starting_one(ray_module, backend):
    """Difference: Ray starts a session with num_cpus=processes first (0: then KeyError 'CPU'; 1.5: ValueError)."""
    ray = ray_module
    if backend == "ray":
        with pytest.raises(KeyError, match="CPU"):
            _mp(ray).Pool(0)
        assert ray.is_initialized()
        return
    for processes, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)):
        with pytest.raises(error, match="Processes in the pool must be >0|give a whole number"):
            _mp(ray).Pool(processes)
        assert not ray.is_initialized()


def test_bad_chunksize_and_maxtasksperchild_are_value_errors_saying_what_to_give(ray_start, backend):
    """Difference: Ray gives AssertionError (map), ZeroDivisionError (imap of a list) or TypeError (imap of a list
    with chunksize=None), and accepts a maxtasksperchild below -1, failing with AssertionError at the first task."""
    Pool = _mp(ray_start).Pool
    pool = Pool(1)
    try:
        if backend == "ray":
            with pytest.raises(AssertionError):
                pool.map(abs, [1], chunksize=0)
            with pytest.raises(ZeroDivisionError):
                pool.imap(abs, [1], chunksize=0)
            with pytest.raises(TypeError):
                pool.imap(abs, [1], chunksize=None)
            negative = Pool(1, maxtasksperchild=-2)
            with pytest.raises(AssertionError):
                negative.apply(abs, (1,))
            negative.terminate()
            return
        for chunksize in (0, -1, 1.5):
            for use in (pool.map, pool.imap, pool.imap_unordered, pool.starmap):
                with pytest.raises(ValueError, match=f"chunksize={chunksize}: give a whole number >= 1"):
                    use(abs, [1], chunksize=chunksize)
        assert list(pool.imap(abs, [-1, -2], chunksize=None)) == [1, 2]  # None: the default, 1
        with pytest.raises(ValueError, match="maxtasksperchild=-2"):
            Pool(1, maxtasksperchild=-2)
    finally:
        pool.terminate()


def test_maxtasksperchild_zero_or_minus_one_means_no_limit(ray_start):
    for no_limit in (0, -1):
        pool = _mp(ray_start).Pool(1, maxtasksperchild=no_limit)
        try:
            assert len({pool.apply(fn.pid) for _ in range(3)}) == 1
        finally:
            pool.terminate()


# ------------------------------------------------------------------------------------------- nothing leaks


def test_after_shutdown_no_pool_actor_or_result_thread_remains_and_nothing_restarts(ray_module, backend, exceptions,
                                                                                  tmp_path):
    """Difference: in Ray, the thread collecting a pending result calls ray.wait after the shutdown, which may start
    a new session (auto-init); here the thread ends and get() raises RayError, with no new session."""
    ray = ray_module
    pool = _mp(ray).Pool(2)
    pids = _pids(pool, 2)
    threads_before = threading.active_count()
    result = pool.map_async(fn.wait_for_file, [str(tmp_path / "never")] * 2, chunksize=1)
    ray.shutdown()
    assert wait_until(lambda: not any(process_alive(p) for p in pids), timeout=30)
    assert wait_until(result.ready, timeout=30)  # the thread collecting the results ended
    assert wait_until(lambda: threading.active_count() <= threads_before, timeout=30)
    if backend == "ray":
        return  # whatever session Ray's thread started, the fixture shuts it down
    with pytest.raises(exceptions.RayError, match=r"ray.shutdown\(\) was called before this Pool result arrived"):
        result.get(timeout=0)
    time.sleep(0.5)
    assert not ray.is_initialized()  # and it did not start a new session on its way out


@pytest.mark.course_only
def test_docstring_examples_run():
    import doctest

    from course_runtime.util.multiprocessing import pool
    import course_runtime

    try:
        results = doctest.testmod(pool)
    finally:
        course_runtime.shutdown()
    assert results.attempted >= 5 and results.failed == 0
