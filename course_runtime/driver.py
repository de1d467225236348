"""The driver's core worker: what `ray.get`, `ray.put`, `f.remote` and the rest do in the driver process.

Mirrors the core worker of Ray's driver (`_raylet.pyx` CoreWorker, in driver mode): it owns what it creates and
waits for results. It works directly on the raylet it started (raylet.py), under the raylet's lock; the thread that
calls get() sleeps on the raylet's `changed` condition, or (fast_paths) reads the worker's pipe itself.
"""
import time

from . import fast_paths
from .exceptions import GetTimeoutError, ObjectStoreFullError, RaySystemError, raise_stored
from .object_ref import ObjectRef, future_resolver, new_id, random_task_id
from .owner import Error, Stored, first_ready
from .plasma import write
from .protocol import Inline, NextItem
from .raylet import JOB_ID, Raylet
from .runtime_context import RuntimeContext
from .serialization import INLINE_LIMIT, deserialize_inline, describe_unpicklable, serialize
from .task_spec import return_ids
from .wait_manager import deadline_after


class Driver:
    def __init__(self, *args):
        self.raylet = raylet = Raylet(*args)
        self.lock, self.owner, self.namespace = raylet.lock, raylet.owner, raylet.namespace
        self.runtime_env = None  # the job's (init's); its tasks and actors start from it

    # ---- tasks and actors -----------------------------------------------------------------------------------
    def submit_task(self, spec, to_store, pickled):
        """f.remote() and actor.method.remote(): store large arguments, then submit; returns the result refs."""
        self._store_arguments(to_store, spec.name)
        with self.lock:
            self.raylet.apply_local_refs()
            if spec.function_id is not None:
                self.owner.function_table.setdefault(spec.function_id, pickled())
            task = self.raylet.submit(spec)
            refs = [ObjectRef(i) for i in return_ids(spec)]
            self.raylet.schedule() if spec.kind == "task" else self.raylet.gcs.pump(task.actor)
        return refs

    def create_actor(self, spec, to_store, pickled):
        with self.lock:
            existing = self.raylet.gcs.existing(spec)
            if existing is not None:
                return existing.handle_fields()
        self._store_arguments(to_store, spec.qualname)
        with self.lock:
            fields = self.raylet.create_actor(spec, pickled())
            self.raylet.schedule()
        return fields

    def _store_arguments(self, to_store, name):
        for object_id, serialized in to_store:  # like a put, once per call (the event log shows each)
            self.put_serialized(object_id, serialized, f"argument of {name}")
            self.raylet.log("argument_stored", object_id, serialized.size)

    def kill_actor(self, actor_id, no_restart):
        with self.lock:
            self.raylet.kill_actor(actor_id, no_restart)
            self.raylet.step()

    def get_actor(self, name, namespace=None):
        with self.lock:
            return self.raylet.gcs.lookup(name, namespace or self.raylet.namespace)

    def cancel(self, object_id, force, recursive):
        with self.lock:
            self.raylet.apply_local_refs()
            self.raylet.cancel(object_id, force, recursive)
            self.raylet.step()

    # ---- objects: put, get, wait ----------------------------------------------------------------------------
    def put_serialized(self, object_id, serialized, description):
        """Store a pickled value: inline, or allocate a segment, write it (outside the lock), seal it."""
        if serialized.size < INLINE_LIMIT:
            value = Inline(*serialized.inline())
        else:
            layout, size = serialized.layout()
            with self.lock:
                segment = self.raylet.store.allocate(size, description)
            try:
                write(segment.path, serialized, layout, size)
            except BaseException as error:  # e.g. Ctrl-C in the middle: the half-written segment must not linger
                with self.lock:
                    self.raylet.store.free(segment)
                if isinstance(error, OSError):  # e.g. out of file descriptors: explain it, as allocate() does
                    raise ObjectStoreFullError(self.raylet.store.refused_message(size, description, error)) from None
                raise
            value = Stored(segment, layout)
        with self.lock:
            self.owner.add_object(object_id, value, serialized.contained_refs, serialized.size, description)
            self.raylet.schedule()

    def put(self, value):
        try:
            serialized = serialize(value)
        except Exception as error:
            raise TypeError(f"Could not put the value in the object store: {describe_unpicklable(value, error)}.") \
                from None
        with self.lock:
            self.raylet.apply_local_refs()
        object_id = new_id(random_task_id(), 1)
        try:
            self.put_serialized(object_id, serialized, "put by the driver")
            self.raylet.log("put", object_id, serialized.size)
            return ObjectRef(object_id)
        except BaseException:  # Ctrl-C after the object was stored but before its ref existed: nobody could free it
            with self.lock:
                self.raylet.apply_local_refs()
                entry = self.owner.objects.get(object_id)
                if entry is not None and entry.refs <= 0 and entry.value is not None:
                    self.owner.free(entry)
            raise

    def get_values(self, ids, timeout):
        with self.lock:
            self.raylet.apply_local_refs()
            entries = [self.owner.entry(i) for i in ids]
            self.raylet.log("get", len(ids))
        first_pending, errors_seen, error = 0, -1, None

        def answered():  # can get() return: every value is there, or one is an error? O(newly ready) per call
            nonlocal first_pending, errors_seen, error
            while first_pending < len(entries) and entries[first_pending].value is not None:
                first_pending += 1
            if errors_seen != self.owner.errors_stored:  # look for errors only when a new one exists somewhere
                errors_seen = self.owner.errors_stored
                error = next((e.value.error for e in entries if type(e.value) is Error), None)
            return error is not None or first_pending == len(entries)

        self.wait(answered, deadline_after(timeout), entries[0] if len(entries) == 1 else None)
        if error is not None:
            raise_stored(error)
        values = [e.value for e in entries]
        if None in values:
            raise GetTimeoutError(f"Get timed out: {values.count(None)} of {len(ids)} object(s) were not ready "
                                  f"after {timeout} s.")
        return [load(v) for v in values]

    def next_item(self, task_id, index, timeout):
        """A generator's item `index`: its object id (the error's, where the task failed), or None at the end."""
        answer = None

        def answered():
            nonlocal answer
            answer = self.owner.stream_answer(task_id, index, NextItem, False, False)
            return answer is not None

        with self.lock:
            self.raylet.apply_local_refs()  # the consumer's refs to earlier items first: then they are its own
            completion = self.owner.objects.get(new_id(task_id, 1))
            ready = answered()  # usually the producer is ahead: the item is there already
        if not ready:
            self.wait(answered, deadline_after(timeout), completion)
        if answer is None:
            raise GetTimeoutError(f"The generator's next item was not ready after {timeout} s.")
        return answer.value

    def wait_ids(self, ids, num_returns, timeout):
        with self.lock:
            self.raylet.apply_local_refs()
            entries = list(map(self.owner.objects.get, ids))  # one pass at C speed: wait() loops call this a lot
            if None in entries:
                self.owner.entry(ids[entries.index(None)])  # raises, naming the unknown one
            self.raylet.log("wait", len(ids), num_returns)
        ready = []

        def answered():  # can wait() return: are num_returns of them ready?
            nonlocal ready
            ready = first_ready(entries, num_returns)
            return len(ready) >= num_returns

        self.wait(answered, deadline_after(timeout))
        return ready

    def wait(self, answered, deadline, entry=None):
        """Block until answered() (called under the lock) is True or the deadline passes, sleeping on `changed`,
        which the IO thread notifies after each batch of messages."""
        raylet = self.raylet

        def over():  # answered, or shutdown() (from another thread) ended the runtime under this one
            return not raylet.alive or answered()

        if not fast_paths.wait_reading_pipe(raylet, entry, over, deadline):
            while True:
                with self.lock:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if over() or (remaining is not None and remaining <= 0):
                        break
                    raylet.changed.wait(remaining if remaining is not None else 1.0)
                if raylet.output.pending:
                    raylet.output.flush()
        if raylet.output.pending:
            raylet.output.flush()
        if not raylet.alive:
            raise RaySystemError("ray.shutdown() was called while this thread waited in ray.get()/ray.wait(): the "
                                 "runtime that would have produced the result is gone. Collect results before "
                                 "shutting down (or call ray.init() again and submit the work anew).")

    def future_for(self, ref):
        future, resolve = future_resolver(self, ref)
        with self.lock:
            entry = self.owner.entry(ref.hex())
            if entry.value is None:
                entry.callbacks.append(resolve)  # the IO thread calls it, outside the lock
                return future
        resolve()
        return future

    # ---- what code can ask ----------------------------------------------------------------------------------
    def query(self, what):
        with self.lock:
            return self.raylet._query(what)

    def placement_group_op(self, op, *args):
        with self.lock:
            answer = self.raylet.placement_group_op(op, *args)
            self.raylet.step()  # a group placed or removed changes what can run
        return answer

    def runtime_context(self):
        return RuntimeContext(JOB_ID, self.raylet.node_id, self.raylet.namespace, runtime_env=self.runtime_env)

    def gpu_ids(self):
        return []

    def flush_output(self):
        self.raylet.output.flush()

    def shutdown(self):
        self.raylet.shutdown()
        from . import object_ref
        object_ref.clear_pending_events()


def load(value):
    """The Python value of a stored object (zero-copy for buffers in shared memory)."""
    if type(value) is Inline:
        return deserialize_inline(value.pickle, value.buffers)
    return value.segment.read(value.layout)
