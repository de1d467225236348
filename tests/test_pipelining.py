"""Tiny tasks queued in a busy worker's pipe (fast_paths.after_schedule): faster, and never at the cost of a result,
an error, a cancellation or a deadlock."""
import os
import time

import pytest

import course_runtime as ray
from course_runtime import state
from course_runtime.fast_paths import PIPELINE_DEPTH

pytestmark = pytest.mark.course_only


@pytest.fixture
def rt():
    ray.init(num_cpus=2)
    yield ray
    ray.shutdown()


def make_tiny(remote_function, *args):
    """Run a function a few times so the runtime knows it as tiny (TINY_RUNS short runs in a row)."""
    ray.get([remote_function.remote(*args) for _ in range(3)])
    ray.get([remote_function.remote(*args) for _ in range(3)])


def test_many_tiny_tasks_are_pipelined_and_every_result_is_right(rt):
    @ray.remote
    def square(x):
        return x * x

    make_tiny(square, 1)
    assert ray.get([square.remote(i) for i in range(20_000)], timeout=120) == [i * i for i in range(20_000)]
    node = ray.session.driver().raylet
    assert node.tiny_runs[square._function_id] >= 3
    assert all(not w.queued for w in node.pool.workers)  # nothing left behind in a pipe
    assert node.resources.available["CPU"] == node.resources.total["CPU"]  # every CPU given back


def test_pipelining_shows_in_the_dispatch_log(rt):
    @ray.remote
    def one():
        return 1

    make_tiny(one)
    ray.get([one.remote() for _ in range(3000)], timeout=60)
    queued = state.events("queued_at_worker")
    assert queued and {e["task_id"] for e in queued} <= {e["task_id"] for e in state.events("dispatch")}


def test_a_tiny_task_that_blocks_in_get_hands_queued_tasks_back_no_deadlock():
    ray.init(num_cpus=1)
    try:
        @ray.remote
        def child():
            return 1

        @ray.remote
        def parent(nested):
            return ray.get(child.remote()) + 1 if nested else 0

        make_tiny(parent, False)
        make_tiny(child)
        # One CPU: parents are queued behind one that then waits for its child (each blocked parent lends its
        # CPU, so a new worker starts for the next one: 20 stay within the extra workers the runtime allows).
        assert ray.get([parent.remote(True) for _ in range(20)], timeout=60) == [2] * 20
        assert state.events("handed_back")  # the path this test is about was taken
    finally:
        ray.shutdown()


def _parent_that_waits(object_id):
    from course_runtime import get
    from course_runtime.object_ref import ObjectRef
    return get(ObjectRef(object_id)) + 1


def _child():
    return 7


def test_a_worker_that_hands_a_task_back_keeps_its_function_for_the_next_task(tmp_path):
    """The driver sends each function to a worker once, with the first task of it there. If that task was queued
    behind one that then blocks in get(), the worker hands it back; the next task of that function arrives without
    the function and must still run (CI once saw "'NoneType' object is not callable" here). Played against a real
    worker process, as the driver would, so the order of messages is exact."""
    import pickle
    import socket
    import subprocess
    import sys

    from course_runtime.protocol import Channel, Get, HandBack, Inline, Ready, Reply, RunTask, Setup, TaskDone, Values
    from course_runtime.serialization import pickle_function

    ours, theirs = socket.socketpair()
    worker = subprocess.Popen([sys.executable, "-c", "from course_runtime.worker import main; main()",
                               str(theirs.fileno())], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    theirs.close()
    ours.settimeout(30)
    driver = Channel(ours)

    def receive(kind):
        message = driver.recv().message  # every message from a worker comes in an Envelope
        assert type(message) is kind, message
        return message

    def run_task(task_id, function_id, function, args):
        return RunTask(task_id, task_id, function_id, function, [Inline(pickle.dumps(a), []) for a in args], {},
                       1, [], {"CPU": 1}, None)

    try:
        driver.send(Setup(sys.path, str(tmp_path), os.getpid(), "01000000", "node", "test"))
        receive(Ready)
        driver.send(run_task("parent", "f-parent", pickle_function(_parent_that_waits), ["ab" * 14]))
        get = receive(Get)
        driver.send(run_task("child-1", "f-child", pickle_function(_child), []))  # queued behind the parent
        assert receive(HandBack).task_id == "child-1"
        driver.send(Reply(get.request_id, Values([Inline(pickle.dumps(41), [])])))
        done = receive(TaskDone)
        assert (done.task_id, done.error) == ("parent", None)
        driver.send(run_task("child-2", "f-child", None, []))  # this worker was sent the function already
        done = receive(TaskDone)
        assert done.error is None, pickle.loads(done.error)
        location = done.returns[0][0]
        assert pickle.loads(location.pickle, buffers=location.buffers) == 7
    finally:
        ours.close()  # the worker exits when its driver's end closes
        worker.wait(timeout=30)


def test_cancelling_a_queued_tiny_task_cancels_only_that_one(rt):
    @ray.remote
    def echo(x):
        return x

    make_tiny(echo, 0)
    refs = [echo.remote(i) for i in range(2000)]
    victim = refs[1000]
    ray.cancel(victim)
    for i, ref in enumerate(refs):
        if ref is victim:
            try:
                ray.get(ref, timeout=30)  # it may have finished before the cancel reached it
            except ray.exceptions.TaskCancelledError:
                pass
        else:
            assert ray.get(ref, timeout=30) == i


def test_tasks_queued_behind_a_crashing_task_run_elsewhere(rt, tmp_path):
    marker = tmp_path / "crashed"

    @ray.remote(max_retries=1)
    def fragile(i, marker_path):
        if i == 300 and not os.path.exists(marker_path):
            open(marker_path, "w").close()
            os._exit(1)  # the worker dies with tasks queued in its pipe
        return i

    make_tiny(fragile, 0, str(marker))
    assert ray.get([fragile.remote(i, str(marker)) for i in range(600)], timeout=60) == list(range(600))
    assert marker.exists()


def test_a_tiny_function_that_turns_slow_holds_back_at_most_a_few_tasks(rt):
    @ray.remote
    def nap(seconds):
        time.sleep(seconds)
        return seconds

    make_tiny(nap, 0)
    slow = nap.remote(3.0)
    quick = [nap.remote(0) for _ in range(400)]
    # While the slow call runs, the other worker does the quick ones; only those already queued behind the slow
    # one (at most PIPELINE_DEPTH) wait for it.
    ready, not_ready = ray.wait(quick, num_returns=len(quick), timeout=2.0)
    assert len(not_ready) <= PIPELINE_DEPTH
    assert ray.get(slow, timeout=30) == 3.0 and ray.get(quick, timeout=30) == [0] * 400


def test_retried_exceptions_still_work_when_pipelined(rt, tmp_path):
    @ray.remote(retry_exceptions=True, max_retries=2)
    def flaky(i, folder):
        path = os.path.join(folder, f"{i}")
        if i % 50 == 0 and not os.path.exists(path):
            open(path, "w").close()
            raise ValueError("first try fails")
        return i

    make_tiny(flaky, 1, str(tmp_path))
    assert ray.get([flaky.remote(i, str(tmp_path)) for i in range(500)], timeout=60) == list(range(500))
