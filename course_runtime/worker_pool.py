"""The worker pool: starting worker processes, writing to their pipes without blocking, reading what they send,
and keeping the pool the right size.

Mirrors Ray's `raylet/worker_pool.cc`. Workers whose task is blocked in get()/wait() have lent their CPUs to other
tasks, so they do not count against the pool's size (as in Ray, where a blocked worker is outside the soft limit):
every task that gets resources also gets a worker, and a tree of nested tasks cannot stall for want of one. At most
MAX_EXTRA_WORKERS run beyond num_cpus (for 0-CPU tasks); the whole pool, blocked workers included, stops at a hard
bound from the machine's memory and open-file limit (max_pool_size). Workers beyond num_cpus idle for IDLE_WORKER_S
exit (Ray: idle_worker_killing_time_threshold_ms, 1 s).
"""
import collections
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback

from .protocol import RECEIVE_CHUNK, Exit, frame, unframe

MAX_EXTRA_WORKERS = 32
WORKER_MEMORY_BUDGET = 64 * 2**20
IDLE_WORKER_S = 1.0


class WorkerHandle:
    """The driver's end of one worker process."""

    __slots__ = ("pid", "process", "sock", "fd", "outbox", "inbox", "functions", "task", "queued", "lent_cpus",
                 "holding", "ready", "actor", "signal_after_flush", "task_since", "claimed_until", "claimed_at",
                 "retiring", "idle_since")

    def __init__(self, process, sock):
        self.pid, self.process, self.sock, self.fd = process.pid, process, sock, sock.fileno()
        self.outbox = bytearray()  # messages to this worker not yet written (its pipe was full)
        self.inbox = bytearray()  # bytes read from this worker that do not make a whole message yet
        self.functions, self.holding = set(), set()  # functions it has; ids its refs hold
        self.task, self.ready, self.actor = None, False, None  # actor: set for an actor's dedicated worker
        self.lent_cpus = None  # {name: units} its task lent back to the pool while blocked in get()/wait()
        self.queued = collections.deque()  # tasks sent to it to run after `task` (fast_paths: pipelining)
        self.task_since = 0.0  # time.monotonic() when `task` started
        self.signal_after_flush = False  # a cancel signal to send once the outbox (with its CancelTask) is out
        self.claimed_until = self.claimed_at = 0.0  # a getter reads this pipe itself until then (fast_paths)
        self.retiring = False  # told to exit (idle beyond num_cpus): it takes no more tasks
        self.idle_since = time.monotonic()


