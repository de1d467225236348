"""The course runtime's worker pool under trees of blocked tasks (issue 16): it grows for blocked parents, shrinks
back when they are done, stops at a bound with a clear error instead of silence, and holds up under many random
trees. Ray's pool grows the same way (a blocked worker is not counted in its soft limit), but it has no bound and
starts a worker in about a second, so these stay course-only; the shapes themselves run on Ray in test_task_trees.py.
"""

import os
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import descendants, wait_until
from test_task_trees import LARGE, SMALL, expected_tree_sum, qsort_remote, tree_remote

pytestmark = pytest.mark.course_only
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker_count():
    return len(descendants(os.getpid()))


def test_extra_workers_started_for_blocked_parents_exit_when_idle(ray_start):
    ray = ray_start
    node = tree_remote(ray)
    payload = np.ones(SMALL)
    assert ray.get(node.remote(12, 1, payload, "list"), timeout=50) == expected_tree_sum(12, 1, payload)
    assert worker_count() >= 12  # one process per waiting parent
    assert wait_until(lambda: worker_count() == 2, timeout=10), f"{worker_count()} workers still running"
    assert ray.available_resources()["CPU"] == 2  # every CPU lent by a waiting parent came back
    assert ray.get(node.remote(3, 2, payload, "wait"), timeout=30) == expected_tree_sum(3, 2, payload)


def test_actors_do_not_take_the_pool_from_nested_tasks(ray_start):
    """Actors have workers of their own: 36 live actors must not stop a tree of tasks from getting workers."""
    ray = ray_start

    @ray.remote(num_cpus=0)
    class Idle:
        def ping(self):
            return 1

    actors = [Idle.remote() for _ in range(36)]
    assert sum(ray.get([a.ping.remote() for a in actors], timeout=50)) == 36
    payload = np.ones(SMALL)
    assert ray.get(tree_remote(ray).remote(6, 1, payload, "list"), timeout=30) == expected_tree_sum(6, 1, payload)


def run_driver(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=50, env={**os.environ, "PYTHONPATH": REPO, **env})


def test_a_pool_at_its_bound_fails_the_waiting_task_with_a_clear_error():
    """With room for 4 workers, a chain of 10 parents waiting on each other cannot go on: within seconds the user
    gets an error that says why and what to do, and the runtime still works afterwards."""
    result = run_driver("""
        import time
        import course_runtime as ray
        ray.init(num_cpus=2)

        @ray.remote
        def chain(n):
            return 0 if n == 0 else 1 + ray.get(chain.remote(n - 1))

        start = time.monotonic()
        try:
            ray.get(chain.remote(10), timeout=40)
        except ray.exceptions.RayTaskError as error:
            print("ERROR", time.monotonic() - start, str(error).replace("\\n", " "))
        print("AFTER", ray.get(chain.remote(2), timeout=20))
        ray.shutdown()
    """, COURSE_RUNTIME_MAX_WORKERS="4")
    assert result.returncode == 0, result.stderr[-3000:]
    error_line = next(line for line in result.stdout.splitlines() if line.startswith("ERROR"))
    assert float(error_line.split()[1]) < 20
    assert "No worker process could be started for task 'chain'" in error_line
    assert "all 4 worker processes are inside tasks blocked in ray.get()" in error_line
    assert "COURSE_RUNTIME_MAX_WORKERS" in error_line and "fewer, larger leaves" in error_line
    assert "AFTER 2" in result.stdout


def test_a_bad_worker_bound_is_refused_at_init():
    result = run_driver("import course_runtime as ray; ray.init(num_cpus=1)", COURSE_RUNTIME_MAX_WORKERS="lots")
    assert result.returncode != 0
    assert "COURSE_RUNTIME_MAX_WORKERS must be a whole number of worker processes, not 'lots'" in result.stderr


