"""course_runtime's object store guarantees (course-only: real Ray spills to disk and manages its own processes):
nothing left in /dev/shm or in the process table after shutdown() or after the driver is SIGKILLed, and
`object_store_memory` is a real, reusable limit.

Note: the /dev/shm checks compare directory listings, so another program creating segments at the same moment
could disturb them; entries that are ours persist, so the checks wait a few seconds before deciding."""

import gc
import os
import re
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
from conftest import descendants, kill_driver_and_family, process_alive, read_until, wait_until

pytestmark = pytest.mark.course_only

MB = 2**20
SHM = "/dev/shm"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shm():
    try:
        return set(os.listdir(SHM))
    except FileNotFoundError:
        return set()


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _python_singletons(pids):
    """multiprocessing's forkserver and resource tracker: one per driver process for its whole life, by design."""
    return {p for p in pids if "multiprocessing.forkserver" in _cmdline(p) or "resource_tracker" in _cmdline(p)}


def _describe(pids):
    return {p: _cmdline(p)[:120] for p in pids}


def test_many_large_task_arguments_leave_nothing_after_shutdown(ray_module):
    """Tasks passing and returning 5 MB arrays, then shutdown(): no new /dev/shm entries, no worker left alive."""
    ray = ray_module
    shm_before = _shm()
    procs_before = descendants(os.getpid())
    ray.init(num_cpus=2)
    arr = np.arange(5 * MB // 8, dtype=np.float64)

    @ray.remote
    def double(a):
        return a * 2

    @ray.remote
    def pid():
        return os.getpid()

    stored = ray.put(arr)
    results = ray.get([double.remote(arr) for _ in range(12)] + [double.remote(stored) for _ in range(12)], timeout=60)
    for r in results[:: 6]:
        assert r[-1] == 2 * arr[-1]
    worker_pids = set(ray.get([pid.remote() for _ in range(8)], timeout=30))
    started = descendants(os.getpid()) - procs_before
    assert worker_pids, "no worker pids"
    for name in _shm() - shm_before:  # segments the runtime made while running: readable by their owner only
        try:
            mode = os.stat(os.path.join(SHM, name)).st_mode
        except FileNotFoundError:
            continue
        assert stat.S_IMODE(mode) & 0o077 == 0, f"/dev/shm/{name} is readable by others: {oct(mode)}"
    kept = results[0]  # a user may keep an array from get() past shutdown
    del results, stored
    ray.shutdown()

    assert wait_until(lambda: not (_shm() - shm_before), 5), f"left in /dev/shm: {sorted(_shm() - shm_before)}"

    def leftovers():
        return {p for p in (started | worker_pids) if process_alive(p)} - _python_singletons(started)

    assert wait_until(lambda: not leftovers(), 5), f"processes left after shutdown: {_describe(leftovers())}"
    assert kept.shape == arr.shape


_KILLED_DRIVER = r"""
import os, sys, time
import numpy as np
import course_runtime as ray

tmp = sys.argv[1]
ray.init(num_cpus=2)
big = ray.put(np.ones(50 * 2**20 // 8))


@ray.remote
def reader(a):
    return float(a[0] + a[-1])


@ray.remote
def long_task(path):
    import os, time
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(120)


assert ray.get(reader.remote(big), timeout=60) == 2.0
pid_file = os.path.join(tmp, "long.pid")
ref = long_task.remote(pid_file)
while not os.path.exists(pid_file):
    time.sleep(0.01)
print("ready", flush=True)
time.sleep(300)
"""


def test_sigkilled_driver_leaves_no_workers_or_segments(tmp_path):
    """A driver holding a 50 MB object and running a long task is SIGKILLed: within 5 s none of its worker
    processes remains and /dev/shm has nothing new (as after a Jupyter kernel restart)."""
    shm_before = _shm()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    with open(tmp_path / "driver.err", "w") as err:
        driver = subprocess.Popen(
            [sys.executable, "-c", _KILLED_DRIVER, str(tmp_path)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
        )
    family = set()
    try:
        ready = read_until(driver, "ready")
        assert "ready" in ready, f"driver did not start: {(tmp_path / 'driver.err').read_text()[-3000:]}"
        with open(tmp_path / "long.pid") as f:
            long_pid = int(f.read())
        family = descendants(driver.pid) | {long_pid}
        assert process_alive(long_pid)

        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)

        survivors = lambda: {p for p in family if process_alive(p)}  # noqa: E731
        assert wait_until(lambda: not survivors(), 5), \
            f"processes of the killed driver still alive: {_describe(survivors())}"
        assert wait_until(lambda: not (_shm() - shm_before), 5), f"left in /dev/shm: {sorted(_shm() - shm_before)}"
    finally:
        kill_driver_and_family(driver, family)


_SIZE_IN_MESSAGE = re.compile(r"\d+(\.\d+)?\s*(bytes|[KMG]i?B)\b")


def test_object_store_memory_is_a_limit_with_a_clear_error(ray_module, exceptions):
    """With object_store_memory=50 MiB, a third 20 MiB put raises ObjectStoreFullError saying how much is used;
    after the refs are dropped the memory can be used again."""
    ray = ray_module
    ray.init(num_cpus=2, object_store_memory=50 * MB)
    first = ray.put(np.zeros(20 * MB // 8))
    second = ray.put(np.ones(20 * MB // 8))
    with pytest.raises(exceptions.ObjectStoreFullError) as info:
        ray.put(np.full(20 * MB // 8, 2.0))
    message = str(info.value)
    assert _SIZE_IN_MESSAGE.search(message), f"message does not say how much is used: {message!r}"
    assert isinstance(info.value, exceptions.RayError)
    assert ray.get(second)[0] == 1.0  # what was stored is intact

    del first, second
    gc.collect()

    def put_again():
        try:
            return ray.put(np.full(20 * MB // 8, 3.0))
        except exceptions.ObjectStoreFullError:
            return None

    third = wait_until(put_again, 5)
    assert third is not None, "memory not reusable after the refs were dropped"
    assert ray.get(third)[-1] == 3.0


def test_object_bigger_than_the_store_is_rejected(ray_module, exceptions):
    """A single 60 MiB object does not fit a 50 MiB store: ObjectStoreFullError; the store still works."""
    ray = ray_module
    ray.init(num_cpus=2, object_store_memory=50 * MB)
    with pytest.raises(exceptions.ObjectStoreFullError):
        ray.put(np.zeros(60 * MB // 8))
    assert ray.get(ray.put(np.arange(10)))[-1] == 9


def test_dropped_objects_are_freed(ray_module):
    """With a 50 MiB store, putting and dropping 20 MiB arrays 20 times, and round-tripping 20 MiB task arguments
    and results 10 times each, never fills the store: objects are freed when no ref remains (driver or worker)."""
    ray = ray_module
    ray.init(num_cpus=2, object_store_memory=50 * MB)
    n = 20 * MB // 8

    for i in range(20):
        ref = ray.put(np.full(n, float(i)))
        value = ray.get(ref)
        assert value[0] == float(i)
        del ref, value

    @ray.remote
    def make(i):
        import numpy as np

        return np.full(20 * 2**20 // 8, float(i))

    @ray.remote
    def first(a):
        return float(a[0])

    for i in range(10):
        value = ray.get(make.remote(i), timeout=60)
        assert value[-1] == float(i)
        del value
    for i in range(10):
        assert ray.get(first.remote(np.full(n, float(i))), timeout=60) == float(i)

    @ray.remote
    def put_inside(i):
        import numpy as np

        return [ray.put(np.full(20 * 2**20 // 8, float(i)))]

    for i in range(10):
        # a worker puts an object and returns its ref: freed once the driver drops the ref
        (inner,) = ray.get(put_inside.remote(i), timeout=60)
        assert ray.get(inner)[0] == float(i)
        del inner
