"""The runtime's speed tricks, all in one place, behind named hooks; COURSE_RUNTIME_FAST_PATHS=0 turns them off.

Not a Ray component: read the plain path first (raylet.py, driver.py, worker.py, serialization.py), then see where
each trick joins it. With the switch off every hook below does nothing (or the plain thing), and the runtime behaves
the same, only slower. Each trick names its trade-off.
"""
import os
import pickle
import select
import signal
import threading
import time

import _signal  # signal's C half: swapping a handler there is cheap enough to do around every message batch

ON = os.environ.get("COURSE_RUNTIME_FAST_PATHS", "1").strip() != "0"

# 1. Pipelining of tiny tasks. A function is "tiny" once its last TINY_RUNS runs each took under TINY_TASK_S; when
# every CPU is busy, at most PIPELINE_DEPTH of its tasks wait in a busy worker's pipe, none behind a task running for
# longer than PIPELINE_STOP_S. Trade-off: a queued task starts on that worker even if another one frees up first.
TINY_TASK_S = 0.001
TINY_RUNS = 3
PIPELINE_DEPTH = 4
PIPELINE_STOP_S = 0.01
# 2. A thread waiting in get() for one running task's result reads that worker's pipe itself, instead of sleeping
# until the IO thread has read it (one thread switch less). The claim lapses unless renewed every CLAIM_S; the IO
# thread looks again within RECHECK_S at a pipe whose claim may end soon; a getter that held its claim for longer than
# LONG_CLAIM_S tells the IO thread when it lets go. Trade-off: the getter's thread handles other messages too.
CLAIM_S = 0.5
RECHECK_S = 0.001
LONG_CLAIM_S = 0.004
# 3. A worker whose last wait for a message was shorter than SPIN_S (a driver sending work one piece at a time)
# watches its pipe for up to SPIN_S before it sleeps next time: a process woken from sleep runs again only some time
# later. Trade-off: that much CPU spent watching.
SPIN_S = 0.0002
# 4. Plain values (numbers, strings, short flat containers of them) are pickled by the standard pickler, which gives
# the same bytes as cloudpickle for them, faster. 5. Buffers of PARALLEL_COPY_BYTES or more are copied into shared
# memory by several threads at once, as Ray's put does (the time goes into page faults, which then run in parallel).
PLAIN_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None)})
PARALLEL_COPY_BYTES = 16 * 2**20


# ---- hooks of the raylet: pipelining ------------------------------------------------------------------------
def note_run(raylet, task, seconds):
    """After each task: count the short runs of its function in a row."""
    if ON and task.spec.kind == "task":
        runs = raylet.tiny_runs
        runs[task.spec.function_id] = runs.get(task.spec.function_id, 0) + 1 if seconds < TINY_TASK_S else 0


def after_schedule(raylet):
    """When every CPU is busy and tiny tasks are waiting, queue a few in the pipes of workers that run tiny tasks of
    the same shape, so they start the moment the current one ends. (Ray's owner reuses a leased worker for the next
    task of the same kind; this sends the next few before the current one ends.) A queued task takes over the
    resources of the one before it (start_queued); if that one blocks in get(), the worker hands queued tasks back
    (HandBack), so they can never wait for each other."""
    if not (ON and raylet.tiny_runs and raylet.ready_queue):
        return
    now, tiny_runs = time.monotonic(), raylet.tiny_runs

    def tiny(task):
        return tiny_runs.get(task.spec.function_id, 0) >= TINY_RUNS

    for worker in raylet.pool.workers:
        running = worker.task
        if (running is None or running.spec.kind != "task" or worker.lent_cpus or worker.sock is None
                or len(worker.queued) >= PIPELINE_DEPTH or not running.spec.demand.get("CPU") or not tiny(running)
                or now - worker.task_since > PIPELINE_STOP_S):
            continue
        while len(worker.queued) < PIPELINE_DEPTH:
            task = raylet.ready_queue.pop_first(running.spec.demand, tiny)
            if task is None:
                break
            task.state, task.worker = "QUEUED", worker
            worker.queued.append(task)
            raylet.log("queued_at_worker", task.spec.task_id, worker.pid)
            raylet.send_task(worker, task, running.allocation)


