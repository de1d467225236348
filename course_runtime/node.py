"""The driver side of the runtime: the worker pool, the object table, dependency tracking and dispatch.

Mirrors Ray's raylet (worker pool, dispatch, resource accounting) and the owner half of Ray's core worker (the table
of objects and their reference counts). Everything here runs in the driver; all shared state is guarded by one lock.

    driver process                                                  worker processes (one pipe each)
    f.remote(x) -> submit_task: a TaskRecord, ObjectRefs returned
                   waits until its ObjectRef arguments are ready
                   -> ReadyQueues (scheduler.py) -> _start  --- ("task", ...) --->  worker.py: load arguments,
                                                                                  run f, store the result
    get(ref)  <- ObjectEntry <- _on_done (the IO thread,  <--- ("done", ...) ---   inline, or in shared memory
                                  or the getter: _wait)
                                                         <--- ("submit" | "get" | "wait" | "put" | "log", ...)
                                                              (tasks can use the whole API too)

The IO thread waits on every worker pipe at once (`select.poll`) and handles what arrives (channel.py frames it);
the user's thread submits and dispatches directly, so a task starts without a thread switch; and a thread waiting in
get() for one running task's result reads that worker's pipe itself, so the result arrives without one either.
"""
import collections
import copy
import dataclasses
import itertools
import os
import pickle
import select
import shutil
import signal
import _signal  # signal's C half: swapping a handler costs 0.2 us here instead of 3 us (see _defer_interrupts)
import socket
import subprocess
import sys
import threading
import time
import traceback

from . import object_ref as refs_module
from .exceptions import (ActorDiedError, ActorUnschedulableError, GetTimeoutError, ObjectLostError,
                         ObjectStoreFullError, RaySystemError, RayTaskError, TaskCancelledError,
                         TaskUnschedulableError, WorkerCrashedError)
from .object_ref import LocalRefCounts, ObjectRef, future_resolver, new_id, random_hex, random_task_id
from .object_store import ObjectStore, map_for_writing
from .actor_manager import ActorManager
from .channel import RECEIVE_CHUNK, frame, unframe
from .options import resource_demand
from .remote_function import pack_arguments
from .runtime_context import RuntimeContext
from .scheduler import NodeResources, ReadyQueues, describe, to_units
from .serialization import INLINE_LIMIT, describe_unpicklable, deserialize_from, deserialize_inline, serialize

JOB_ID = "01000000"
_MAIN_THREAD_ID = threading.main_thread().ident
EVENT_LOG_LENGTH = 200_000
# The worker pool. Workers whose task is blocked in get()/wait() have lent their CPUs to other tasks, so they do not
# count against the pool's size (as in Ray, where a blocked worker is not part of the soft limit): every task that
# gets resources also gets a worker, and a tree of nested tasks cannot stall for want of one. At most
# MAX_EXTRA_WORKERS run beyond num_cpus (for 0-CPU tasks); the pool as a whole, blocked workers included, stops at a
# hard bound taken from the machine's memory and file limits (max_pool_size). Tasks that can never start (every
# started task is blocked waiting for them, and they lack a worker or resources only those tasks could give back)
# fail after STALL_S with an error that says why. Pool workers beyond num_cpus that stay idle for IDLE_WORKER_S
# exit (Ray: idle_worker_killing_time_threshold_ms, 1 s).
MAX_EXTRA_WORKERS = 32
WORKER_MEMORY_BUDGET = 64 * 2**20
STALL_S = 2.0
IDLE_WORKER_S = 1.0
POOL_CHECK_S = 0.25
# Pipelining of tiny tasks (see _pipeline_tiny_tasks): a function is "tiny" once its last TINY_RUNS runs each took
# under TINY_TASK_S; at most PIPELINE_DEPTH of its tasks wait in a busy worker's pipe, and none are added behind a
# task that has been running for longer than PIPELINE_STOP_S.
TINY_TASK_S = 0.001
TINY_RUNS = 3
PIPELINE_DEPTH = 4
PIPELINE_STOP_S = 0.01
# Reading a worker's pipe from the thread that waits in get() (see _wait): the claim lapses unless renewed every
# CLAIM_S; the IO thread looks again within RECHECK_S at a pipe whose claim may end soon, and a getter that held its
# claim for longer than LONG_CLAIM_S tells the IO thread when it lets go.
CLAIM_S = 0.5
RECHECK_S = 0.001
LONG_CLAIM_S = 0.004


class ObjectEntry:
    """One object in the table. `value` is ("v", pickle, buffers) inline, ("s", Segment, layout) in shared memory,
    or ("e", exception) for a failed task; None while pending."""

    __slots__ = ("id", "value", "refs", "dependents", "contained", "size", "creator", "task", "callbacks",
                 "dropped")

    def __init__(self, object_id, creator, task=None):
        self.id, self.creator, self.task = object_id, creator, task
        self.value, self.refs, self.size, self.dropped = None, 0, 0, False
        self.dependents, self.contained, self.callbacks = [], (), []


@dataclasses.dataclass(slots=True, eq=False)
class TaskRecord:
    """A task (or an actor's creation, or an actor call) from submission until it finishes."""
    task_id: str
    name: str
    func_id: str
    args: list
    kwargs: dict
    return_ids: list
    num_returns: int
    demand: dict  # resource units it needs while running, e.g. {"CPU": 10000}
    max_retries: int
    retry_exceptions: object
    state: str  # WAITING (for arguments) -> READY (for resources) -> [QUEUED at a worker] -> RUNNING -> done
    waiting_on: set
    pins: list  # object ids it keeps alive until it finishes (its ObjectRef arguments)
    attempts: int
    parent: object
    children: list
    submitted: float
    cancel_requested: bool
    kind: str  # "task", "actor_create" or "actor_call"
    actor: object = None
    method: str = None
    worker: object = None
    allocation: object = None


class WorkerHandle:
    __slots__ = ("pid", "process", "sock", "fd", "outbox", "inbox", "functions", "task", "queued", "lent",
                 "holding", "unsealed", "ready", "actor", "signal_after_flush", "task_since", "claimed_until",
                 "claimed_at", "retiring", "idle_since")

    def __init__(self, process, sock):
        self.pid, self.process, self.sock, self.fd = process.pid, process, sock, sock.fileno()
        self.outbox = bytearray()  # messages to this worker not yet written (its pipe was full)
        self.inbox = bytearray()  # bytes read from this worker that do not make a whole message yet
        self.functions, self.holding, self.unsealed = set(), set(), set()
        self.task, self.lent, self.ready, self.actor = None, 0, False, None  # actor: set for a dedicated worker
        self.queued = collections.deque()  # tiny tasks already sent to it, to run after `task` (in this order)
        self.task_since = 0.0  # time.monotonic() when `task` started
        self.signal_after_flush = False  # a cancel signal to send once the outbox (with its cancel_task) is out
        self.claimed_until = self.claimed_at = 0.0  # a getter reads this pipe itself until then (see Node._wait)
        self.retiring = False  # told to exit (idle beyond num_cpus): it takes no more tasks
        self.idle_since = time.monotonic()


