"""Remote functions: the @remote forms and options, argument passing and binding, multiple returns, task graphs
(chains, fan-out/fan-in, trees, nested tasks), parallelism, and worker output forwarding."""

import os
import re
import time

import numpy as np
import pytest


# ---------------------------------------------------------------------------------------------- @remote forms


def test_remote_without_parentheses(ray_start):
    """@remote on a function gives an object whose .remote() returns a ref to the result."""
    ray = ray_start

    @ray.remote
    def add(a, b):
        return a + b

    ref = add.remote(2, 3)
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == 5


def test_remote_with_options(ray_start):
    """@remote(num_cpus=..., max_retries=...) is accepted and the task runs."""
    ray = ray_start

    @ray.remote(num_cpus=1, max_retries=0)
    def mul(a, b):
        return a * b

    assert ray.get(mul.remote(4, 5)) == 20


def test_remote_with_empty_parentheses_is_an_assertion_error(ray_module):
    """@remote() with no arguments raises AssertionError, as in Ray."""
    with pytest.raises(AssertionError):

        @ray_module.remote()
        def f():
            return 1


def test_remote_applied_as_function_call(ray_start):
    """ray.remote(fn) works like the decorator."""
    ray = ray_start

    def plain(x):
        return x - 1

    assert ray.get(ray.remote(plain).remote(10)) == 9


def test_unknown_option_raises_value_error_naming_it(ray_start):
    """An unknown keyword in @remote(...) or .options(...) raises ValueError naming the keyword."""
    ray = ray_start
    with pytest.raises(ValueError, match="not_an_option"):

        @ray.remote(not_an_option=1)
        def f():
            return 1

    @ray.remote
    def g():
        return 1

    with pytest.raises(ValueError, match="also_bogus"):
        g.options(also_bogus=2)


def test_options_override_without_changing_the_original(ray_start):
    """.options(num_returns=2) changes only that call; the decorated function keeps its own options."""
    ray = ray_start

    @ray.remote
    def pair():
        return "a", "b"

    two = pair.options(num_returns=2).remote()
    assert isinstance(two, list) and len(two) == 2
    assert ray.get(two) == ["a", "b"]
    one = pair.remote()
    assert isinstance(one, ray.ObjectRef)
    assert ray.get(one) == ("a", "b")
    assert ray.get(pair.options(num_cpus=0.5, name="custom-name", max_retries=1).remote()) == ("a", "b")


def test_common_options_are_accepted(ray_start):
    """memory, scheduling_strategy, name, retry options are accepted by @remote and .options."""
    ray = ray_start

    @ray.remote(memory=10 * 2**20, scheduling_strategy="DEFAULT", name="named", max_retries=-1, retry_exceptions=False)
    def f():
        return 7

    assert ray.get(f.remote()) == 7
    assert ray.get(f.options(scheduling_strategy="SPREAD", retry_exceptions=[KeyError]).remote()) == 7


def test_calling_remote_function_directly_raises_type_error(ray_start):
    """Calling a remote function like a normal one raises TypeError with Ray's wording."""
    ray = ray_start

    @ray.remote
    def plain(x):
        return x

    with pytest.raises(TypeError) as info:
        plain(1)
    assert re.search(
        r"Remote functions cannot be called directly\. Instead of running '[\w.<>]*plain\(\)', "
        r"try '[\w.<>]*plain\.remote\(\)'",
        str(info.value),
    ), str(info.value)


@pytest.mark.parametrize(
    "args, kwargs",
    [((1, 2, 3), {}), ((), {}), ((1,), {"nope": 2}), ((1,), {"x": 1})],
    ids=["too-many", "missing", "unknown-keyword", "duplicate"],
)
def test_wrong_arguments_raise_type_error_at_submit(ray_start, args, kwargs):
    """Arguments that don't bind to the signature raise TypeError from .remote(), not later from get."""
    ray = ray_start

    @ray.remote
    def one_arg(x, y=0):
        return x + y

    with pytest.raises(TypeError):
        one_arg.remote(*args, **kwargs)


def test_async_def_task_is_rejected(ray_module):
    """@remote on an `async def` function raises ValueError."""
    with pytest.raises(ValueError):

        @ray_module.remote
        async def coro():
            return 1


