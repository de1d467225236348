"""Behaviour only the course runtime has: object lifetime in its store, its event log, its state summary,
its timeline format, and its security promises (no network port, private shared memory)."""
import os
import re
import stat
import time

import numpy as np
import pytest

import course_runtime as ray
from course_runtime import state

pytestmark = pytest.mark.course_only

MB = 2**20


@pytest.fixture
def rt():
    ray.init(num_cpus=2, object_store_memory=200 * MB)
    yield ray
    ray.shutdown()


def store_used():
    return state.summary().store["used"]


def eventually(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_dropping_the_last_ref_frees_the_shared_memory(rt):
    ref = ray.put(np.ones(10 * MB // 8))
    assert store_used() >= 10 * MB
    del ref
    assert eventually(lambda: store_used() == 0)


def test_a_result_dropped_while_its_task_runs_is_freed_when_it_arrives(rt):
    @ray.remote
    def make():
        time.sleep(0.3)
        return np.ones(5 * MB // 8)

    ref = make.remote()
    marker = ray.put(1)
    del ref
    time.sleep(0.8)
    ray.get(marker)
    assert eventually(lambda: store_used() == 0)


def test_refs_inside_a_stored_value_keep_their_objects_alive(rt):
    inner = ray.put(np.arange(1 * MB))
    outer = ray.put([inner])
    inner_hex = inner.hex()
    del inner
    time.sleep(0.1)
    (restored,) = ray.get(outer)
    assert restored.hex() == inner_hex
    assert ray.get(restored)[-1] == 1 * MB - 1
    del restored, outer
    assert eventually(lambda: store_used() == 0)


def test_a_ref_a_worker_keeps_after_its_task_stays_valid(rt):
    @ray.remote
    def stash(refs):
        import sys
        sys.kept_ref = refs[0]  # kept in the worker process after the task returns
        return refs[0].hex()

    @ray.remote
    def read_kept():
        import sys
        return float(ray.get(sys.kept_ref).sum())

    ref = ray.put(np.ones(MB))
    ray.get(stash.options(num_cpus=2).remote([ref]))  # num_cpus=2 so both tasks use the same (only free) worker
    del ref
    time.sleep(0.2)
    assert ray.get(read_kept.options(num_cpus=2).remote()) == MB


def test_large_arguments_by_value_are_stored_once_per_call_and_freed(rt):
    @ray.remote
    def total(a):
        return float(a.sum())

    array = np.ones(4 * MB // 8)
    assert ray.get([total.remote(array) for _ in range(3)]) == [4 * MB // 8] * 3
    assert len(state.events("put")) == 0  # they were not put by the user...
    assert len(state.events("argument_stored")) == 3  # ...but stored once per call
    assert eventually(lambda: store_used() == 0)  # ...and each hidden copy is gone once its task ends


def test_event_log_follows_a_task_through_submit_dispatch_finish(rt):
    @ray.remote
    def hello():
        return "hi"

    ref = hello.remote()
    ray.get(ref)
    task_id = ref.hex()[:48]  # an object id is its task's id plus an index
    kinds = [e["kind"] for e in state.events() if e.get("task_id") == task_id]
    assert kinds == ["submit", "dispatch", "finish"]
    assert state.events("finish")[-1]["state"] == "FINISHED"


def test_get_calls_are_counted_in_the_event_log(rt):
    refs = [ray.put(i) for i in range(3)]
    before = len(state.events("get"))
    ray.get(refs)
    ray.get(refs[0])
    assert len(state.events("get")) == before + 2


def test_summary_explains_why_tasks_wait(rt):
    @ray.remote
    def slow():
        time.sleep(1.5)
        return 1

    @ray.remote
    def needs(x):
        return x

    running = [slow.remote(), slow.remote()]
    queued = slow.remote()
    blocked = needs.remote(running[0])
    time.sleep(0.3)
    snapshot = state.summary()
    reasons = {t["state"]: t["reason"] for t in snapshot.tasks}
    assert "waiting for resources" in reasons["READY"] and "CPU" in reasons["READY"]
    assert "waiting for 1 argument" in reasons["WAITING"]
    assert sum(w["state"] == "running" for w in snapshot.workers) == 2
    text = repr(snapshot)
    assert "Tasks not finished (4)" in text and "Object store" in text
    assert "<table>" in snapshot._repr_html_()
    ray.get([queued, blocked])


def test_timeline_is_chrome_trace_with_one_event_per_task(rt, tmp_path):
    @ray.remote
    def step(i):
        time.sleep(0.05)
        return i

    ray.get([step.remote(i) for i in range(4)])
    events = [e for e in ray.timeline() if e["ph"] == "X"]
    assert len(events) == 4
    for event in events:
        assert event["name"] == "step" and event["cat"] == "task::step"
        assert event["dur"] >= 40_000  # microseconds
        assert re.fullmatch(r"worker \d+", event["tid"])
    path = tmp_path / "trace.json"
    assert ray.timeline(str(path)) is None
    assert path.read_text().startswith("[")


def test_functions_are_shipped_to_each_worker_once(rt):
    @ray.remote
    def f(i):
        return i

    ray.get([f.remote(i) for i in range(50)])
    raylet = ray.session.driver().raylet
    assert len(raylet.owner.function_table) == 1
    assert all(len(w.functions) <= 1 for w in raylet.pool.workers)


def test_no_network_socket_is_opened(rt):
    @ray.remote
    def pid():
        return os.getpid()

    pids = [os.getpid()] + ray.get([pid.remote() for _ in range(4)])
    inet_inodes = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{table}") as f:
                inet_inodes |= {line.split()[9] for line in list(f)[1:]}
        except FileNotFoundError:
            pass
    for p in pids:
        for fd in os.listdir(f"/proc/{p}/fd"):
            try:
                target = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            match = re.fullmatch(r"socket:\[(\d+)\]", target)
            assert not (match and match.group(1) in inet_inodes), f"process {p} has a network socket"


def test_shared_memory_segments_are_private_to_their_owner(rt):
    ref = ray.put(np.zeros(MB))
    (segment,) = ray.session.driver().raylet.store.segments.values()
    mode = os.fstat(segment.fd).st_mode
    assert stat.S_IMODE(mode) == 0o600
    del ref


def test_store_limit_error_says_what_fills_it(rt):
    keep = [ray.put(np.zeros(60 * MB // 8)) for _ in range(3)]
    with pytest.raises(ray.exceptions.ObjectStoreFullError) as info:
        ray.put(np.zeros(60 * MB // 8))
    message = str(info.value)
    assert "180.0 MiB" in message and "200.0 MiB" in message
    assert "put by the driver" in message
    del keep
    assert eventually(lambda: store_used() == 0)
    ray.put(np.zeros(60 * MB // 8))  # usable again


def test_worker_result_too_big_for_the_store_fails_the_task_clearly(rt):
    @ray.remote
    def huge():
        return np.zeros(300 * MB // 8)

    with pytest.raises(ray.exceptions.ObjectStoreFullError, match="returned by huge"):
        ray.get(huge.remote())
    assert ray.get(ray.put(5)) == 5


def test_refs_from_a_previous_session_give_a_clear_error():
    ray.init(num_cpus=1)
    ref = ray.put(1)
    ray.shutdown()
    ray.init(num_cpus=1)
    try:
        with pytest.raises(ray.exceptions.ObjectLostError, match="shut down"):
            ray.get(ref)
    finally:
        ray.shutdown()


def test_cluster_addresses_point_to_real_ray():
    """Difference from Ray: the course runtime has no cluster to connect to."""
    with pytest.raises(ValueError, match="COURSE_BACKEND=ray"):
        ray.init(address="ray://10.0.0.1:10001")
    assert not ray.is_initialized()


def test_functions_capturing_large_data_warn_and_huge_ones_are_refused(rt):
    """As in Ray: a function that pickles to more than 10 MiB warns, more than 95 MiB is refused."""
    big = np.ones(2 * MB)  # 16 MiB

    @ray.remote
    def uses_big():
        return float(big.sum())

    with pytest.warns(UserWarning, match="put"):
        assert ray.get(uses_big.remote()) == 2 * MB
    huge = np.ones(13 * MB)  # 104 MiB

    @ray.remote
    def uses_huge():
        return float(huge.sum())

    with pytest.raises(ValueError, match="too large"):
        uses_huge.remote()
    assert ray.get(uses_big.remote()) == 2 * MB  # still usable


def test_a_small_task_is_not_held_back_by_a_bigger_one_of_the_same_function(rt):
    """Difference from Ray: queues are per resource shape, so C (1 CPU) starts while B (2 CPUs) waits for A."""
    @ray.remote
    def span(seconds):
        start = time.time()
        time.sleep(seconds)
        return start, time.time()

    a = span.remote(1.0)
    time.sleep(0.2)
    b = span.options(num_cpus=2).remote(0.1)
    c = span.remote(0.1)
    (a_start, a_end), (b_start, _), (c_start, c_end) = ray.get([a, b, c])
    assert c_end <= a_end and c_end <= b_start  # C ran beside A, before B
    assert b_start >= a_end - 0.05  # B needed both CPUs: it waited for A


def test_a_container_memory_limit_sizes_the_store(tmp_path):
    from course_runtime.scheduler import total_memory

    machine = total_memory(limit_files=())
    limit = tmp_path / "memory.max"
    limit.write_text("1073741824\n")
    assert total_memory(limit_files=[str(limit)]) == min(machine, 2**30)
    limit.write_text("max\n")  # cgroup v2's "no limit"
    assert total_memory(limit_files=[str(limit)]) == machine
    assert total_memory(limit_files=[str(tmp_path / "absent")]) == machine