class Waiter:
    """A worker blocked in `get` or `wait`, to be answered when enough objects are ready or time is up."""

    __slots__ = ("worker", "req_id", "ids", "num_returns", "deadline", "kind")

    def __init__(self, worker, req_id, ids, num_returns, deadline, kind):
        self.worker, self.req_id, self.ids = worker, req_id, ids
        self.num_returns, self.deadline, self.kind = num_returns, deadline, kind


class Node(ActorManager):
    """One running session of the course runtime (what `init()` starts and `shutdown()` stops)."""

    def __init__(self, num_cpus, num_gpus, resources, object_store_memory, namespace):
        self.node_id = random_hex(28)
        self.namespace = namespace or random_hex(16)
        self.num_cpus = num_cpus
        gpu_ids = detect_gpu_ids(num_gpus)
        memory = total_memory()
        store_capacity = object_store_memory or max(75 * 2**20, int(memory * 0.3))
        totals = {"CPU": to_units(num_cpus, "num_cpus"), "GPU": to_units(len(gpu_ids), "num_gpus"),
                  "memory": to_units(max(memory - store_capacity, 0), "memory"),
                  "object_store_memory": to_units(store_capacity, "object_store_memory"),
                  "node:127.0.0.1": to_units(1, "node")}
        for name, amount in (resources or {}).items():
            if name in ("CPU", "GPU"):
                raise ValueError(f"Use the 'num_cpus' and 'num_gpus' arguments of init() instead of '{name}' in "
                                 f"'resources'.")
            totals[name] = to_units(amount, f"resources[{name!r}]")
        self.resources = NodeResources(totals, gpu_ids)
        self.store = ObjectStore(store_capacity)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified whenever objects complete or output arrives
        self.objects = {}  # object id -> ObjectEntry
        self.tasks = {}  # task id -> TaskRecord, for tasks not finished yet
        self.function_table = {}  # function id -> pickled function (or actor class)
        self.actors = {}  # actor id -> ActorRecord (actor_manager.py)
        self.named_actors = {}  # (namespace, name) -> actor id
        self.ready_queue = ReadyQueues()
        self.workers = []
        self.fd_to_worker = {}  # pipe file descriptor -> WorkerHandle
        self.waiters = []
        self.local_refs = LocalRefCounts()
        self.events = collections.deque(maxlen=EVENT_LOG_LENGTH)  # (time, kind, details...): what happened
        self.finished = collections.deque(maxlen=EVENT_LOG_LENGTH)  # task runs, for timeline()
        self.pending_output = []
        self.output_in_main_thread = "ipykernel" in sys.modules  # see _emit_output
        self.callbacks_due = []
        self.tiny_runs = {}  # function id -> how many of its latest runs in a row took under TINY_TASK_S
        self.startup_failures = 0
        self.max_pool_size = max_pool_size(num_cpus, memory)
        self.pool_checked = 0.0
        self.stall = None  # (since when, what) tasks have been stuck: see _check_pool
        self.tasks_finished = 0
        self.errors_stored = 0
        self.alive = True
        self.wakeup_r, self.wakeup_w = os.pipe()
        self.started_at = time.time()
        for _ in range(max(1, int(num_cpus + 0.9999))):
            self._start_worker()
        self.io_thread = threading.Thread(target=self._io_loop, name="course_runtime-io", daemon=True)
        self.io_thread.start()

    # ---- workers ------------------------------------------------------------------------------------------
    def _start_worker(self):
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
        # The worker reads this first; tasks can be queued behind it while the process is still starting.
        self._send(worker, ("setup", sys.path, os.getcwd(), os.getpid(), JOB_ID, self.node_id, self.namespace))
        self.workers.append(worker)
        self.fd_to_worker[worker.fd] = worker
        self._log("worker_started", worker.pid)
        os.write(self.wakeup_w, b"w")  # the IO thread must start watching the new pipe
        return worker

    def _idle_worker(self):
        for worker in reversed(self.workers):  # most recently used first: its caches are warm
            if worker.task is None and worker.sock is not None and worker.actor is None and not worker.retiring:
                return worker
        pool = sum(1 for w in self.workers if w.actor is None and not w.retiring)
        blocked = len({id(w.worker) for w in self.waiters if w.worker.actor is None})
        if (pool - blocked < self.num_cpus + MAX_EXTRA_WORKERS and pool < self.max_pool_size
                and self.startup_failures < 3):
            return self._start_worker()
        return None

    def _check_pool(self, now):
        """Every POOL_CHECK_S (the IO thread): retire pool workers idle beyond num_cpus, and fail the tasks that
        can never start (see _stuck_tasks) once they have been stuck for STALL_S, saying why."""
        self.pool_checked = now
        pool = [w for w in self.workers if w.actor is None and not w.retiring and w.sock is not None]
        idle = [w for w in pool if w.task is None and not w.queued and now - w.idle_since > IDLE_WORKER_S]
        for worker in idle[:max(0, len(pool) - max(1, int(self.num_cpus + 0.9999)))]:
            worker.retiring = True
            self._send(worker, ("exit",))
            self._log("worker_retired", worker.pid)
        stuck = self._stuck_tasks() if self.waiters and self.ready_queue else []
        signature = (frozenset(t.task_id for t in stuck), self.tasks_finished)
        if not stuck:
            self.stall = None
        elif self.stall is None or self.stall[1] != signature:
            self.stall = (now, signature)
        elif now - self.stall[0] > STALL_S:
            self.stall = None
            for task in stuck:
                self._fail(task, TaskUnschedulableError(self._why_stuck(task, len(pool))))
            self._answer_waiters()
            self._schedule()
            self.changed.notify_all()

    def _stuck_tasks(self):
        """Ready tasks that can never start. Every task that has started is blocked in get()/wait() without a
        timeout, waiting (directly, or through a task's arguments) for these; and these found no worker or not
        enough resources, which only those blocked tasks could give back. Ray waits forever here."""
        forever = {id(w.worker) for w in self.waiters if w.deadline is None}
        if any((w.task is not None or w.queued) and id(w) not in forever for w in self.workers):
            return []  # something still runs, or will wake up by itself
        if any(a.in_flight or a.state not in ("ALIVE", "DEAD") for a in self.actors.values()):
            return []
        awaited = [self.objects.get(i) for w in self.waiters for i in w.ids]
        producers = {e.task for e in awaited if e is not None and e.value is None and e.task is not None}
        held = collections.Counter()  # what the blocked tasks hold (they have lent their CPUs already)
        for worker in self.workers:
            if worker.task is not None and worker.actor is None:
                held.update({k: v for k, v in worker.task.allocation.units.items() if k != "CPU"})
        available = self.resources.available
        stuck, todo = [], list(producers)
        while todo:
            task = todo.pop()
            if task.state == "READY" and all(v <= available.get(k, 0) + held[k] for k, v in task.demand.items()):
                stuck.append(task)  # (if something else holds what it needs, e.g. an actor, that may still end)
            elif task.state == "WAITING":
                for object_id in task.waiting_on:
                    entry = self.objects.get(object_id)
                    if entry is not None and entry.task is not None and entry.task not in producers:
                        producers.add(entry.task)
                        todo.append(entry.task)
        return stuck

    def _why_stuck(self, task, pool_size):
        waiting = sorted({w.worker.task.name for w in self.waiters if w.worker.task is not None})
        allocation = self.resources.try_acquire(task.demand)
        if allocation is not None:  # its resources are free: what it lacks is a worker
            self.resources.release(allocation)
            return (f"No worker process could be started for task '{task.name}': all {pool_size} worker processes "
                    f"are inside tasks blocked in ray.get()/ray.wait() ({', '.join(waiting)}), waiting for other "
                    f"tasks, and {pool_size} is as many as this machine allows at once (one process per blocked "
                    f"task; the bound comes from its memory and open-file limit, or COURSE_RUNTIME_MAX_WORKERS). A "
                    f"tree of nested tasks this wide or deep needs more processes than that: give each task more "
                    f"work (fewer, larger leaves), or have parents return their children's refs instead of blocking "
                    f"on them.")
        short = {k: v for k, v in task.demand.items() if v > max(0, self.resources.available.get(k, 0))}
        return (f"Task '{task.name}' can never start: it needs {describe(short or task.demand)}, and that is held by "
                f"tasks blocked in ray.get()/ray.wait() waiting for it ({', '.join(waiting)}). A task blocked in "
                f"get() gives back its CPUs, but not its GPUs or custom resources. Ask for those only in the tasks "
                f"that use them (e.g. the leaves, not the parent that waits), or have the parent return its "
                f"children's refs instead of waiting for them. (Ray waits forever here.)")

    def _start(self, task, allocation):
        if task.kind == "actor_create":
            return self._start_actor(task, allocation)
        worker = self._idle_worker()
        if worker is None:
            return False
        task.state, task.worker, task.allocation = "RUNNING", worker, allocation
        task.attempts += 1
        worker.task, worker.task_since = task, time.monotonic()
        self._log("dispatch", task.task_id, worker.pid)
        self._send_task(worker, task, allocation)
        return True

    def _send_task(self, worker, task, allocation):
        func_bytes = None
        if task.func_id not in worker.functions:  # ship each function to each worker once
            func_bytes = self.function_table[task.func_id]
            worker.functions.add(task.func_id)
        self._send(worker, ("task", task.task_id, task.name, task.func_id, func_bytes,
                            [self._locate(a) for a in task.args],
                            {k: self._locate(v) for k, v in task.kwargs.items()},
                            task.return_ids, task.num_returns, allocation.gpu_ids(), allocation.as_dict()))

    def _pipeline_tiny_tasks(self):
        """When every CPU is busy and tiny tasks are waiting, queue a few in the pipes of workers that run tiny
        tasks of the same shape, so they start the moment the current one ends. For a task that lasts
        microseconds, the round trip through this process costs more than the task: without this, workers
        would sit idle most of the time. (Ray's owner reuses a leased worker for the next task of the same kind;
        this goes one step further and sends the next few before the current one ends.)
        The queued task takes over the resources of the one before it (see _release); if that one blocks in
        get(), the worker hands queued tasks back ("bounce"), so they can never wait for each other."""
        now = time.monotonic()

        def tiny(task):
            return self.tiny_runs.get(task.func_id, 0) >= TINY_RUNS

        for worker in self.workers:
            running = worker.task
            if (running is None or running.kind != "task" or worker.lent or worker.sock is None
                    or len(worker.queued) >= PIPELINE_DEPTH or not running.demand.get("CPU") or not tiny(running)
                    or now - worker.task_since > PIPELINE_STOP_S):
                continue
            while len(worker.queued) < PIPELINE_DEPTH:
                task = self.ready_queue.pop_first(running.demand, tiny)
                if task is None:
                    break
                task.state, task.worker = "QUEUED", worker
                worker.queued.append(task)
                self._log("queued_at_worker", task.task_id, worker.pid)
                self._send_task(worker, task, running.allocation)

    def _msg_bounce(self, worker, task_id):
        task = self.tasks.get(task_id)
        if task is not None and task.state == "QUEUED" and task.worker is worker:
            worker.queued.remove(task)
            task.state, task.worker = "READY", None
            self.ready_queue.push(task)
            self._log("handed_back", task_id, worker.pid)

    def _send(self, worker, message):
        """Queue a message for a worker and write as much as its pipe takes now, without ever blocking: a driver
        blocked writing to a worker that is itself blocked writing to the driver would wait forever."""
        if worker.sock is None:
            return
        worker.outbox += frame(message)
        self._flush(worker)

    def _flush(self, worker):
        try:
            while worker.outbox:
                sent = worker.sock.send(worker.outbox, socket.MSG_DONTWAIT)
                del worker.outbox[:sent]
            # Its ("cancel_task", id) is in the pipe now (see _cancel_task). A worker still starting may not have
            # its handler yet, and SIGUSR1 would kill it: _msg_ready sends that signal once it says it is ready.
            if worker.signal_after_flush and worker.ready:
                worker.signal_after_flush = False
                os.kill(worker.pid, signal.SIGUSR1)
        except BlockingIOError:
            os.write(self.wakeup_w, b"o")  # the IO thread writes the rest when the pipe has room
        except OSError:
            worker.outbox.clear()  # the worker is gone; the IO thread handles its exit

    def _locate(self, arg):
        """How a worker finds an argument: ("v", pickle, buffers) inline, or ("s", path, size, layout)."""
        if arg[0] == "v":
            return arg
        value = self.objects[arg[1]].value
        if value[0] == "s":
            segment = value[1]
            return ("s", segment.path, segment.size, value[2])
        return value

    # ---- submitting tasks ---------------------------------------------------------------------------------
    def submit_task(self, remote_function, args, kwargs, options):
        name = options.get("name") or remote_function.__name__
        args, kwargs, pins = pack_arguments(args, kwargs, name, self.store_argument)
        with self.lock:
            self.function_table.setdefault(remote_function._function_id, remote_function.pickled())
            task = self._new_task(random_task_id(), name, remote_function._function_id, args, kwargs, pins,
                                  options, parent=None)
            return_refs = [ObjectRef(i) for i in task.return_ids]
            self._schedule()
        if options["num_returns"] == 1:
            return return_refs[0]
        return return_refs or None

    def _new_task(self, task_id, name, func_id, args, kwargs, pins, options, parent, kind="task", actor=None,
                  method=None):
        for entry in [self._entry(object_id) for object_id in pins]:  # all known, or none pinned
            entry.refs += 1
        num_returns = options["num_returns"]
        task = TaskRecord(task_id=task_id, name=name, func_id=func_id, args=args, kwargs=kwargs,
                          return_ids=[new_id(task_id, i + 1) for i in range(num_returns)], num_returns=num_returns,
                          demand=options["_demand"] if "_demand" in options else resource_demand(options, 1),
                          max_retries=options["max_retries"], retry_exceptions=options["retry_exceptions"],
                          state="WAITING", waiting_on=set(), pins=pins, attempts=0, parent=parent, children=[],
                          submitted=time.time(), cancel_requested=False, kind=kind, actor=actor, method=method)
        self.tasks[task_id] = task
        if parent is not None:
            parent.children.append(task)
        for object_id in task.return_ids:  # a worker that submitted it may already hold refs (see _handle)
            entry = self.objects.setdefault(object_id, ObjectEntry(object_id, ""))
            entry.creator, entry.task = f"returned by {name}", task
        self._log("submit", task_id, name)
        reason = self.resources.infeasible_reason(options.get("_placement", task.demand))
        if reason:  # Ray would wait forever for a machine that has it; we say so at once (see README)
            what = f"actor {actor.class_name}" if kind == "actor_create" else f"task '{name}'"
            error_class = ActorUnschedulableError if kind == "actor_create" else TaskUnschedulableError
            self._fail(task, error_class(f"The {what} can never run on this machine: {reason}. Ask for less, or "
                                         f"declare more with init(num_cpus=..., num_gpus=..., resources={{...}})."))
            return task
        dependencies = [a[1] for a in itertools.chain(args, kwargs.values()) if a[0] == "r"]
        for object_id in dependencies:
            entry = self.objects[object_id]
            if entry.value is None:
                task.waiting_on.add(object_id)
                entry.dependents.append(task)
            elif entry.value[0] == "e":
                self._fail(task, entry.value[1])  # an upstream error flows to this task's results
                return task
        if not task.waiting_on:
            task.state = "READY"
            if kind != "actor_call":  # actor calls wait in their actor's queue instead (actor_manager.py)
                self.ready_queue.push(task)
        return task

    def _entry(self, object_id):
        entry = self.objects.get(object_id)
        if entry is None:
            raise ObjectLostError(object_id, f"ObjectRef({object_id}) is unknown to this runtime: it belongs to "
                                             f"a session that was shut down (or to another process's session), "
                                             f"or it was freed. Create it again in this session.")
        return entry

    def _schedule(self):
        self.ready_queue.schedule(self.resources, self._start)
        if self.tiny_runs and self.ready_queue:
            self._pipeline_tiny_tasks()

    # ---- objects ------------------------------------------------------------------------------------------
    def put_serialized(self, serialized, description, object_id=None):
        """Store an already-pickled value; returns its id. Large values are copied into a new segment."""
        object_id = object_id or new_id(random_task_id(), 1)
        if serialized.size < INLINE_LIMIT:
            value = ("v",) + serialized.inline()
        else:
            layout, size = serialized.layout()
            with self.lock:
                segment = self.store.allocate(size, description)
            try:
                mapping = map_for_writing(segment.path, size)
                with memoryview(mapping) as memory:  # copy outside the lock
                    serialized.write_into(memory, layout)
                mapping.close()
            except BaseException as error:  # e.g. Ctrl-C in the middle: the half-written segment must not linger
                with self.lock:
                    self.store.free(segment)
                if isinstance(error, OSError):  # e.g. out of file descriptors: explain it, as allocate() does
                    raise ObjectStoreFullError(self.store.refused_message(size, description, error)) from None
                raise
            value = ("s", segment, layout)
        with self.lock:
            self._add_ready_object(object_id, value, serialized.contained_refs, serialized.size, description)
        return object_id

    def store_argument(self, serialized, description):
        """A large argument passed by value is stored like a put, once per call (the event log shows each)."""
        object_id = self.put_serialized(serialized, description)
        self._log("argument_stored", object_id, serialized.size)
        return object_id

    def _add_ready_object(self, object_id, value, contained, size, creator):
        entry = self.objects.get(object_id) or ObjectEntry(object_id, creator)
        self.objects[object_id] = entry
        entry.creator, entry.size = creator, size
        self._complete(entry, value, contained)

    def put(self, value):
        try:
            serialized = serialize(value)
        except Exception as error:
            raise TypeError(f"Could not put the value in the object store: {describe_unpicklable(value, error)}.") \
                from None
        with self.lock:
            self._drain_local_refs()
        object_id = new_id(random_task_id(), 1)
        try:
            self.put_serialized(serialized, "put by the driver", object_id)
            self._log("put", object_id, serialized.size)
            return ObjectRef(object_id)
        except BaseException:  # Ctrl-C after the object was stored but before its ref existed: nobody could free it
            with self.lock:
                self._drain_local_refs()
                entry = self.objects.get(object_id)
                if entry is not None and entry.refs <= 0 and entry.value is not None:
                    self._free(entry)
            raise

    def _complete(self, entry, value, contained=()):
        """An object's value is known: wake its dependents, and free it at once if nobody wants it."""
        entry.value = value
        entry.contained = tuple(contained)
        if value[0] == "e":
            self.errors_stored += 1
        for object_id in entry.contained:  # refs inside a stored value keep their objects alive
            if object_id in self.objects:
                self.objects[object_id].refs += 1
        for task in entry.dependents:
            if task.state != "WAITING":
                continue
            if value[0] == "e":
                self._fail(task, value[1])
                continue
            task.waiting_on.discard(entry.id)
            if not task.waiting_on:
                task.state = "READY"
                if task.kind == "actor_call":
                    self._pump_actor(task.actor)
                else:
                    self.ready_queue.push(task)
        entry.dependents = []
        if entry.callbacks:  # futures waiting for it: the IO thread resolves them outside the lock
            self.callbacks_due.extend(entry.callbacks)
            entry.callbacks = []
            os.write(self.wakeup_w, b"c")
        if entry.dropped and entry.refs <= 0:  # a task result whose refs were all dropped while it ran
            self._free(entry)

    def _hold(self, object_id):
        actor = self.actors.get(object_id)
        if actor is not None:  # ActorHandles are counted like ObjectRefs
            actor.refs += 1
            return
        entry = self.objects.get(object_id)
        if entry is None:  # the message itself creates it (a put or a nested task's result): see _handle
            entry = self.objects[object_id] = ObjectEntry(object_id, "a worker")
        entry.refs += 1

    def _decref(self, object_id):
        entry = self.objects.get(object_id)
        if entry is None:
            actor = self.actors.get(object_id)
            if actor is not None:
                actor.refs -= 1
                if actor.refs <= 0:
                    self._actor_out_of_scope(actor)
            return
        entry.refs -= 1
        if entry.refs <= 0:
            if entry.value is not None:
                self._free(entry)
            else:
                entry.dropped = True  # free it as soon as its value arrives

    def _free(self, entry):
        if self.objects.pop(entry.id, None) is None:
            return  # freed already (e.g. while its dependents were being failed)
        if entry.value[0] == "s":
            self.store.free(entry.value[1])
        for object_id in entry.contained:
            self._decref(object_id)

    def _drain_local_refs(self):
        held, released = self.local_refs.drain()
        for object_id in held:
            if object_id in self.objects or object_id in self.actors:
                self._hold(object_id)
        for object_id in released:
            self._decref(object_id)

    # ---- finishing tasks ----------------------------------------------------------------------------------
    def _fail(self, task, error):
        if task.kind == "actor_create" and task.actor.state not in ("DEAD", "ALIVE"):
            self._finish(task, "FAILED")
            self._actor_died(task.actor, error if isinstance(error, ActorUnschedulableError) else ActorDiedError(
                f"The actor {task.actor.class_name} could not be created: {error}"), restartable=False)
            return
        for object_id in task.return_ids:
            entry = self.objects.get(object_id)
            if entry is not None and entry.value is None:
                self._complete(entry, ("e", error))
        self._finish(task, "FAILED")

    def _finish(self, task, state):
        task.state = state
        self.tasks_finished += 1
        self.tasks.pop(task.task_id, None)
        if task.worker is not None:
            self._release(task)
        for object_id in task.pins:
            self._decref(object_id)
        task.pins = ()
        self._log("finish", task.task_id, state)

    def _release(self, task):
        worker = task.worker
        if task.kind != "task":  # actors hold their resources for life, not per call
            task.worker = None
            return
        if worker.lent:  # it was blocked in get; take back what it lent before releasing everything
            self.resources.reclaim("CPU", worker.lent)
            worker.lent = 0
        if worker.queued and worker.sock is not None:  # the next task in its pipe starts now, on these resources
            following = worker.queued.popleft()
            following.state, following.allocation, following.attempts = "RUNNING", task.allocation, \
                following.attempts + 1
            worker.task, worker.task_since, task.worker, task.allocation = following, time.monotonic(), None, None
            self._log("dispatch", following.task_id, worker.pid)
            return
        self.resources.release(task.allocation)
        worker.task, task.worker, task.allocation = None, None, None
        worker.idle_since = time.monotonic()

    def _retry(self, task):
        self._release(task)
        task.state = "READY"
        self.ready_queue.push(task)
        self._log("retry", task.task_id, task.attempts)

    def _retries_left(self, task):
        return task.max_retries == -1 or task.attempts <= task.max_retries

    def _on_done(self, worker, task_id, returns, error_bytes, started, ended):
        task = self.tasks.get(task_id)
        if task is None or task.worker is not worker:
            self._discard_returns(returns)
            return
        self.finished.append((task.name, task_id, worker.pid, started, ended, "FAILED" if error_bytes else "FINISHED"))
        if task.kind == "task":
            self.tiny_runs[task.func_id] = self.tiny_runs.get(task.func_id, 0) + 1 if ended - started < TINY_TASK_S \
                else 0
        if task.kind == "actor_create":
            self._on_actor_created(task, _load_error(error_bytes, task.name) if error_bytes else None)
            return
        if task.kind == "actor_call":
            task.actor.in_flight.pop(task_id, None)
        if task.cancel_requested:
            self._discard_returns(returns)
            self._fail(task, TaskCancelledError(task_id))
        elif error_bytes is not None:
            error = _load_error(error_bytes, task.name)
            if self._should_retry_error(task, error):
                self._retry(task)
                return
            self._fail(task, error)
        else:
            for object_id, (value, contained, size) in zip(task.return_ids, returns):
                if value[0] == "s":
                    worker.unsealed.discard(value[1])
                    value = ("s", self.store.segments[value[1]], value[2])
                entry = self.objects[object_id]
                entry.size = size
                self._complete(entry, value, contained)
            self._finish(task, "FINISHED")

    def _should_retry_error(self, task, error):
        retry = task.retry_exceptions
        if not retry or not self._retries_left(task) or not isinstance(error, RayTaskError):
            return False
        return retry is True or isinstance(error.cause, tuple(retry))

    def _discard_returns(self, returns):
        for value, _, _ in returns or ():
            if value[0] == "s" and value[1] in self.store.segments:
                self.store.free(self.store.segments[value[1]])

    def _on_worker_exit(self, worker):
        if worker.sock is None:
            return
        self.fd_to_worker.pop(worker.fd, None)
        worker.sock.close()
        worker.sock = None
        self.workers.remove(worker)
        try:
            code = worker.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            code = worker.process.wait()
        self._log("worker_exited", worker.pid, code)
        if not worker.ready:
            self.startup_failures += 1
        for object_id in worker.holding:
            self._decref(object_id)
        for seg_id in worker.unsealed:  # half-written objects are never seen by anyone
            self.store.free(self.store.segments[seg_id])
        self.waiters = [w for w in self.waiters if w.worker is not worker]
        for task in worker.queued:  # sent to it but not started: they run elsewhere
            task.state, task.worker = "READY", None
            self.ready_queue.push(task)
        worker.queued.clear()
        if worker.actor is not None:
            self._on_actor_worker_exit(worker, code)
            return
        task = worker.task
        if task is not None:
            if task.cancel_requested:
                self._release(task)
                self._fail(task, TaskCancelledError(task.task_id))
            elif self._retries_left(task):
                self._retry(task)
            else:
                self._release(task)
                self._fail(task, WorkerCrashedError(
                    f"The worker running '{task.name}' (pid {worker.pid}) died unexpectedly (exit code {code}) "
                    f"after {task.attempts} attempt(s); max_retries={task.max_retries}."))
        pool_size = sum(1 for w in self.workers if w.actor is None)
        if self.alive and pool_size < self.num_cpus and self.startup_failures < 3:
            self._start_worker()  # keep the pool at num_cpus workers
        if self.startup_failures >= 3:
            self._fail_everything(RaySystemError("Worker processes fail to start; see the errors printed above."))

    def _fail_everything(self, error):
        for task in list(self.tasks.values()):
            if task.state in ("WAITING", "READY"):
                self._fail(task, error)

    # ---- messages from workers ----------------------------------------------------------------------------
    def _io_loop(self):
        wakeup = self.wakeup_r
        poller, watched = select.poll(), {}  # watched: fd -> the events registered for it
        poller.register(wakeup, select.POLLIN)
        while self.alive:
            recheck = _update_poller(poller, watched, self.fd_to_worker, time.monotonic())
            ready = poller.poll(min(self._next_deadline(), recheck) * 1000)
            with self.lock:  # reading under the lock too: a getter may take over a pipe at any time (see _wait)
                if not self.alive:
                    break
                now, inbox = time.monotonic(), []
                for fd, event in ready:
                    worker = self.fd_to_worker.get(fd)
                    if fd == wakeup:
                        os.read(wakeup, 4096)
                    if worker is None or worker.sock is None:
                        continue
                    if event & select.POLLOUT:
                        self._flush(worker)
                    if event & (select.POLLIN | select.POLLHUP | select.POLLERR) and worker.claimed_until < now:
                        inbox.append((worker,) + _receive_all(worker))
                self._process(inbox)
                if now - self.pool_checked > POOL_CHECK_S:
                    self._check_pool(now)
                callbacks, self.callbacks_due = self.callbacks_due, []
            for callback in callbacks:
                callback()
            if self.pending_output and not self.output_in_main_thread:
                self.flush_output()

    def _process(self, inbox):
        """Handle messages read from workers' pipes, then everything they made possible (under the lock)."""
        self._drain_local_refs()
        for worker, messages, closed in inbox:
            try:
                for message in messages:
                    self._handle(worker, message)
                if closed:
                    self._on_worker_exit(worker)
            except Exception:  # a bug here must not stop the loop that every get() relies on
                traceback.print_exc()
        self._answer_waiters()
        self._schedule()
        self.changed.notify_all()

    def _handle(self, worker, message):
        kind, held, released = message[0], message[1], message[2]
        for object_id in held:  # apply "now holds" before the message, "no longer holds" after it
            self._hold(object_id)
            worker.holding.add(object_id)
        getattr(self, "_msg_" + kind)(worker, *message[3:])
        for object_id in released:
            worker.holding.discard(object_id)
            self._decref(object_id)

    def _reply(self, worker, req_id, payload):
        self._send(worker, ("reply", req_id, payload))

    def _msg_ready(self, worker):
        worker.ready = True
        self.startup_failures = 0
        if worker.signal_after_flush:  # a cancel arrived while it was starting (see _flush)
            self._flush(worker)

    def _msg_done(self, worker, *fields):
        self._on_done(worker, *fields)

    def _msg_log(self, worker, stream, text):
        self._emit_output(stream, text)

    def _msg_submit(self, worker, func_id, func_bytes, task_id, name, args, kwargs, pins, options):
        options = pickle.loads(options)
        if func_bytes is not None:
            self.function_table[func_id] = func_bytes
        try:
            self._new_task(task_id, name, func_id, args, kwargs, pins, options, parent=worker.task)
        except ObjectLostError as error:
            for i in range(options["num_returns"]):
                self._add_ready_object(new_id(task_id, i + 1), ("e", error), (), 0, name)

    def _msg_put(self, worker, object_id, value, contained, size, description):
        if value[0] == "s":
            worker.unsealed.discard(value[1])
            value = ("s", self.store.segments[value[1]], value[2])
        self._add_ready_object(object_id, value, contained, size, description)

    def _msg_alloc(self, worker, req_id, size, description):
        try:
            segment = self.store.allocate(size, description)
        except ObjectStoreFullError as error:
            self._reply(worker, req_id, ("full", str(error)))
            return
        worker.unsealed.add(segment.seg_id)
        self._reply(worker, req_id, ("ok", segment.seg_id, segment.path))

    def _msg_abandon(self, worker, seg_id):
        if seg_id in worker.unsealed:  # a write that failed half-way: nobody may ever read that segment
            worker.unsealed.discard(seg_id)
            self.store.free(self.store.segments[seg_id])

    def _msg_get(self, worker, req_id, ids, timeout):
        self._add_waiter(Waiter(worker, req_id, ids, len(ids), _deadline(timeout), "get"))

    def _msg_wait(self, worker, req_id, ids, num_returns, timeout):
        self._add_waiter(Waiter(worker, req_id, ids, num_returns, _deadline(timeout), "wait"))

    def _msg_cancel(self, worker, object_id, force, recursive):
        try:
            self._cancel(object_id, force, recursive)
        except ValueError:
            pass  # force=True on an actor call: the worker's cancel() already said so

    def _msg_query(self, worker, req_id, what):
        answers = {"cluster_resources": self.resources.total_dict,
                   "available_resources": self.resources.available_dict, "nodes": self.nodes,
                   "timeline": self.timeline}
        self._reply(worker, req_id, answers[what]())

    def _add_waiter(self, waiter):
        if not self._answer(waiter):
            self.waiters.append(waiter)
            task = waiter.worker.task
            if task is not None and not waiter.worker.lent:  # lend its CPUs while it waits
                waiter.worker.lent = task.allocation.units.get("CPU", 0)
                self.resources.lend("CPU", waiter.worker.lent)

    def _answer_waiters(self):
        if self.waiters:
            self.waiters = [w for w in self.waiters if not self._answer(w)]

    def _answer(self, waiter):
        """Reply to a blocked worker if its request is satisfied (or timed out). True if answered."""
        worker = waiter.worker
        if worker.task is not None and worker.task.cancel_requested:
            self._reply(worker, waiter.req_id, ("cancelled",))
            return True
        entries = [self.objects.get(i) for i in waiter.ids]
        if any(e is None for e in entries):
            missing = next(i for i, e in zip(waiter.ids, entries) if e is None)
            self._reply(worker, waiter.req_id, ("error", pickle.dumps(ObjectLostError(missing))))
            return True
        ready = [e for e in entries if e.value is not None]
        timed_out = waiter.deadline is not None and time.monotonic() >= waiter.deadline
        if waiter.kind == "get":
            error = next((e for e in ready if e.value[0] == "e"), None)
            if error is None and len(ready) < len(entries) and not timed_out:
                return False
            if error is not None:
                payload = ("error", _dump_error(error.value[1]))
            elif len(ready) < len(entries):
                payload = ("timeout",)
            else:
                payload = ("values", [self._locate(("r", e.id)) for e in entries])
        else:
            if len(ready) < waiter.num_returns and not timed_out:
                return False
            payload = ("ready", _first_ready(entries, waiter.num_returns))
        if worker.lent:
            self.resources.reclaim("CPU", worker.lent)
            worker.lent = 0
        self._reply(worker, waiter.req_id, payload)
        return True

    def _next_deadline(self):
        deadlines = [w.deadline for w in self.waiters if w.deadline is not None]
        if not deadlines:
            return 0.5  # wake now and then to apply dropped refs even when nothing else happens
        return max(0.0, min(min(deadlines) - time.monotonic(), 0.5))

    # ---- worker output ------------------------------------------------------------------------------------
    def _emit_output(self, stream, text):
        # In Jupyter, output printed from a background thread can land in whichever cell started that thread,
        # so there we queue worker lines and print them from the user's thread (in get/wait, and after each cell).
        self.pending_output.append((stream, text))
        self.changed.notify_all()

    def flush_output(self):
        with self.lock:
            lines, self.pending_output = self.pending_output, []
        for stream, text in lines:
            target = sys.stderr if stream == "stderr" else sys.stdout
            try:
                target.write(text)
                target.flush()
            except Exception:
                pass

    # ---- the API, driver side -----------------------------------------------------------------------------
    def get_values(self, ids, timeout):
        with self.lock:
            self._drain_local_refs()
            entries = [self._entry(i) for i in ids]
            self._log("get", len(ids))
        first_pending, errors_seen, error = 0, -1, None

        def settled():  # each call costs O(newly ready), not O(all): big gets stay linear
            nonlocal first_pending, errors_seen, error
            while first_pending < len(entries) and entries[first_pending].value is not None:
                first_pending += 1
            if errors_seen != self.errors_stored:  # look for errors only when a new one exists somewhere
                errors_seen = self.errors_stored
                error = next((e.value[1] for e in entries if e.value is not None and e.value[0] == "e"), None)
            return error is not None or first_pending == len(entries)

        self._wait(settled, _deadline(timeout), entries[0] if len(entries) == 1 else None)
        values = [e.value for e in entries]
        if error is not None:
            raise_stored_error(error)
        if any(v is None for v in values):
            pending = sum(v is None for v in values)
            raise GetTimeoutError(f"Get timed out: {pending} of {len(ids)} object(s) were not ready after "
                                  f"{timeout} s.")
        return [load_value(v) for v in values]

    def wait_ids(self, ids, num_returns, timeout):
        with self.lock:
            self._drain_local_refs()
            entries = list(map(self.objects.get, ids))  # one pass at C speed: wait() loops call this a lot
            if None in entries:
                self._entry(ids[entries.index(None)])  # raises, naming the unknown one
            self._log("wait", len(ids), num_returns)
        ready = []

        def settled():
            nonlocal ready
            ready = _first_ready(entries, num_returns)
            return len(ready) >= num_returns

        self._wait(settled, _deadline(timeout))
        return ready

    def _wait(self, settled, deadline, entry=None):
        """Block until settled() (called under the lock) is true or the deadline passes.
        A waiting thread usually sleeps on `changed`, which the IO thread notifies after each batch of messages.
        One that waits for the result of a single running task reads that worker's pipe itself instead: it
        "claims" the pipe (the IO thread leaves claimed pipes alone), so the result reaches it directly rather
        than through the IO thread: one thread switch less, which is a good part of what a small task costs."""
        worker = None
        try:
            while True:
                with self.lock:
                    if settled():
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    worker = self._claim(entry, worker)
                    if worker is None:
                        self.changed.wait(remaining if remaining is not None else 1.0)
                if worker is not None:
                    self._read_claimed(worker, remaining)
                if self.pending_output:
                    self.flush_output()
        finally:
            if worker is not None:
                worker.claimed_until = 0.0  # first, with no call before it, so a Ctrl-C cannot come in between
                self._claim_ended(worker)
        if self.pending_output:
            self.flush_output()

    def _claim(self, entry, claimed):
        """The worker whose pipe this thread should read while it waits for `entry`, claimed (or renewed) for
        CLAIM_S; None if it should wait on `changed`. `claimed` is the worker it read until now, if any."""
        task = entry.task if entry is not None and self.alive else None
        worker = task.worker if task is not None and task.state == "RUNNING" else None
        if claimed is not None and worker is not claimed:  # e.g. the task is being retried on another worker
            claimed.claimed_until = 0.0
            self._claim_ended(claimed)
        now = time.monotonic()
        if worker is None or worker.sock is None or (worker is not claimed and worker.claimed_until > now):
            return None  # nothing to read, or another thread reads that pipe already
        if worker is not claimed:
            worker.claimed_at = now
        worker.claimed_until = now + CLAIM_S
        return worker

    def _read_claimed(self, worker, remaining):
        poller = select.poll()
        poller.register(worker.fd, select.POLLIN)
        if not poller.poll(min(CLAIM_S / 2, 1e9 if remaining is None else remaining) * 1000):
            return
        deferred = _defer_interrupts()  # from here until the messages are handled, a Ctrl-C would lose them
        try:
            with self.lock:
                if worker.sock is not None and self.alive:
                    self._process([(worker,) + _receive_all(worker)])
        finally:
            _resume_interrupts(deferred)

    def _claim_ended(self, worker):
        """The IO thread looks at a recently claimed pipe every RECHECK_S; after a long claim it sleeps, so it must
        be told that the pipe is its own again."""
        if time.monotonic() - worker.claimed_at >= LONG_CLAIM_S:
            os.write(self.wakeup_w, b"r")

    def future_for(self, ref):
        future, resolve = future_resolver(self, ref)
        with self.lock:
            entry = self._entry(ref.hex())
            if entry.value is None:
                entry.callbacks.append(resolve)
                return future
        resolve()
        return future

    def cancel(self, object_id, force, recursive):
        with self.lock:
            self._drain_local_refs()
            self._cancel(object_id, force, recursive)
            self._schedule()
            self.changed.notify_all()

    def _cancel(self, object_id, force, recursive):
        entry = self.objects.get(object_id)
        task = entry.task if entry is not None else None
        if task is not None:
            self._cancel_task(task, force, recursive)

    def _cancel_task(self, task, force, recursive):
        if task.task_id not in self.tasks:
            return  # finished already: nothing to cancel
        if recursive:
            for child in task.children:
                self._cancel_task(child, force, recursive)
        self._log("cancel", task.task_id, force)
        if task.kind == "actor_call":
            self._cancel_call(task, force)
        elif task.state in ("WAITING", "READY"):
            self._fail(task, TaskCancelledError(task.task_id))
        elif task.state == "QUEUED":  # in a worker's pipe, not started: it will run, but its result is dropped
            task.worker.queued.remove(task)
            task.worker = None
            self._fail(task, TaskCancelledError(task.task_id))
        elif task.state == "RUNNING" and not task.cancel_requested:
            task.cancel_requested = True
            worker = task.worker
            if force:
                worker.process.kill()
            elif any(w.worker is worker for w in self.waiters):
                self._answer_waiters()  # it is blocked in get/wait: answer "cancelled"
            else:  # the signal raises KeyboardInterrupt inside the task, if it is still the one named
                worker.signal_after_flush = True  # sent by _flush, once the message is in the pipe
                self._send(worker, ("cancel_task", task.task_id))

    def runtime_context(self):
        return RuntimeContext(JOB_ID, self.node_id, self.namespace)

    def cluster_resources(self):
        with self.lock:
            return self.resources.total_dict()

    def available_resources(self):
        with self.lock:
            return self.resources.available_dict()

    def nodes(self):
        return [{"NodeID": self.node_id, "Alive": True, "alive": True, "NodeManagerAddress": "127.0.0.1",
                 "NodeManagerHostname": socket.gethostname(), "NodeName": "127.0.0.1",
                 "Resources": self.cluster_resources(), "IsHeadNode": True}]

    def timeline(self):
        """Every finished task as a Chrome-trace "complete" event, the format Ray's timeline() returns."""
        with self.lock:
            runs = list(self.finished)
        events = [{"ph": "M", "name": "process_name", "pid": "Node 127.0.0.1", "args": {"name": "Node 127.0.0.1"}}]
        for pid in sorted({run[2] for run in runs}):
            events.append({"ph": "M", "name": "thread_name", "pid": "Node 127.0.0.1", "tid": f"worker {pid}",
                           "args": {"name": f"worker {pid}"}})
        for name, task_id, pid, started, ended, state in runs:
            events.append({"cat": f"task::{name}", "name": name, "pid": "Node 127.0.0.1", "tid": f"worker {pid}",
                           "ts": started * 1e6, "dur": (ended - started) * 1e6, "ph": "X",
                           "args": {"task_id": task_id, "state": state}})
        return events

    def _log(self, kind, *details):
        self.events.append((time.time(), kind) + details)

    def shutdown(self):
        with self.lock:
            if not self.alive:
                return
            self.alive = False
            for worker in self.workers:
                self._send(worker, ("exit",))
        os.write(self.wakeup_w, b"x")
        if self.io_thread is not threading.current_thread():
            self.io_thread.join(timeout=5)
        deadline = time.monotonic() + 2
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            if worker.sock is not None:
                worker.sock.close()
        self.flush_output()
        self.workers, self.fd_to_worker, self.objects, self.tasks = [], {}, {}, {}
        self.store.close()
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)
        refs_module.clear_pending_events()


