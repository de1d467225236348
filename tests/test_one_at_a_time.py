"""A driver that submits one small task and gets its result, again and again (the loop learners write first).
Two things make it fast in the course runtime: the thread in get() reads the worker's pipe itself (fast_paths), and
a worker that gets work back to back watches its pipe briefly before sleeping (Channel.recv). Neither may cost a
result, an error, a large value, or CPU time once the loop is over."""
import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.course_only


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_results_errors_and_large_values_one_at_a_time(ray_start):
    ray = ray_start
    @ray.remote(max_retries=0)
    def work(i):
        if i % 97 == 0:
            raise ValueError(f"task {i} fails")
        if i % 50 == 0:
            return np.full(300_000, i)  # 2.4 MB: written to shared memory, not inline
        return i * i

    for i in range(1, 2000):
        ref = work.remote(i)
        if i % 97 == 0:
            with pytest.raises(ValueError, match=f"task {i} fails"):
                ray.get(ref, timeout=60)
        elif i % 50 == 0:
            array = ray.get(ref, timeout=60)
            assert array.shape == (300_000,) and array[0] == array[-1] == i
        else:
            assert ray.get(ref, timeout=60) == i * i


def test_actor_calls_one_at_a_time_keep_their_order(ray_start):
    ray = ray_start
    @ray.remote
    class Counter:
        def __init__(self):
            self.count = 0

        def add(self, n):
            self.count += n
            return self.count

    counter = Counter.remote()
    assert [ray.get(counter.add.remote(1), timeout=60) for _ in range(2000)] == list(range(1, 2001))


def test_an_idle_runtime_uses_no_cpu_after_a_loop_of_small_tasks(ray_start):
    ray = ray_start
    """Watching a pipe without sleeping must stop when the work stops, in the workers and in the driver."""
    @ray.remote
    def noop():
        return None

    for _ in range(2000):
        ray.get(noop.remote(), timeout=60)
    time.sleep(0.2)
    pids = [os.getpid()] + [worker.pid for worker in ray.session.driver().raylet.pool.workers]
    before = [cpu_seconds(pid) for pid in pids]
    time.sleep(1.5)
    used = [cpu_seconds(pid) - b for pid, b in zip(pids, before)]
    assert max(used) < 0.1, f"CPU seconds used while idle for 1.5 s (driver, then workers): {used}"