def start_queued(raylet, worker, finished):
    """The task that finished on `worker` leaves its resources to the next one queued in its pipe, which starts
    now. False if none is queued (the plain path releases the resources)."""
    if not worker.queued or worker.sock is None:
        return False
    following = worker.queued.popleft()
    following.state, following.allocation, following.worker = "RUNNING", finished.allocation, worker
    following.attempts += 1
    worker.task, worker.task_since, finished.allocation = following, time.monotonic(), None
    raylet.log("dispatch", following.spec.task_id, worker.pid)
    return True


def hand_back(raylet, worker, message):
    """The HandBack handler: a queued task goes back to the ready queue, to run elsewhere."""
    task = raylet.owner.tasks.get(message.task_id)
    if task is not None and task.state == "QUEUED" and task.worker is worker:
        worker.queued.remove(task)
        task.state, task.worker = "READY", None
        raylet.ready_queue.push(task)
        raylet.log("handed_back", message.task_id, worker.pid)


def requeue(raylet, worker):
    """A worker died: the tasks queued in its pipe, not started, run elsewhere."""
    for task in worker.queued:
        task.state, task.worker = "READY", None
        raylet.ready_queue.push(task)
    worker.queued.clear()


def cancel_queued(raylet, task):
    """cancel() of a task queued in a pipe: it will still run there, but its result is dropped."""
    task.worker.queued.remove(task)
    task.worker = None


# ---- hooks of the driver and the IO thread: a getter reads a worker's pipe itself ---------------------------
def recheck_after(worker, now):
    """How soon the IO thread must look again at a pipe a getter has claimed (a short claim ends silently)."""
    return RECHECK_S if now - worker.claimed_at < LONG_CLAIM_S else worker.claimed_until - now


def wait_reading_pipe(raylet, entry, answered, deadline):
    """driver.wait's fast path, for a get() of one task's result: claim the pipe of the worker that runs it and
    read it here. Returns False when the plain path must wait instead (switched off, or nothing to claim)."""
    if not ON or entry is None:
        return False
    worker = None
    try:
        while True:
            with raylet.lock:
                if answered():
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                worker = _claim(raylet, entry, worker)
                if worker is None:
                    raylet.changed.wait(remaining if remaining is not None else 1.0)
            if worker is not None:
                _read_claimed(raylet, worker, remaining)
            if raylet.output.pending:
                raylet.output.flush()
    finally:
        if worker is not None:
            worker.claimed_until = 0.0  # first, with no call before it, so a Ctrl-C cannot come in between
            _claim_ended(raylet, worker)
    return True


def _claim(raylet, entry, claimed):
    """The worker whose pipe this thread should read while it waits for `entry`, claimed (or renewed) for CLAIM_S;
    None if it should wait on `changed`. `claimed` is the worker it read until now, if any."""
    task = entry.task if raylet.alive else None
    worker = task.worker if task is not None and task.state == "RUNNING" else None
    if claimed is not None and worker is not claimed:  # e.g. the task is being retried on another worker
        claimed.claimed_until = 0.0
        _claim_ended(raylet, claimed)
    now = time.monotonic()
    if worker is None or worker.sock is None or (worker is not claimed and worker.claimed_until > now):
        return None  # nothing to read, or another thread reads that pipe already
    if worker is not claimed:
        worker.claimed_at = now
    worker.claimed_until = now + CLAIM_S
    return worker


def _read_claimed(raylet, worker, remaining):
    poller = select.poll()
    poller.register(worker.fd, select.POLLIN)
    if not poller.poll(min(CLAIM_S / 2, 1e9 if remaining is None else remaining) * 1000):
        return
    deferred = _defer_interrupts()  # from here until the messages are handled, a Ctrl-C would lose them
    try:
        with raylet.lock:
            if worker.sock is not None and raylet.alive:
                raylet.process([(worker,) + raylet.receive(worker)])
    finally:
        _resume_interrupts(deferred)