# ---- helpers ----------------------------------------------------------------------------------------------
def load_value(value):
    """The Python value of a stored object (zero-copy for buffers in shared memory)."""
    kind = value[0]
    if kind == "v":
        return deserialize_inline(value[1], value[2])
    if kind == "s":
        return deserialize_from(value[1].read_view(), value[2])
    raise_stored_error(value[1])


def raise_stored_error(error):
    if isinstance(error, RayTaskError):
        raise error.as_instanceof_cause()
    raise copy.copy(error)  # a fresh instance each time, so tracebacks don't pile up


def _dump_error(error):
    return pickle.dumps(error)


def _load_error(error_bytes, task_name):
    try:
        return pickle.loads(error_bytes)
    except Exception as problem:
        return RaySystemError(f"The error raised by '{task_name}' could not be unpickled in the driver: {problem}")


def _update_poller(poller, watched, fd_to_worker, now):
    """Watch every worker's pipe for messages, except those a getter reads itself, and for room to write where an
    outbox is waiting. Returns how many seconds the IO thread may sleep before it must look at claims again."""
    for fd in [fd for fd in watched if fd not in fd_to_worker]:
        poller.unregister(fd)
        del watched[fd]
    recheck = 0.5
    for fd, worker in fd_to_worker.items():
        claimed = worker.claimed_until > now
        events = (0 if claimed else select.POLLIN) | (select.POLLOUT if worker.outbox else 0)
        if claimed:  # a short claim ends silently (see Node._wait): look again soon; a long one will say so
            young = now - worker.claimed_at < LONG_CLAIM_S
            recheck = min(recheck, RECHECK_S if young else worker.claimed_until - now)
        if watched.get(fd) != events:
            if events:
                poller.register(fd, events)  # registers, or changes the events of one already registered
                watched[fd] = events
            elif fd in watched:
                poller.unregister(fd)
                del watched[fd]
    return recheck