def test_many_random_trees_all_finish_with_the_right_results(ray_start):
    """A stress run: 30 rounds of the shapes of test_task_trees.py with random depths, widths, sizes, ways of
    gathering and seeds, some rounds several trees at once; every result is checked, and afterwards every CPU is
    available again and the pool is back to its size."""
    ray = ray_start
    node, qsort = tree_remote(ray), qsort_remote(ray, 3_000)
    rng = random.Random(16)
    deadline = time.monotonic() + 45
    rounds = 0
    while rounds < 30 and time.monotonic() < deadline:
        rounds += 1
        seed = rng.randrange(2**32)
        shapes = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            kind = rng.choice(["chain", "tree", "qsort"])
            if kind == "qsort":
                data = np.random.default_rng(seed).integers(0, 10**6, rng.randrange(5_000, 60_000)).tolist()
                shapes.append((qsort.remote(list(data)), sorted(data), f"qsort of {len(data)} (seed {seed})"))
                continue
            depth, width = (rng.randrange(5, 40), 1) if kind == "chain" else (rng.randrange(1, 5), rng.randrange(2, 4))
            payload = np.random.default_rng(seed).random(rng.choice([SMALL, LARGE]))
            gather = rng.choice(["list", "one by one", "wait"])
            shapes.append((node.remote(depth, width, payload, gather), expected_tree_sum(depth, width, payload),
                           f"{kind} depth={depth} width={width} size={payload.size} {gather} (seed {seed})"))
        for ref, expected, what in shapes:
            assert ray.get(ref, timeout=40) == pytest.approx(expected), what
    assert rounds >= 10, f"only {rounds} rounds in 45 s"
    assert wait_until(lambda: ray.available_resources().get("CPU") == 2, timeout=5)
    assert wait_until(lambda: worker_count() == 2, timeout=10), f"{worker_count()} workers still running"


def test_a_task_that_needs_a_gpu_its_waiting_parent_holds_fails_clearly_instead_of_hanging():
    """A task blocked in get() gives back its CPUs but not its GPUs: a parent holding the only GPU that waits for a
    child needing a GPU can never go on. Ray waits forever; the course runtime fails the child within seconds,
    saying why, and keeps working. A task that waits for a GPU held by an actor (which may still be killed) is
    left waiting."""
    result = run_driver("""
        import time
        import course_runtime as ray
        ray.init(num_cpus=2, num_gpus=1)

        @ray.remote(num_gpus=1)
        def child():
            return "ran"

        @ray.remote(num_gpus=1)
        def parent():
            return ray.get(child.remote())

        start = time.monotonic()
        try:
            ray.get(parent.remote(), timeout=30)
        except ray.exceptions.RayTaskError as error:
            print("ERROR", time.monotonic() - start, str(error).replace("\\n", " "))

        @ray.remote(num_gpus=1)
        class Holder:
            def ping(self):
                return "held"

        @ray.remote
        def waits_for_gpu_task():
            return ray.get(child.remote())

        holder = Holder.remote()
        assert ray.get(holder.ping.remote()) == "held"
        ref = waits_for_gpu_task.remote()
        ready, _ = ray.wait([ref], timeout=5)
        print("STILL WAITING", not ready)
        ray.kill(holder)
        print("AFTER", ray.get(ref, timeout=20))
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    error_line = next(line for line in result.stdout.splitlines() if line.startswith("ERROR"))
    assert float(error_line.split()[1]) < 15
    assert "Task 'child' can never start: it needs {'GPU': 1}" in error_line
    assert "held by tasks blocked in ray.get()/ray.wait() waiting for it (parent)" in error_line
    assert "gives back its CPUs, but not its GPUs" in error_line
    assert "STILL WAITING True" in result.stdout and "AFTER ran" in result.stdout


def test_worker_pool_docstring_examples_run():
    import doctest

    from course_runtime import worker_pool
    results = doctest.testmod(worker_pool)
    assert results.attempted >= 1 and results.failed == 0