def _claim_ended(raylet, worker):
    """After a long claim the IO thread sleeps: it must be told that the pipe is its own again."""
    if time.monotonic() - worker.claimed_at >= LONG_CLAIM_S:
        raylet.wake(b"r")


_MAIN_THREAD_ID = threading.main_thread().ident


def _defer_interrupts():
    """Hold back Ctrl-C in the main thread (the only one where Python runs signal handlers): SIGINT's handler is
    swapped for one that only notes the signal. Returns what _resume_interrupts needs, or None if nothing to do."""
    if threading.get_ident() != _MAIN_THREAD_ID:
        return None
    handler = _signal.getsignal(signal.SIGINT)
    if not callable(handler):  # ignored, the default action, or set from C: no exception can come from it here
        return None
    caught = []
    _signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    return handler, caught


def _resume_interrupts(deferred):
    """Put SIGINT's handler back, and run it now for a Ctrl-C that came meanwhile (raising KeyboardInterrupt)."""
    if deferred is not None:
        handler, caught = deferred
        _signal.signal(signal.SIGINT, handler)
        if caught:
            handler(*caught[0])


# ---- hooks of the worker, of serialization and of remote functions ------------------------------------------
class SpinBeforeSleep:
    """Channel.recv's before_sleep hook in a worker: watch the pipe for a moment if the last wait was short."""

    def __init__(self):
        self.spin_s, self.since = 0.0, 0.0
        self.yield_cpu = getattr(os, "sched_yield", lambda: None)  # not every Unix Python has it

    def __call__(self, channel):
        self.since = time.perf_counter()
        deadline = self.since + self.spin_s
        while self.spin_s and not channel.poll() and time.perf_counter() < deadline:
            self.yield_cpu()  # anything else runnable on this core goes first

    def woke(self):
        self.spin_s = SPIN_S if time.perf_counter() - self.since < SPIN_S else 0.0


def spinner():
    return SpinBeforeSleep() if ON else None


def pickle_plain(value):
    """The pickle of a plain value, or None (then cloudpickle does it)."""
    if not ON:
        return None
    kind = type(value)
    if not (kind in PLAIN_TYPES or (kind is tuple or kind is list) and len(value) <= 32
            and all(type(item) in PLAIN_TYPES for item in value)
            or kind is dict and len(value) <= 32
            and all(type(k) in PLAIN_TYPES and type(v) in PLAIN_TYPES for k, v in value.items())):
        return None
    return pickle.dumps(value, protocol=5)


def copy_in_parallel(destination, source):
    """Copy a large buffer with several threads; False if the plain copy should do it."""
    if not ON or len(source) < PARALLEL_COPY_BYTES:
        return False
    import numpy as np  # releases the GIL while it copies; imported only when a buffer this large shows up

    into, out_of = np.frombuffer(destination, dtype=np.uint8), np.frombuffer(source, dtype=np.uint8)
    count = min(4, os.cpu_count() or 1)
    step = -(-len(out_of) // count // 4096) * 4096  # whole pages per thread
    # Plain threads, joined: once join() returns they hold no view of the memory, which the caller then unmaps.
    threads = [threading.Thread(target=np.copyto, args=(into[i:i + step], out_of[i:i + step]))
               for i in range(0, len(out_of), step)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return True


def populate_pages(size):
    """Whether a writer should map a segment with all its pages touched up front (not when copying in parallel)."""
    return not ON or size < PARALLEL_COPY_BYTES


def call_fits(arity, args, kwargs):
    """True when a call plainly fits a function of plain parameters (arity = (fewest, most) positional arguments),
    which is all Signature.bind would check for it; False means: ask bind()."""
    return ON and not kwargs and arity is not None and arity[0] <= len(args) <= arity[1]