def _receive_all(worker):
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


def _first_ready(entries, count):
    """Positions of the first `count` entries whose value is known, in order. A wait() loop usually finds them at
    the front of its list, so stopping there keeps each call short."""
    ready = []
    for position, entry in enumerate(entries):
        if entry.value is not None:
            ready.append(position)
            if len(ready) == count:
                break
    return ready


def _deadline(timeout):
    if timeout is None:
        return None
    return time.monotonic() + timeout


def detect_gpu_ids(num_gpus):
    """GPU ids: the first `num_gpus` visible devices, or logical ones (0..n-1) if the machine has fewer."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = [int(x) for x in visible.split(",") if x.strip().isdigit()]
    elif shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
            found = [i for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]
        except (OSError, subprocess.SubprocessError):
            found = []
    else:
        found = []
    if num_gpus is None:
        return found
    to_units(num_gpus, "num_gpus")
    if num_gpus != int(num_gpus):
        raise ValueError(f"init(num_gpus={num_gpus}): the number of GPUs must be a whole number.")
    return found[:int(num_gpus)] if len(found) >= num_gpus else list(range(int(num_gpus)))


CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # v2, v1


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


def total_memory(limit_files=CGROUP_MEMORY_LIMITS):
    """The machine's memory, or a container's memory limit if that is smaller (the store is sized from it: sized
    from the host's memory, a large put in a small container would meet the out-of-memory killer, not a clear
    ObjectStoreFullError)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 8 * 2**30
    for path in limit_files:
        try:
            with open(path) as f:
                limit = f.read().strip()
        except OSError:
            continue
        if limit.isdigit():
            memory = min(memory, int(limit))
    return memory
