"""The owner side of the core worker: the object table, the task table, reference counts, dependencies, retries.

Mirrors Ray's `core_worker/task_manager.cc` and `reference_count.cc`. In Ray every process owns what it creates; in
the course runtime the driver owns everything, and its tables live here. No IO and no locks: the raylet (which holds
the lock) calls in, and each step leaves what happened in the outboxes (`ready`, `failed_creations`, `out_of_scope`,
`callbacks_due`) for the raylet to act on.
"""
import collections
import dataclasses
import itertools
import pickle
import time

from .exceptions import ObjectLostError, RaySystemError, RayTaskError
from .object_ref import new_id
from .protocol import Answer, ByRef, Cancelled, Consumed, Failed, InSegment, Inline, ReadyPositions, TimedOut, Values
from .task_spec import item_id, return_ids

Stored = collections.namedtuple("Stored", "segment layout")  # an object's value in shared memory (a plasma Segment)
Error = collections.namedtuple("Error", "error")  # the error a failed task left in place of its results


class ObjectEntry:
    """One object in the table; `value` is Inline, Stored or Error once known, None while pending."""

    __slots__ = ("id", "value", "refs", "dependents", "contained", "size", "creator", "task", "callbacks",
                 "dropped")

    def __init__(self, object_id, creator, task=None):
        self.id, self.creator, self.task = object_id, creator, task
        self.value, self.refs, self.size, self.dropped = None, 0, 0, False
        self.dependents, self.contained, self.callbacks = [], (), []


@dataclasses.dataclass(slots=True, eq=False)
class Stream:
    """A streaming generator's items, seen from the owner: each is held here until its consumer has a ref to it."""
    yielded: int = 0  # items stored so far
    handed: int = 0  # items next() has returned
    released: int = 0  # items no longer held here (the consumer holds them, or nobody wants them)
    done: bool = False
    dropped: bool = False  # the consumer's generator is gone: free what comes


@dataclasses.dataclass(slots=True, eq=False)
class Task:
    """A task (or an actor's creation, or an actor call) from submission until it finishes."""
    spec: object  # task_spec.TaskSpec
    state: str = "WAITING"  # WAITING (for arguments) -> READY (for resources) -> [QUEUED] -> RUNNING -> done
    waiting_on: set = dataclasses.field(default_factory=set)
    attempts: int = 0
    parent: object = None
    children: list = dataclasses.field(default_factory=list)
    submitted: float = 0.0
    cancel_requested: bool = False
    actor: object = None  # gcs.ActorRecord, for an actor's creation and its calls
    worker: object = None  # worker_pool.WorkerHandle running it
    allocation: object = None  # scheduler.Allocation it holds while it runs