class WorkerPool:
    def __init__(self, num_cpus, memory, setup, wake):
        self.num_cpus, self.setup, self.wake = num_cpus, setup, wake  # setup(): the first message; wake(): see raylet
        self.max_size = max_pool_size(num_cpus, memory)
        self.workers, self.by_fd = [], {}  # by_fd: pipe file descriptor -> WorkerHandle
        self.startup_failures = 0

    def start_worker(self):
        """Start a worker process connected by a socket pair (a pipe both ways; no network port)."""
        ours, theirs = socket.socketpair()
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent,
                                                                         os.environ.get("PYTHONPATH")])))
        process = subprocess.Popen(
            [sys.executable, "-c", "from course_runtime.worker import main; main()", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        worker = WorkerHandle(process, ours)
        self.send(worker, self.setup())  # read first; tasks can queue behind it while the process starts
        self.workers.append(worker)
        self.by_fd[worker.fd] = worker
        self.wake()  # the IO thread must start watching the new pipe
        return worker

    def idle_worker(self, blocked):
        """A worker for a task that has its resources: an idle one, or a new one if the pool may grow (workers of
        the `blocked` tasks do not count); None if not."""
        for worker in reversed(self.workers):  # most recently used first: its caches are warm
            if worker.task is None and worker.sock is not None and worker.actor is None and not worker.retiring:
                return worker
        pool = sum(1 for w in self.workers if w.actor is None and not w.retiring)
        if (pool - blocked < self.num_cpus + MAX_EXTRA_WORKERS and pool < self.max_size
                and self.startup_failures < 3):
            return self.start_worker()
        return None

    def retire_idle(self, now):
        """Pool workers beyond num_cpus idle for IDLE_WORKER_S are told to exit."""
        pool = [w for w in self.workers if w.actor is None and not w.retiring and w.sock is not None]
        idle = [w for w in pool if w.task is None and not w.queued and now - w.idle_since > IDLE_WORKER_S]
        retired = idle[:max(0, len(pool) - max(1, int(self.num_cpus + 0.9999)))]
        for worker in retired:
            worker.retiring = True
            self.send(worker, Exit())
        return retired

    def send(self, worker, message):
        """Queue a message for a worker and write as much as its pipe takes now, without ever blocking: a driver
        blocked writing to a worker that is itself blocked writing to the driver would wait forever."""
        if worker.sock is not None:
            worker.outbox += frame(message)
            self.flush(worker)

    def flush(self, worker):
        try:
            while worker.outbox:
                sent = worker.sock.send(worker.outbox, socket.MSG_DONTWAIT)
                del worker.outbox[:sent]
            # Its CancelTask is in the pipe now. A worker still starting may not have its signal handler yet, and
            # SIGUSR1 would kill it: the Ready handler flushes again once it has.
            if worker.signal_after_flush and worker.ready:
                worker.signal_after_flush = False
                os.kill(worker.pid, signal.SIGUSR1)
        except BlockingIOError:
            self.wake()  # the IO thread writes the rest when the pipe has room
        except OSError:
            worker.outbox.clear()  # the worker is gone; the IO thread handles its exit

    def remove(self, worker):
        """A worker's pipe closed: forget it, and return its exit code."""
        self.by_fd.pop(worker.fd, None)
        worker.sock.close()
        worker.sock = None
        self.workers.remove(worker)
        try:
            code = worker.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            code = worker.process.wait()
        if not worker.ready:
            self.startup_failures += 1
        return code

    def needs_replacing(self):
        """Keep the pool at num_cpus workers (unless they keep failing to start)."""
        return sum(1 for w in self.workers if w.actor is None) < self.num_cpus and self.startup_failures < 3

    def watch(self, poller, watched, recheck_after):
        """The IO thread's poller watches every pipe for messages (except those a getter reads itself, see
        fast_paths) and, where an outbox waits, for room to write. Returns how soon to look again at claimed pipes."""
        by_fd, now, recheck = self.by_fd, time.monotonic(), 0.5
        for fd in [fd for fd in watched if fd not in by_fd]:
            poller.unregister(fd)
            del watched[fd]
        for fd, worker in by_fd.items():
            reading = worker.claimed_until <= now
            events = (select.POLLIN if reading else 0) | (select.POLLOUT if worker.outbox else 0)
            if not reading:
                recheck = min(recheck, recheck_after(worker, now))
            if watched.get(fd) != events:
                if events:
                    poller.register(fd, events)  # registers, or changes the events of one already registered
                    watched[fd] = events
                elif fd in watched:
                    poller.unregister(fd)
                    del watched[fd]
        return recheck

    def stop(self):
        deadline = time.monotonic() + 2
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            if worker.sock is not None:
                worker.sock.close()
        self.workers, self.by_fd = [], {}


def receive_all(worker):
    """Every whole message waiting on a worker's pipe (called when it is readable), and whether the pipe closed.
    One read takes all that has arrived (often several messages), instead of two reads per message."""
    closed = False
    while True:
        try:
            chunk = worker.sock.recv(RECEIVE_CHUNK, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        worker.inbox += chunk
        if len(chunk) < RECEIVE_CHUNK:
            break
    try:
        return unframe(worker.inbox), closed
    except Exception:  # a garbled message must cost that one worker (treated as exited), not the IO thread
        traceback.print_exc()
        return [], True


def max_pool_size(num_cpus, memory):
    """The most pool workers at once, blocked ones included: what memory and the open-file limit allow, never
    below num_cpus + MAX_EXTRA_WORKERS. COURSE_RUNTIME_MAX_WORKERS sets it (e.g. to see the error it gives).

    >>> max_pool_size(2, 24 * 2**30) >= 2 + MAX_EXTRA_WORKERS
    True
    """
    if os.environ.get("COURSE_RUNTIME_MAX_WORKERS"):
        try:
            return max(1, int(os.environ["COURSE_RUNTIME_MAX_WORKERS"]))
        except ValueError:
            raise ValueError(f"COURSE_RUNTIME_MAX_WORKERS must be a whole number of worker processes, not "
                             f"{os.environ['COURSE_RUNTIME_MAX_WORKERS']!r}.") from None
    try:
        import resource  # not on Windows
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if open_files == resource.RLIM_INFINITY:
            open_files = 1 << 16
    except (ImportError, ValueError, OSError):
        open_files = 1024
    by_machine = min(memory // WORKER_MEMORY_BUDGET, open_files // 4)
    return int(max(num_cpus + MAX_EXTRA_WORKERS, by_machine))


class WorkerOutput:
    """What tasks print: lines that wait to be printed by the driver, prefixed `(task pid=...)` by the worker."""

    progress = None  # set by experimental.tqdm_ray when the driver imports it: draws a task's progress bar

    def __init__(self, changed):
        self.changed, self.pending = changed, []  # changed: the raylet's condition (under its lock)
        # In Jupyter, output printed from a background thread can land in whichever cell started that thread,
        # so there lines wait for the user's thread (in get/wait, and at the end of each cell).
        self.in_main_thread = "ipykernel" in sys.modules

    def add(self, log):
        self.pending.append(log)
        self.changed.notify_all()

    def flush(self):
        with self.changed:
            lines, self.pending = self.pending, []
        for line in lines:
            if line.stream == "progress":
                if self.progress is not None:
                    self.progress(line.text)
                continue
            target = sys.stderr if line.stream == "stderr" else sys.stdout
            try:
                target.write(line.text)
                target.flush()
            except Exception:
                pass