# ------------------------------------------------------------------------------------------------- num_returns


def test_num_returns_zero_returns_none_and_still_runs(ray_start, sync, tmp_path):
    """num_returns=0: .remote() returns None, and the task still runs."""
    ray = ray_start
    marker = str(tmp_path / "ran")

    @ray.remote(num_returns=0)
    def side_effect():
        sync.touch(marker)

    assert side_effect.remote() is None
    assert sync.wait_for(marker, 30)


def test_num_returns_one_gives_a_single_ref_even_for_tuples(ray_start):
    """num_returns=1 (the default) gives one ref, holding the whole tuple."""
    ray = ray_start

    @ray.remote(num_returns=1)
    def tup():
        return 1, 2

    ref = tup.remote()
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == (1, 2)


def test_num_returns_k_gives_k_refs(ray_start):
    """num_returns=3 gives a list of three refs, one per returned value."""
    ray = ray_start

    @ray.remote(num_returns=3)
    def three(x):
        return x, x * 2, [x] * 3

    refs = three.remote(5)
    assert isinstance(refs, list) and len(refs) == 3
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs[1]) == 10
    assert ray.get(refs) == [5, 10, [5, 5, 5]]


def test_num_returns_wrong_count_is_an_error(ray_start):
    """A task returning 3 values with num_returns=2 makes get raise a ValueError mentioning num_returns."""
    ray = ray_start

    @ray.remote(num_returns=2)
    def too_many():
        return 1, 2, 3

    refs = too_many.remote()
    with pytest.raises(ValueError, match="num_returns"):
        ray.get(refs[0], timeout=30)
    with pytest.raises(ValueError):
        ray.get(refs[1], timeout=30)


def test_num_returns_non_sequence_is_an_error(ray_start, exceptions):
    """A task returning a non-sequence with num_returns=2 makes get raise a task error."""
    ray = ray_start

    @ray.remote(num_returns=2)
    def scalar():
        return 1

    refs = scalar.remote()
    with pytest.raises(exceptions.RayTaskError):
        ray.get(refs[0], timeout=30)


# ------------------------------------------------------------------------------------------------ task graphs


def test_chain_of_tasks(ray_start):
    """A ref passed to the next task is resolved; a chain of ten increments gives 10."""
    ray = ray_start

    @ray.remote
    def inc(x):
        return x + 1

    ref = ray.put(0)
    for _ in range(10):
        ref = inc.remote(ref)
    assert ray.get(ref) == 10


def test_fan_out_fan_in(ray_start):
    """Twenty squares computed in parallel, then summed by one task taking all refs as top-level *args."""
    ray = ray_start

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def total(*values):
        return sum(values)

    squares = [square.remote(i) for i in range(20)]
    assert ray.get(total.remote(*squares)) == sum(i * i for i in range(20))


