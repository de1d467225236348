"""Shared fixtures for the course_runtime test suite.

The same tests run on two backends, chosen with the environment variable COURSE_TEST_BACKEND:

- unset or "course": `import course_runtime as ray` (the runtime this repository ships);
- "ray": `import ray` (real Ray 2.60, the reference whose behaviour course_runtime follows).

Tests never import the backend themselves: they take it from a fixture (`def test_x(ray_start): ray = ray_start`).
Tests that check behaviour only course_runtime has (its store limit, its cleanup guarantees) carry
`@pytest.mark.course_only` and are skipped on the ray backend.

Fixtures:
- `backend`: "course" or "ray".
- `ray_start`: the module, initialised with `init(num_cpus=2)`; shut down afterwards.
- `ray_gpus`: the module, initialised with `init(num_cpus=2, num_gpus=2, resources={"TPUish": 2})`.
- `ray_module`: the module, *not* initialised (shut down before and after), for lifecycle tests.
- `exceptions`: the backend's `exceptions` module.
- `sync`: small file-based helpers for coordinating driver and tasks (see `_make_sync`).

On the ray backend a session is reused between tests that ask for the same `init` arguments (real Ray takes
seconds to start); it is restarted after any failed test so one failure cannot leak into the next test.
On the course backend every test gets a fresh runtime.
"""

import importlib
import os
import select
import signal
import time
import types

import pytest

BACKEND = (os.environ.get("COURSE_TEST_BACKEND") or "course").strip().lower()
if BACKEND not in ("course", "ray"):
    raise pytest.UsageError(f"COURSE_TEST_BACKEND must be 'course' or 'ray', not {BACKEND!r}")
MODULE_NAME = "ray" if BACKEND == "ray" else "course_runtime"

# A hung runtime must fail one test, not hang the whole suite.
TEST_TIMEOUT_S = 120 if BACKEND == "ray" else 60


def load_backend():
    return importlib.import_module(MODULE_NAME)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "course_only: behaviour specific to course_runtime (skipped when COURSE_TEST_BACKEND=ray)"
    )


def pytest_report_header(config):
    return f"backend: {BACKEND} (import {MODULE_NAME})"


def pytest_collection_modifyitems(config, items):
    if BACKEND != "ray":
        return
    skip = pytest.mark.skip(reason="course_runtime-only behaviour; not checked against real Ray")
    for item in items:
        if "course_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item.stash[_FAILED_KEY] = True


_FAILED_KEY = pytest.StashKey[bool]()
_session = {"key": None}  # init arguments of the running (reused) real-Ray session


def _stop(ray):
    ray.shutdown()
    _session["key"] = None


def _start(ray, **kwargs):
    key = repr(sorted(kwargs.items()))
    if BACKEND == "ray":
        if ray.is_initialized() and _session["key"] == key:
            return ray
        _stop(ray)
        ray.init(include_dashboard=False, **kwargs)
        _session["key"] = key
    else:
        if ray.is_initialized():
            ray.shutdown()
        ray.init(**kwargs)
    return ray


def _finish(ray, request):
    if BACKEND == "course" or request.node.stash.get(_FAILED_KEY, False):
        _stop(ray)


@pytest.fixture(scope="session")
def backend():
    """'course' or 'ray': which implementation the suite runs against."""
    return BACKEND


@pytest.fixture
def ray_start(request):
    """The backend module after `init(num_cpus=2)`."""
    ray = _start(load_backend(), num_cpus=2)
    yield ray
    _finish(ray, request)


@pytest.fixture
def ray_gpus(request):
    """The backend module after `init(num_cpus=2, num_gpus=2, resources={"TPUish": 2})` (logical GPUs)."""
    ray = _start(load_backend(), num_cpus=2, num_gpus=2, resources={"TPUish": 2})
    yield ray
    _finish(ray, request)


@pytest.fixture
def ray_module():
    """The backend module with no runtime running; whatever the test starts is shut down afterwards."""
    ray = load_backend()
    _stop(ray)
    yield ray
    _stop(ray)


@pytest.fixture
def exceptions():
    """The backend's exceptions module (`course_runtime.exceptions` or `ray.exceptions`)."""
    return importlib.import_module(MODULE_NAME + ".exceptions")


@pytest.fixture(scope="session", autouse=True)
def _shutdown_at_end():
    yield
    import sys

    if MODULE_NAME in sys.modules:
        sys.modules[MODULE_NAME].shutdown()


@pytest.fixture(autouse=True)
def _test_timeout(request):
    """Fail (rather than hang) a test that runs longer than TEST_TIMEOUT_S."""

    def on_alarm(signum, frame):
        pytest.fail(f"test did not finish within {TEST_TIMEOUT_S} s (hang?)", pytrace=True)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _make_sync():
    """Helpers built inside a function so that cloudpickle ships them *by value* to workers.

    Tasks and the driver coordinate through files (the driver and the workers share the machine):
    `touch(path)` creates a file, `wait_for(path, timeout)` waits until it exists (True) or the timeout passes (False),
    `count(path)` appends one line to a file and returns how many lines it now holds (an attempt counter that survives
    a crashed worker).
    """

    def touch(path, text=""):
        with open(path, "a") as f:
            f.write(text)

    def wait_for(path, timeout=30.0):
        import os
        import time

        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_for_all(paths, timeout=30.0):
        import time

        deadline = time.monotonic() + timeout
        return all(wait_for(p, max(0.0, deadline - time.monotonic())) for p in paths)

    def count(path):
        with open(path, "a") as f:
            f.write("x\n")
        with open(path) as f:
            return len(f.read().splitlines())

    def read_count(path):
        import os

        if not os.path.exists(path):
            return 0
        with open(path) as f:
            return len(f.read().splitlines())

    return types.SimpleNamespace(
        touch=touch, wait_for=wait_for, wait_for_all=wait_for_all, count=count, read_count=read_count
    )


@pytest.fixture
def sync():
    """File-based coordination helpers usable both in the driver and inside tasks (see `_make_sync`)."""
    return _make_sync()


def wait_until(predicate, timeout=10.0, interval=0.05):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` passes (returns the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def process_alive(pid):
    """True if process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def read_until(process, text, timeout=60.0):
    """What a subprocess prints (text mode, stdout=PIPE) until a line contains `text`, it exits, or time is up."""
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stdout], [], [], 0.5)[0]:
            seen += process.stdout.readline()
    return seen


def kill_driver_and_family(driver, family):
    """Clean-up after a test that ran a driver subprocess: it and every process it started, killed if alive."""
    if driver.poll() is None:
        driver.kill()
        driver.wait()
    for pid in family:
        if process_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    driver.stdout.close()


def descendants(pid):
    """Every living process below `pid` (children of all its threads, their children, ...)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    kids = {int(x) for x in f.read().split()}
            except OSError:
                continue
            for kid in kids - found:
                found.add(kid)
                todo.append(kid)
    return {p for p in found if process_alive(p)}


@pytest.fixture
def poll():
    """`poll(predicate, timeout=10)`: wait until predicate() is truthy; returns its last value."""
    return wait_until


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray cluster on this machine: a head and one more node (tests/ray_cluster.py), token authentication on.
    Started once per session, stopped at the end; the test fails if any of its processes is left behind."""
    if BACKEND != "ray":
        pytest.skip("a real Ray cluster: only with COURSE_TEST_BACKEND=ray")
    from ray_cluster import LocalRayCluster

    cluster = LocalRayCluster().start()
    try:
        yield cluster
    finally:
        left = cluster.stop()
        assert not left, f"processes of the test cluster still running: {left}"
