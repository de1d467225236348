"""The API as seen from inside a task or an actor: every call becomes a message to the driver (protocol.py), and
requests wait for its Reply.

Mirrors the core worker of a Ray worker process (`_raylet.pyx` CoreWorker, in worker mode): what `ray.get`,
`ray.put`, `f.remote` and the rest do when called from a task. Ray's worker talks to its raylet and to other core
workers; ours talks only to the driver, over its one pipe. worker.py runs the tasks; this module is their API.
"""
import contextvars
import collections
import itertools
import os
import pickle
import threading

import cloudpickle

from . import plasma
from .exceptions import GetTimeoutError, raise_stored
from .object_ref import LocalRefCounts, ObjectRef, future_resolver, new_id, random_task_id
from .protocol import (Abandon, Allocate, Cancel, CancelCall, CancelTask, Cancelled, Consumed, CreateActor,
                       Envelope, Failed, Get, GetActor, HandBack, Inline, KillActor, NextItem, PlacementGroupOp, Put,
                       Query, Reply, RunTask, Sealed, SubmitTask, TimedOut, Wait)
from .runtime_context import RuntimeContext
from .serialization import INLINE_LIMIT, describe_unpicklable, deserialize_inline, serialize
from .task_spec import return_ids

_MAIN_THREAD = threading.main_thread()