class Owner:
    """The tables, and the rules that keep them consistent.

    >>> from course_runtime.task_spec import TaskSpec
    >>> owner = Owner()
    >>> a = owner.add_object("a" * 56, Inline(pickle.dumps(1), []), (), 1, "put by the driver")
    >>> owner.hold("a" * 56)                       # one ObjectRef to it
    >>> spec = TaskSpec("t" * 48, "f", "fid", [ByRef("a" * 56)], {}, 1, {"CPU": 10000}, 3, False, "task",
    ...                 None, None, ["a" * 56])
    >>> task = owner.add_task(spec)
    >>> task.state, owner.objects["a" * 56].refs   # ready at once; the task pins its argument
    ('READY', 2)
    >>> owner.release("a" * 56)                    # the ref is deleted: the task still needs the object
    >>> "a" * 56 in owner.objects
    True
    >>> owner.finish(task, "FINISHED")             # the task is done: nothing wants the object any more
    >>> "a" * 56 in owner.objects
    False
    """

    def __init__(self, free_segment=None, log=None):
        self.objects = {}  # object id -> ObjectEntry
        self.tasks = {}  # task id -> Task, until it finishes
        self.function_table = {}  # function (or actor class) id -> its pickle
        self.actor_handles = {}  # actor id -> how many ActorHandles exist (counted like ObjectRefs)
        self.streams = {}  # task id -> Stream, for each streaming generator task whose generator is alive
        self.free_segment = free_segment or (lambda segment: None)  # the store's free()
        self.log = log or (lambda *event: None)  # the raylet's event log
        self.ready, self.failed_creations, self.out_of_scope, self.callbacks_due = [], [], [], []
        self.tasks_finished = self.errors_stored = 0
        self.finished = collections.deque(maxlen=200_000)  # (name, task id, pid, start, end, state, kind, actor)

    def entry(self, object_id):
        entry = self.objects.get(object_id)
        if entry is None:
            raise ObjectLostError(object_id, f"ObjectRef({object_id}) is unknown to this runtime: it belongs to "
                                             f"a session that was shut down (or to another process's session), "
                                             f"or it was freed. Create it again in this session.")
        return entry

    # ---- tasks --------------------------------------------------------------------------------------------
    def add_task(self, spec, parent=None, actor=None, infeasible=None):
        """Record a task; it is READY (in `ready`), WAITING for arguments, or already failed."""
        self.pin(spec.pins)
        task = Task(spec, parent=parent, actor=actor, submitted=time.time())
        self.tasks[spec.task_id] = task
        if spec.num_returns.__class__ is tuple:  # ("streaming", backpressure)
            self.streams.setdefault(spec.task_id, Stream())  # a retry keeps what the first try yielded
        if parent is not None:
            parent.children.append(task)
        for object_id in return_ids(spec):  # a worker that submitted it may already hold refs to its results
            entry = self.objects.setdefault(object_id, ObjectEntry(object_id, ""))
            entry.creator, entry.task = f"returned by {spec.name}", task
        if infeasible is not None:
            self.fail(task, infeasible)
            return task
        for arg in itertools.chain(spec.args, spec.kwargs.values()):
            if type(arg) is ByRef:
                entry = self.objects[arg.object_id]
                if entry.value is None:
                    task.waiting_on.add(arg.object_id)
                    entry.dependents.append(task)
                elif type(entry.value) is Error:
                    self.fail(task, entry.value.error)  # an upstream error flows to this task's results
                    return task
        if not task.waiting_on:
            task.state = "READY"
            self.ready.append(task)
        return task

    def fail(self, task, error):
        if task.spec.kind == "actor_create":  # the actor's record says what that means (gcs.py)
            self.finish(task, "FAILED")
            self.failed_creations.append((task, error))
            return
        for object_id in return_ids(task.spec):
            entry = self.objects.get(object_id)
            if entry is not None and entry.value is None:
                self.complete(entry, Error(error))
        self.finish(task, "FAILED")

    def finish(self, task, state):
        task.state = state
        self.tasks_finished += 1
        stream = self.streams.get(task.spec.task_id)
        if stream is not None and state != "READY":
            stream.done = True
            if stream.dropped:
                del self.streams[task.spec.task_id]
        if self.tasks.pop(task.spec.task_id, None) is not None:
            for object_id in task.spec.pins:
                self.release(object_id)
        self.log("finish", task.spec.task_id, state)

    def retries_left(self, task):
        return task.spec.max_retries == -1 or task.attempts <= task.spec.max_retries

    def should_retry(self, task, error):
        """retry_exceptions: True, or a list of exception classes (pickled by a worker that submitted it)."""
        retry = task.spec.retry_exceptions
        if not retry or not self.retries_left(task) or not isinstance(error, RayTaskError):
            return False
        retry = pickle.loads(retry) if isinstance(retry, bytes) else retry
        return retry is True or isinstance(error.cause, tuple(retry))

    def timeline(self):
        """Every finished run as a Chrome-trace "complete" event, the format Ray's timeline() returns."""
        runs, node = list(self.finished), "Node 127.0.0.1"
        events = [{"ph": "M", "name": "process_name", "pid": node, "args": {"name": node}}]
        for pid in sorted({run[2] for run in runs}):
            events.append({"ph": "M", "name": "thread_name", "pid": node, "tid": f"worker {pid}",
                           "args": {"name": f"worker {pid}"}})
        for name, task_id, pid, started, ended, state, *_ in runs:
            events.append({"cat": f"task::{name}", "name": name, "pid": node, "tid": f"worker {pid}",
                           "ts": started * 1e6, "dur": (ended - started) * 1e6, "ph": "X",
                           "args": {"task_id": task_id, "state": state}})
        return events

    # ---- objects ------------------------------------------------------------------------------------------
    def add_object(self, object_id, value, contained, size, creator):
        stream = self.streams.get(object_id[:-8]) if self.streams else None
        if stream is not None:
            return self._add_item(stream, object_id, value, contained, size, creator)
        entry = self.objects.get(object_id) or ObjectEntry(object_id, creator)
        self.objects[object_id] = entry
        entry.creator, entry.size = creator, size
        self.complete(entry, value, contained)
        return entry

    def _add_item(self, stream, object_id, value, contained, size, creator):
        """A generator yielded an item: held for its consumer. A retry's repeat, or an item nobody will read, is
        dropped (its segment freed)."""
        index = int.from_bytes(bytes.fromhex(object_id[-8:]), "little") - 2
        known = self.objects.get(object_id)
        if stream.dropped or index < stream.yielded and known is not None and known.value is not None:
            if type(value) is Stored:
                self.free_segment(value.segment)
            return None
        entry = known or ObjectEntry(object_id, creator)
        self.objects[object_id] = entry
        entry.creator, entry.size, entry.refs = creator, size, entry.refs + 1
        stream.yielded = max(stream.yielded, index + 1)
        self.complete(entry, value, contained)
        return entry

    def stream_answer(self, task_id, index, kind, timed_out, cancelled):
        """A generator's consumer asks for item `index` (NextItem), or its producer waits until `index` items are
        taken (Consumed). An Answer with the item's id (the error's, at the item where the task failed), or None at
        the end; None while it must wait."""
        stream = self.streams.get(task_id)
        if cancelled or stream is None:
            return Cancelled() if cancelled else Answer(None)
        if kind is Consumed:
            ready = stream.handed >= index or stream.dropped
        else:
            while stream.released < min(index, stream.yielded):  # what came before is the consumer's now
                stream.released += 1
                self.release(item_id(task_id, stream.released - 1))
            ready = index < stream.yielded or stream.done
        if not ready:
            return TimedOut() if timed_out else None
        if kind is Consumed or index >= stream.yielded:
            completion = self.objects.get(new_id(task_id, 1))
            failed = kind is not Consumed and index == stream.yielded and completion is not None and \
                type(completion.value) is Error
            return Answer(completion.id if failed else None)
        stream.handed = max(stream.handed, index + 1)
        return Answer(item_id(task_id, index))

    def drop_stream(self, task_id):
        """The consumer's generator is gone: free the items it never took, and those still to come."""
        stream = self.streams.get(task_id)
        if stream is None or stream.dropped:
            return
        stream.dropped = True
        while stream.released < stream.yielded:
            stream.released += 1
            self.release(item_id(task_id, stream.released - 1))
        if stream.done:
            del self.streams[task_id]

    def complete(self, entry, value, contained=()):
        """An object's value is known: its dependents may become ready, and it is freed if nobody wants it."""
        entry.value, entry.contained = value, tuple(contained)
        failed = type(value) is Error
        self.errors_stored += failed
        for object_id in entry.contained:  # refs (and actor handles) inside a stored value keep theirs alive
            self.count(object_id, +1)
        for task in entry.dependents:
            if task.state != "WAITING":
                continue
            if failed:
                self.fail(task, value.error)
                continue
            task.waiting_on.discard(entry.id)
            if not task.waiting_on:
                task.state = "READY"
                self.ready.append(task)
        entry.dependents = []
        if entry.callbacks:  # futures waiting for it: resolved outside the lock
            self.callbacks_due.extend(entry.callbacks)
            entry.callbacks = []
        if entry.dropped and entry.refs <= 0:  # a task result whose refs were all dropped while it ran
            self.free(entry)

    def locate(self, arg):
        """Where a worker finds a value: Inline, or InSegment (the path it maps)."""
        value = arg if type(arg) is Inline else self.objects[arg.object_id].value
        if type(value) is Stored:
            return InSegment(value.segment.path, value.segment.size, value.layout)
        return value

    # ---- reference counts ---------------------------------------------------------------------------------
    def pin(self, object_ids):
        """What a task (or an actor's constructor) was given keeps living while it needs it: all known, or none."""
        for object_id in [i if i in self.actor_handles else self.entry(i).id for i in object_ids]:
            self.count(object_id, +1)

    def count(self, object_id, change):
        """One more (or fewer) holder of an object or an actor handle we know of."""
        if object_id in self.objects:
            self.objects[object_id].refs += change
        elif object_id in self.actor_handles:
            self.actor_handles[object_id] += change

    def hold(self, object_id):
        if object_id in self.actor_handles:
            self.actor_handles[object_id] += 1
            return
        entry = self.objects.get(object_id)
        if entry is None:  # the message that carries it creates it (a put, or a nested task's result)
            entry = self.objects[object_id] = ObjectEntry(object_id, "a worker")
        entry.refs += 1

    def release(self, object_id):
        entry = self.objects.get(object_id)
        if entry is None:
            if object_id in self.actor_handles:
                self.actor_handles[object_id] -= 1
                if self.actor_handles[object_id] <= 0:
                    self.out_of_scope.append(object_id)
            return
        entry.refs -= 1
        if entry.refs <= 0:
            if self.streams and object_id[:-8] in self.streams and object_id.endswith("01000000"):
                self.drop_stream(object_id[:-8])  # the completion object: its generator is gone
            if entry.value is not None:
                self.free(entry)
            else:
                entry.dropped = True  # free it as soon as its value arrives

    def free(self, entry):
        if self.objects.pop(entry.id, None) is None:
            return  # freed already (e.g. while its dependents were being failed)
        if type(entry.value) is Stored:
            self.free_segment(entry.value.segment)
        for object_id in entry.contained:
            self.release(object_id)

    def apply_ref_news(self, held, released):
        """The news from object_ref.LocalRefCounts.drain(): this process began / stopped holding these ids."""
        for object_id in held:
            if object_id in self.objects or object_id in self.actor_handles:
                self.hold(object_id)
        for object_id in released:
            self.release(object_id)

    # ---- answering get() and wait() for a task blocked in them -------------------------------------------
    def answer(self, ids, num_returns, for_get, timed_out, cancelled):
        """The Reply answer for a blocked get (for_get) or wait, or None while it must keep waiting."""
        if cancelled:
            return Cancelled()
        entries = [self.objects.get(i) for i in ids]
        if None in entries:
            return Failed(pickle.dumps(ObjectLostError(ids[entries.index(None)])))
        ready = first_ready(entries, len(entries) if for_get else num_returns)
        if not for_get:
            return ReadyPositions(ready) if len(ready) >= num_returns or timed_out else None
        error = next((e.value.error for e in entries if type(e.value) is Error), None)
        if error is not None:
            return Failed(pickle.dumps(error))
        if len(ready) < len(entries):
            return TimedOut() if timed_out else None
        return Values([self.locate(ByRef(e.id)) for e in entries])


def first_ready(entries, count):
    """Positions of the first `count` entries whose value is known, in order. A wait() loop usually finds them at
    the front of its list, so stopping there keeps each call short.

    >>> class E:
    ...     def __init__(self, value): self.value = value
    >>> first_ready([E(None), E(1), E(2), E(3)], 2)
    [1, 2]
    """
    ready = []
    for position, entry in enumerate(entries):
        if entry.value is not None:
            ready.append(position)
            if len(ready) == count:
                break
    return ready


def load_error(error_bytes, task_name):
    try:
        return pickle.loads(error_bytes)
    except Exception as problem:
        return RaySystemError(f"The error raised by '{task_name}' could not be unpickled in the driver: {problem}")