def test_tree_reduce(ray_start):
    """Pairwise reduction of 16 values through layers of tasks gives their sum."""
    ray = ray_start

    @ray.remote
    def add(a, b):
        return a + b

    layer = [ray.put(i) for i in range(16)]
    while len(layer) > 1:
        layer = [add.remote(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    assert ray.get(layer[0]) == sum(range(16))


def test_top_level_refs_are_resolved_positional_and_keyword(ray_start):
    """Refs passed directly as positional or keyword arguments arrive as their values."""
    ray = ray_start

    @ray.remote
    def describe(a, b, *, c):
        return type(a).__name__, type(b).__name__, type(c).__name__, a + b + c

    @ray.remote
    def make(x):
        return x

    result = ray.get(describe.remote(ray.put(1), make.remote(2), c=ray.put(3)))
    assert result == ("int", "int", "int", 6)


def test_nested_refs_arrive_as_refs(ray_start):
    """Refs inside a list or dict argument arrive as ObjectRefs; the task can get them itself."""
    ray = ray_start
    inner = ray.put("payload")

    @ray.remote
    def inspect_nested(items, mapping):
        return (
            isinstance(items[0], ray.ObjectRef),
            isinstance(mapping["k"], ray.ObjectRef),
            ray.get(items[0]),
            ray.get(mapping["k"]),
        )

    assert ray.get(inspect_nested.remote([inner], {"k": inner})) == (True, True, "payload", "payload")


def test_refs_returned_by_tasks_stay_refs(ray_start):
    """A task returning a ref (from put or from .remote) gives a ref to a ref; a second get gives the value."""
    ray = ray_start

    @ray.remote
    def leaf():
        return "leaf value"

    @ray.remote
    def returns_task_ref():
        return leaf.remote()

    @ray.remote
    def returns_put_ref():
        return ray.put("put value")

    outer = ray.get(returns_task_ref.remote())
    assert isinstance(outer, ray.ObjectRef)
    assert ray.get(outer) == "leaf value"
    outer = ray.get(returns_put_ref.remote())
    assert isinstance(outer, ray.ObjectRef)
    assert ray.get(outer) == "put value"


def test_tasks_submit_tasks_and_get_without_deadlock(ray_start):
    """Four num_cpus=1 parents on 2 CPUs each submit and get two children: blocked parents lend their CPU back."""
    ray = ray_start

    @ray.remote(num_cpus=1)
    def child(x):
        time.sleep(0.05)
        return x * 10

    @ray.remote(num_cpus=1)
    def parent(x):
        return sum(ray.get([child.remote(x), child.remote(x + 1)]))

    refs = [parent.remote(i) for i in range(4)]
    assert ray.get(refs, timeout=30) == [10 * (2 * i + 1) for i in range(4)]


def test_recursive_tasks(ray_start):
    """A recursive task (fib) that gets its own sub-tasks completes on 2 CPUs."""
    ray = ray_start

    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ray.get(fib.remote(6), timeout=30) == 8


def test_tasks_run_in_parallel_on_two_cpus(ray_start, sync, tmp_path):
    """Four 1-second tasks on 2 CPUs take about 2 s: more than 1.8 s (limit respected) and under 3 s (parallel)."""
    ray = ray_start

    @ray.remote
    def nap(t):
        time.sleep(t)
        return os.getpid()

    @ray.remote
    def meet(i):
        sync.touch(str(tmp_path / f"warm{i}"))
        return sync.wait_for_all([str(tmp_path / f"warm{j}") for j in range(2)], 30)

    assert ray.get([meet.remote(i) for i in range(2)], timeout=60) == [True, True]  # two workers are up
    start = time.monotonic()
    pids = ray.get([nap.remote(1.0) for _ in range(4)], timeout=30)
    elapsed = time.monotonic() - start
    assert 1.8 < elapsed < 3.0, elapsed
    assert os.getpid() not in pids
    assert len(set(pids)) >= 2


# ---------------------------------------------------------------------------------------------- worker output


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _wait_for_output(capfd, pattern, stream="out", timeout=15.0):
    seen = ""
    deadline = time.monotonic() + timeout
    while True:
        captured = capfd.readouterr()
        seen += _ANSI.sub("", getattr(captured, stream))
        match = re.search(pattern, seen)
        if match or time.monotonic() > deadline:
            return match, seen
        time.sleep(0.1)


def test_worker_print_reaches_driver_stdout_with_prefix(ray_start, capfd):
    """print() in a task appears on the driver's stdout as '(task_name pid=<worker pid>) text'."""
    ray = ray_start

    @ray.remote
    def chatty_task(word):
        print("hello from the worker:", word, flush=True)
        return os.getpid()

    pid = ray.get(chatty_task.remote("xyzzy-31"))
    match, seen = _wait_for_output(capfd, r"\(chatty_task pid=(\d+)[^)]*\) hello from the worker: xyzzy-31")
    assert match, f"no prefixed line in driver stdout: {seen!r}"
    assert int(match.group(1)) == pid


def test_worker_stderr_reaches_driver_stderr_with_prefix(ray_start, capfd):
    """Text a task writes to stderr appears on the driver's stderr with the '(task_name pid=...)' prefix."""
    ray = ray_start

    @ray.remote
    def grumbly_task():
        import sys

        print("complaint-77", file=sys.stderr, flush=True)
        return os.getpid()

    pid = ray.get(grumbly_task.remote())
    match, seen = _wait_for_output(capfd, r"\(grumbly_task pid=(\d+)[^)]*\) complaint-77", stream="err")
    assert match, f"no prefixed line in driver stderr: {seen!r}"
    assert int(match.group(1)) == pid


# ------------------------------------------------------------------------------------- what can be shipped


def test_closures_capture_local_values(ray_start):
    """A task defined inside a function sees the variables it closes over."""
    ray = ray_start
    offset = 41
    table = {"a": 1}

    @ray.remote
    def shifted(x):
        return x + offset + table["a"]

    assert ray.get(shifted.remote(0)) == 42


_SCRIPT = """
import sys
import {module} as ray
from helper_mod import triple        # a module next to the script, as a notebook imports its own helpers


class Point:                          # classes and functions of __main__ (a script or a notebook cell)
    def __init__(self, x, y):
        self.x, self.y = x, y


def norm1(p):
    return abs(p.x) + abs(p.y)


@ray.remote
def task(p):
    return norm1(p), triple(p.x), Point(p.y, p.x)


ray.init(num_cpus=2)
n, t, q = ray.get(task.remote(Point(2, -5)), timeout=60)
assert (n, t) == (7, 6), (n, t)
assert isinstance(q, Point) and (q.x, q.y) == (-5, 2)
print("script-ok")
ray.shutdown()
"""


def test_functions_and_classes_of_main_and_local_modules_work(ray_module, tmp_path):
    """A script's __main__ functions/classes and a module imported from the script's folder work in tasks."""
    import subprocess
    import sys

    (tmp_path / "helper_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    (tmp_path / "script.py").write_text(_SCRIPT.format(module=ray_module.__name__))
    env = dict(os.environ)
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100
    )
    assert proc.returncode == 0 and "script-ok" in proc.stdout, proc.stdout + proc.stderr


def test_locally_defined_class_instances_round_trip(ray_start):
    """Instances of a class defined in a test function can be passed to and returned from tasks."""
    ray = ray_start

    class Box:
        def __init__(self, v):
            self.v = v

    @ray.remote
    def grow(box):
        return Box(box.v * 2)

    out = ray.get(grow.remote(Box(4)))
    assert type(out).__name__ == "Box" and out.v == 8


def test_numpy_in_tasks(ray_start):
    """Tasks can compute with numpy and return arrays."""
    ray = ray_start

    @ray.remote
    def stats(n):
        a = np.arange(n, dtype=np.float64)
        return a.sum(), a.reshape(2, -1)

    total, matrix = ray.get(stats.remote(10))
    assert total == 45.0
    np.testing.assert_array_equal(matrix, np.arange(10.0).reshape(2, 5))


# ------------------------------------------------------------------------------------------------- timeline


def test_timeline_returns_chrome_trace_events_for_tasks(ray_start, tmp_path, poll):
    """timeline() lists Chrome-trace 'X' events (microsecond ts/dur) naming each task; timeline(filename) writes
    the same list as JSON and returns None."""
    import json

    ray = ray_start

    @ray.remote
    def traced_task(x):
        time.sleep(0.1)
        return x

    begin = time.time()
    ray.get([traced_task.remote(i) for i in range(3)], timeout=30)
    end = time.time()

    def task_events():
        events = ray.timeline()
        assert isinstance(events, list)
        return [e for e in events if "traced_task" in str(e.get("name"))]

    events = poll(lambda: len(task_events()) >= 3 and task_events(), timeout=15)
    assert events, ray.timeline()
    for e in events:
        assert e["ph"] == "X"
        assert {"cat", "name", "pid", "tid", "ts", "dur"} <= set(e)
        assert begin * 1e6 - 1e6 <= e["ts"] <= end * 1e6 + 1e6, (begin, e["ts"], end)
        assert 0.09e6 <= e["dur"] <= (end - begin) * 1e6 + 1e6
    path = tmp_path / "trace.json"
    assert ray.timeline(filename=str(path)) is None
    written = json.loads(path.read_text())
    assert isinstance(written, list) and sum("traced_task" in str(e.get("name")) for e in written) >= 3