class TaskContext:
    def __init__(self, conn, setup):
        self.conn, self.job_id, self.node_id, self.namespace = conn, setup.job_id, setup.node_id, setup.namespace
        self.send_lock, self.request_lock = threading.Lock(), threading.Lock()
        self.local_refs = LocalRefCounts()
        self.registered = set()  # ids of functions and classes this worker already sent to the driver
        self.kept = {}  # function id -> its pickle, from a task handed back (the driver sends each function once)
        self.request_ids = itertools.count()
        self.current = contextvars.ContextVar("current_task", default=None)  # (task id, name, gpu ids, resources)
        self.in_user_code = self.in_runtime_call = self.cancel_pending = False
        self.cancelled_calls = set()  # actor calls cancel() named
        self.backlog = collections.deque()  # messages that arrived while a task waited for a reply
        self.replies = None  # request id -> Future, for a threaded or async actor (its main thread only reads)
        self.actor = self.actor_id = self.actor_name = self.qualname = self.class_name = None
        self.resources, self.gpus = {}, []  # an actor's, for its whole life
        self.runtime_env = None  # the running task's (or the actor's): tasks submitted from here start from it
        self.loop = None  # an async actor's event loop

    @property
    def task(self):
        return self.current.get()

    # ---- talking to the driver ------------------------------------------------------------------------------
    def send(self, message):
        # cancel()'s KeyboardInterrupt must not land between draining the ref-count news and sending it, nor cut
        # a message in half: the main thread (where signal handlers run) marks this as runtime code, and raises a
        # cancel that arrived meanwhile once the message is out.
        main = threading.current_thread() is _MAIN_THREAD
        outer = self.in_runtime_call
        if main:
            self.in_runtime_call = True
        try:
            with self.send_lock:
                held, released = self.local_refs.drain()
                self.conn.send(Envelope(held, message, released))
        finally:
            if main:
                self.in_runtime_call = outer
        if main:
            self.raise_pending_cancel()

    def raise_pending_cancel(self):
        """Raise the KeyboardInterrupt of a cancel() that arrived while runtime code ran, now that it is safe."""
        if self.cancel_pending and self.in_user_code and not self.in_runtime_call:
            self.cancel_pending = False
            raise KeyboardInterrupt

    def request(self, kind, *fields, interruptible=True):
        """Send kind(request id, *fields) and return the answer of its Reply (raising the error of a Failed one).
        With interruptible=False a cancel() meanwhile stays pending, so that the reply is not lost."""
        answer = self._exchange(kind, fields, interruptible)
        if type(answer) is Failed:
            raise_stored(pickle.loads(answer.error))
        return answer

    def _exchange(self, kind, fields, interruptible):
        if self.replies is not None:
            return self.request_async(kind, *fields).result()
        with self.request_lock:
            self.in_runtime_call = True
            try:
                request_id = next(self.request_ids)
                self.send(kind(request_id, *fields))
                while True:
                    message = self.conn.recv()
                    if type(message) is Reply and message.request_id == request_id:
                        return message.answer
                    if self.take_cancel_news(message):
                        continue
                    if type(message) is RunTask:
                        # A task the driver queued behind this one (fast_paths). This one now waits, perhaps for
                        # that very task: hand it back to run elsewhere, or both would wait. Keep its function: the
                        # driver sends each function to a worker once, and the next task may need it.
                        if message.function is not None:
                            self.kept[message.function_id] = message.function
                        self.send(HandBack(message.task_id))
                    else:
                        self.backlog.append(message)  # e.g. the next calls of this actor: run them afterwards
            except (EOFError, OSError):
                os._exit(1)  # the driver is gone
            finally:
                self.in_runtime_call = False
                if interruptible:
                    self.raise_pending_cancel()

    def request_async(self, kind, *fields):
        """A threaded or async actor: a Future that the main thread completes when the reply arrives."""
        import concurrent.futures  # imported where needed: a worker that starts fast makes init() fast

        future, request_id = concurrent.futures.Future(), next(self.request_ids)
        self.replies[request_id] = future
        self.send(kind(request_id, *fields))
        return future

    def take_cancel_news(self, message):
        """Note a cancel (an actor call's, or this task's) and return True; False for any other message."""
        if type(message) is CancelCall:
            self.cancelled_calls.add(message.task_id)
        elif type(message) is CancelTask:
            self.cancel_pending = self.cancel_pending or (self.task is not None and self.task[0] == message.task_id)
        else:
            return False
        return True

    def read_cancel_news(self):
        """In the signal handler: read what waits in the pipe; cancels are noted, the rest is kept for later."""
        while self.conn.poll():
            message = self.conn.recv()
            if not self.take_cancel_news(message):
                self.backlog.append(message)

    # ---- objects --------------------------------------------------------------------------------------------
    def store_value(self, value, description):
        """Pickle a value for the store: (Inline or Sealed, refs inside it, size)."""
        try:
            serialized = serialize(value)
        except Exception as error:
            raise TypeError(f"Could not serialize the value {description}: "
                            f"{describe_unpicklable(value, error)}.") from None
        return self.write(serialized, description), serialized.contained_refs, serialized.size

    def write(self, serialized, description):
        if serialized.size < INLINE_LIMIT:
            return Inline(*serialized.inline())
        layout, size = serialized.layout()
        # The driver checks the memory budget first. Its reply must not be lost to a cancel: it names our segment.
        segment_id, path = self.request(Allocate, size, description, interruptible=False).value
        try:
            self.raise_pending_cancel()
            plasma.write(path, serialized, layout, size)
        except BaseException:  # e.g. cancel()'s KeyboardInterrupt in a put: free the half-written segment now
            self.send(Abandon(segment_id))
            raise
        return Sealed(segment_id, layout)  # the driver seals it when this arrives

    def put_serialized(self, object_id, serialized, description):
        self.send(Put(object_id, self.write(serialized, description), serialized.contained_refs, serialized.size,
                      description))

    def load(self, location):
        if type(location) is Inline:
            return deserialize_inline(location.pickle, location.buffers)
        return plasma.read(location.path, location.size, location.layout)

    def put(self, value):
        task_name = self.task[1] if self.task else (self.class_name or "a worker")
        location, contained, size = self.store_value(value, f"put by {task_name}")
        ref = ObjectRef(new_id(random_task_id(), 1))  # created first: the driver learns we hold it with the put
        self.send(Put(ref.hex(), location, contained, size, f"put by {task_name}"))
        return ref

    def get_values(self, ids, timeout):
        answer = self.request(Get, ids, timeout)
        if type(answer) is TimedOut:
            raise GetTimeoutError(f"Get timed out: some of {len(ids)} object(s) were not ready after {timeout} s.")
        if type(answer) is Cancelled:
            raise KeyboardInterrupt  # this task was cancelled while it waited
        return [self.load(location) for location in answer.locations]

    def wait_ids(self, ids, num_returns, timeout):
        answer = self.request(Wait, ids, num_returns, timeout)
        if type(answer) is Cancelled:
            raise KeyboardInterrupt
        return answer.positions

    def next_item(self, task_id, index, timeout):
        """A generator's item `index`: its object id, or None at the end (ObjectRefGenerator)."""
        answer = self.request(NextItem, task_id, index, timeout)
        if type(answer) is TimedOut:
            raise GetTimeoutError(f"The generator's next item was not ready after {timeout} s.")
        if type(answer) is Cancelled:
            raise KeyboardInterrupt
        return answer.value

    def wait_consumed(self, task_id, count):
        """Backpressure: wait until the consumer has taken `count` items of this task's stream."""
        if type(self.request(Consumed, task_id, count, None)) is Cancelled:
            raise KeyboardInterrupt

    # ---- tasks and actors -----------------------------------------------------------------------------------
    def _store_arguments(self, to_store, name):
        for object_id, serialized in to_store:
            self.put_serialized(object_id, serialized, f"argument of {name}")

    def _once(self, function_id, pickled):
        """The function's pickle the first time this worker sends it, else None."""
        if function_id in self.registered:
            return None
        self.registered.add(function_id)
        return pickled()

    def submit_task(self, spec, to_store, pickled):
        self._store_arguments(to_store, spec.name)
        refs = [ObjectRef(i) for i in return_ids(spec)]
        if spec.retry_exceptions not in (True, False):  # exception classes from a notebook: by value
            spec = spec._replace(retry_exceptions=cloudpickle.dumps(spec.retry_exceptions))
        self.send(SubmitTask(spec, self._once(spec.function_id, pickled) if spec.function_id else None))
        return refs

    def create_actor(self, spec, to_store, pickled):
        self._store_arguments(to_store, spec.qualname)
        return self.request(CreateActor, spec, self._once(spec.class_id, pickled)).value

    def cancel(self, object_id, force, recursive):
        self.send(Cancel(object_id, force, recursive))

    def kill_actor(self, actor_id, no_restart):
        self.send(KillActor(actor_id, no_restart))

    def get_actor(self, name, namespace=None):
        return self.request(GetActor, name, namespace).value

    def query(self, what):
        return self.request(Query, what).value

    def placement_group_op(self, op, *args):
        return self.request(PlacementGroupOp, op, args).value

    def future_for(self, ref):
        future, resolve = future_resolver(self, ref)
        threading.Thread(target=resolve, daemon=True).start()  # a worker has no IO thread to call it back
        return future

    def runtime_context(self):
        task_id, name, _, resources = self.task or (None, None, None, self.resources)
        actor = (self.actor_id, self.qualname, type(self.actor)) if self.actor_id is not None else None
        return RuntimeContext(self.job_id, self.node_id, self.namespace, task_id=task_id, task_name=name,
                              assigned_resources=resources, worker_id=str(os.getpid()), actor_id=self.actor_id,
                              actor_name=self.actor_name, current_actor=actor, runtime_env=self.runtime_env,
                              canceled=lambda: self.is_canceled(task_id))

    def is_canceled(self, task_id):
        if self.loop is not None:  # a coroutine learns of cancel() by CancelledError, as in Ray
            raise RuntimeError("This method is not supported in an async actor.")
        return self.cancel_pending or (task_id in self.cancelled_calls)

    def gpu_ids(self):
        return list(self.task[2]) if self.task else list(self.gpus)
