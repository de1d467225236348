"""A worker process: takes tasks from its pipe, runs them, stores what they return.

Mirrors Ray's worker process (`default_worker.py` and the executing half of the core worker). The driver starts it
with one end of a socket pair; it sets itself up like the driver (same sys.path and working directory), then loops:
receive a task, load its arguments (zero-copy from shared memory for large ones), run the function, and send back
the results, small ones inline, large ones written into a segment the driver allocated. Inside a task the whole API
works (`remote`, `get`, `put`, `wait`, ...): the WorkerClient below forwards each call to the driver.

An actor's worker is dedicated to one instance: "actor_init" builds it, then each "actor_call" runs a method. A
plain actor runs calls one at a time in the main thread, in the order they arrive; a threaded actor
(max_concurrency > 1) hands them to a thread pool and an async actor to an asyncio loop, while the main thread keeps
reading the pipe and routes the driver's replies to whichever thread asked.
"""
import contextvars
import collections
import inspect
import io
import itertools
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback

import cloudpickle

from .channel import Channel
from .exceptions import GetTimeoutError, ObjectStoreFullError, RayTaskError, UnserializableException
from .object_ref import LocalRefCounts, ObjectRef, future_resolver, new_id, random_task_id
from .object_store import map_for_reading, map_for_writing
from .remote_function import pack_arguments
from .runtime_context import RuntimeContext
from .serialization import (INLINE_LIMIT, describe_unpicklable, deserialize_from, deserialize_inline, serialize,
                            unpickle_function)


_MAIN_THREAD = threading.main_thread()
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# A worker whose last wait for a message was shorter than SPIN_S (a driver sending work one piece at a time) watches
# its pipe for up to SPIN_S before it sleeps next time (see Channel.recv); one longer wait ends that.
SPIN_S = 0.0002


def main():
    conn = Channel(socket.socket(fileno=int(sys.argv[1])))
    # Ctrl-C in a terminal reaches every process in the group; only the driver should react to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, sys_path, cwd, driver_pid, job_id, node_id, namespace = conn.recv()
    sys.path[:] = sys_path
    os.chdir(cwd)
    _exit_when_driver_dies(driver_pid)
    client = WorkerClient(conn, job_id, node_id, namespace)
    from . import api
    api._set_runtime(client)
    signal.signal(signal.SIGUSR1, client.on_cancel_signal)
    sys.stdout = ForwardedStream(client, "stdout")
    sys.stderr = ForwardedStream(client, "stderr")
    os.register_at_fork(after_in_child=_print_directly)
    client.send("ready")
    client.serve()


def _print_directly():
    """In a child forked by a task (multiprocessing): print to the real stdout/stderr, never into this worker's
    pipe, where the child's messages would mix with the worker's."""
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


def _exit_when_driver_dies(driver_pid):
    """Workers never outlive their driver, even one killed with SIGKILL (a kernel restart)."""
    def watch():
        while os.getppid() == driver_pid:
            time.sleep(0.5)
        os._exit(1)
    if os.getppid() != driver_pid:
        os._exit(1)
    threading.Thread(target=watch, name="course_runtime-watchdog", daemon=True).start()


class WorkerClient:
    def __init__(self, conn, job_id, node_id, namespace):
        self.conn, self.job_id, self.node_id, self.namespace = conn, job_id, node_id, namespace
        self.send_lock = threading.Lock()
        self.request_lock = threading.Lock()
        self.local_refs = LocalRefCounts()
        self.functions = {}  # function id -> function: this worker's function table
        self.registered_functions = set()  # ids of functions this worker already sent to the driver
        self.request_ids = itertools.count()
        self.current = contextvars.ContextVar("current_task", default=None)  # (task id, name, gpu ids, resources)
        self.in_user_code = self.in_runtime_call = self.cancel_pending = False
        self.idle = False  # the main thread is waiting in serve() for the next message
        self.news_waiting = False  # a cancel signal came between tasks: look for its news before the next one
        self.calls = 0  # tasks run so far (a delayed cancel checks it is still for the same task)
        self.backlog = collections.deque()  # messages that arrived while a task waited for a reply
        self.actor = self.actor_id = self.actor_name = self.class_name = None
        self.concurrent = False  # threaded/async actor: the main thread only reads, and routes replies
        self.replies = {}  # request id -> Future, in concurrent mode
        self.cancelled_calls = set()
        self.exit_requested = False
        self.resources, self.gpus = {}, []
        self.pool = self.loop = self.semaphore = None
        self.running_coroutines = {}  # task id -> concurrent Future of an async actor's call
        self.running_calls = set()  # calls of a threaded or async actor still running
        self.pending_terminate = None  # __ray_terminate__ waiting for those calls to finish

    @property
    def task(self):
        return self.current.get()

    # ---- talking to the driver ----------------------------------------------------------------------------
    def send(self, kind, *payload):
        # cancel()'s KeyboardInterrupt must not land between draining the ref-count news and sending it, nor cut
        # a message in half (the driver would misread everything after it): the main thread (where signal
        # handlers run) marks this as runtime code, and raises a cancel that arrived meanwhile once it is sent.
        main = threading.current_thread() is _MAIN_THREAD
        outer = self.in_runtime_call
        if main:
            self.in_runtime_call = True
        try:
            with self.send_lock:
                held, released = self.local_refs.drain()  # ref-count news rides along with every message
                self.conn.send((kind, held, released) + payload)
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

    def request(self, kind, *payload, interruptible=True):
        """Send a request to the driver and wait for its reply. With interruptible=False, a cancel() that arrives
        meanwhile stays pending (raise_pending_cancel) so that the reply is not lost."""
        if self.concurrent:
            return self.request_async(kind, *payload).result()
        with self.request_lock:
            self.in_runtime_call = True
            try:
                request_id = next(self.request_ids)
                self.send(kind, request_id, *payload)
                while True:
                    message = self.conn.recv()
                    if message[0] == "reply" and message[1] == request_id:
                        return message[2]
                    if self._take_cancel_news(message):
                        continue
                    if message[0] == "task":
                        # A task the driver queued behind this one (see Node._pipeline_tiny_tasks). This one now
                        # waits, perhaps for that very task: hand it back to run elsewhere, or both would wait.
                        self.send("bounce", message[1])
                    else:
                        self.backlog.append(message)  # e.g. the next calls of this actor: run them afterwards
            except (EOFError, OSError):
                os._exit(1)  # the driver is gone
            finally:
                self.in_runtime_call = False
                if interruptible:
                    self.raise_pending_cancel()

    def request_async(self, kind, *payload):
        """Concurrent mode: a Future that the main thread completes when the reply arrives."""
        import concurrent.futures  # imported where needed: a worker that starts fast makes init() fast

        future = concurrent.futures.Future()
        request_id = next(self.request_ids)
        self.replies[request_id] = future
        self.send(kind, request_id, *payload)
        return future

    def on_cancel_signal(self, signum, frame):
        """`cancel()` of the running task: raise KeyboardInterrupt in it, but never in the middle of pipe I/O.
        In a sync actor, cancel is cooperative instead: read the "cancel_call" news so is_canceled() turns True."""
        if self.actor_id is not None:
            if not self.in_runtime_call and not self.idle:  # idle: serve() reads the news itself, next
                self._read_cancel_news()
            return
        # The driver sent ("cancel_task", id) before the signal: the task is cancelled only if that names the task
        # running now (the signal may land just after that task ended and the next queued one began). The request
        # loop reads such messages itself; otherwise, read them here (only from inside user code: between tasks the
        # main thread may be in the middle of reading a message, and nothing is left to cancel anyway).
        if self.in_user_code and not self.request_lock.locked():
            self._read_cancel_news()
        elif not self.in_user_code:
            self.news_waiting = True  # e.g. the signal came before the task it names started: call() reads it
        if self.cancel_pending and self.in_user_code and not self.in_runtime_call:
            if frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
                # The task is in the runtime's own bookkeeping (an ObjectRef's __del__, a put between writing and
                # reporting): interrupted there, ref-count news would be lost. Let it finish; try again shortly.
                threading.Timer(0.005, self._cancel_again, (self.calls,)).start()
                return
            self.cancel_pending = False
            raise KeyboardInterrupt
        # Otherwise it stays pending: raise_pending_cancel() raises it as soon as the runtime code is done.

    def _read_cancel_news(self):
        """In the signal handler: read what waits in the pipe; cancels are noted, the rest is kept for later."""
        while self.conn.poll():
            message = self.conn.recv()
            if not self._take_cancel_news(message):
                self.backlog.append(message)

    def _take_cancel_news(self, message):
        """Note a cancel message (an actor call's, or this task's) and return True; False for any other message."""
        if message[0] == "cancel_call":
            self.cancelled_calls.add(message[1])
        elif message[0] == "cancel_task":
            self.cancel_pending = self.cancel_pending or self._is_current(message[1])
        else:
            return False
        return True

    def _is_current(self, task_id):
        current = self.task
        return current is not None and current[0] == task_id

    def _cancel_again(self, calls):
        if self.calls == calls and self.in_user_code:  # still the task that was cancelled
            os.kill(os.getpid(), signal.SIGUSR1)

    # ---- running tasks ------------------------------------------------------------------------------------
    def serve(self):
        spin_s = 0.0
        while True:
            if self.pending_terminate is not None and not self.running_calls:
                self.terminate(*self.pending_terminate)
            if self.backlog:
                message = self.backlog.popleft()
            else:
                try:
                    if self.concurrent and not self.conn.poll(0.05):
                        # a threaded/async actor: look now and then for a pending exit or terminate
                        if self.exit_requested:
                            sys.exit(0)
                        continue
                    self.idle, idle_since = True, time.perf_counter()
                    message = self.conn.recv(spin_s)
                    self.idle = False
                    spin_s = SPIN_S if time.perf_counter() - idle_since < SPIN_S else 0.0
                except (EOFError, OSError):
                    return
            kind = message[0]
            if kind == "task":
                self.execute(*message[1:])
            elif kind == "actor_call":
                self.dispatch_call(*message[1:])
            elif kind == "actor_init":
                self.init_actor(*message[1:])
            elif kind == "reply":
                future = self.replies.pop(message[1], None)
                if future is not None:
                    future.set_result(message[2])
            elif kind == "cancel_call":
                self.cancel_call(message[1])
            # ("cancel_task", id) read here came after its task had finished: nothing to do
            elif kind == "exit":
                return
            if self.exit_requested:
                sys.exit(0)

    def execute(self, task_id, name, func_id, func_bytes, args, kwargs, return_ids, num_returns, gpu_ids,
                resources):
        """Run one task (the main thread of a pool worker)."""
        if not gpu_ids and "CUDA_VISIBLE_DEVICES" not in os.environ:  # the usual case: nothing to change
            self.run_function(task_id, name, func_id, func_bytes, args, kwargs, num_returns, gpu_ids, resources)
            return
        cuda_before = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        if gpu_ids:  # set before the function is even loaded, so CUDA libraries see only the assigned devices
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        try:
            self.run_function(task_id, name, func_id, func_bytes, args, kwargs, num_returns, gpu_ids, resources)
        finally:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            if cuda_before is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = cuda_before

    def run_function(self, task_id, name, func_id, func_bytes, args, kwargs, num_returns, gpu_ids, resources):
        if func_bytes is not None:
            self.functions[func_id] = unpickle_function(func_bytes)
        self.run(task_id, name, self.functions.get(func_id), args, kwargs, num_returns, gpu_ids, resources)

    def run(self, task_id, name, function, args, kwargs, num_returns, gpu_ids, resources):
        """Load the arguments, call the function, store what it returns, and report to the driver."""
        token = self.current.set((task_id, name, gpu_ids, resources))
        started = time.time()
        returns = error = None
        try:
            result = self.call(function, [self.load(a) for a in args], {k: self.load(v) for k, v in kwargs.items()})
            returns = self.store_returns(result, num_returns, name)
        except SystemExit as exit_request:
            if self.actor_id is not None:
                self.request_exit()
                return
            error = pack_error(RuntimeError(f"the task called sys.exit({exit_request.code})"), name)
        except BaseException as exception:  # noqa: B902 - KeyboardInterrupt is how cancel() stops a task
            error = pack_error(exception, name)
        ended = time.time()
        sys.stdout.flush()
        sys.stderr.flush()
        self.current.reset(token)
        if task_id in self.cancelled_calls:
            self.cancelled_calls.discard(task_id)
        self.send("done", task_id, returns, error, started, ended)
        self.running_calls.discard(task_id)

    def request_exit(self):
        """exit_actor() (or sys.exit()) in an actor method: no reply for that call (it fails with ActorDiedError,
        as in Ray); the main thread then exits normally, so atexit handlers run."""
        self.send("exiting")
        self.exit_requested = True

    def call(self, function, args, kwargs):
        if self.concurrent:
            return function(*args, **kwargs)
        self.cancel_pending = False
        self.calls += 1
        self.in_user_code = True
        try:
            if self.news_waiting:
                self.news_waiting = False
                self._read_cancel_news()
                self.raise_pending_cancel()
            return function(*args, **kwargs)
        finally:
            self.in_user_code = False

    # ---- actors -------------------------------------------------------------------------------------------
    def init_actor(self, task_id, actor_id, qualname, class_bytes, args, kwargs, gpu_ids, resources,
                   max_concurrency, is_async, name, namespace):
        self.actor_id, self.actor_name, self.namespace = actor_id, name, namespace
        self.qualname, self.class_name = qualname, qualname.rsplit(".", 1)[-1]
        class_name = self.class_name
        self.resources, self.gpus = resources, gpu_ids
        if gpu_ids:  # for the actor's whole life
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        else:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        cls = unpickle_function(class_bytes)

        def construct(*a, **k):
            self.actor = cls(*a, **k)

        self.run(task_id, f"{class_name}.__init__", construct, args, kwargs, 0, gpu_ids, resources)
        if is_async:
            import asyncio  # only async actors need it (importing it costs a worker 25 ms at start)

            self.concurrent = True
            self.loop = asyncio.new_event_loop()
            self.semaphore = asyncio.Semaphore(max_concurrency)
            threading.Thread(target=self.loop.run_forever, name="course_runtime-actor-loop", daemon=True).start()
        elif max_concurrency > 1:
            import concurrent.futures

            self.concurrent = True
            self.pool = concurrent.futures.ThreadPoolExecutor(max_concurrency, thread_name_prefix="actor")

    def dispatch_call(self, task_id, name, method_name, args, kwargs, num_returns):
        if method_name == "__ray_terminate__":
            if self.concurrent:  # let the calls already running finish first (a sync actor runs in order anyway)
                self.pending_terminate = (task_id, num_returns)
            else:
                self.terminate(task_id, num_returns)
            return
        if task_id in self.cancelled_calls:  # cancelled before it started
            self.cancelled_calls.discard(task_id)
            self.send("done", task_id, None, pack_error(KeyboardInterrupt(), name), time.time(), time.time())
            return
        method = getattr(self.actor, method_name)
        if self.concurrent:
            self.running_calls.add(task_id)
        if self.loop is not None:
            import asyncio

            future = asyncio.run_coroutine_threadsafe(
                self.run_async(task_id, name, method, args, kwargs, num_returns), self.loop)
            self.running_coroutines[task_id] = future
        elif self.pool is not None:
            self.pool.submit(self.run, task_id, name, method, args, kwargs, num_returns, self.gpus, self.resources)
        else:
            self.run(task_id, name, method, args, kwargs, num_returns, self.gpus, self.resources)

    async def run_async(self, task_id, name, method, args, kwargs, num_returns):
        async with self.semaphore:  # at most max_concurrency coroutines at once (Ray's default: 1000)
            token = self.current.set((task_id, name, self.gpus, self.resources))
            started = time.time()
            returns = error = None
            try:
                result = method(*[self.load(a) for a in args], **{k: self.load(v) for k, v in kwargs.items()})
                if inspect.isawaitable(result):
                    result = await result
                returns = self.store_returns(result, num_returns, name)
            except SystemExit:
                self.request_exit()
                return
            except BaseException as exception:  # noqa: B902 - CancelledError is how cancel() stops a coroutine
                if isinstance(exception, sys.modules["asyncio"].CancelledError):
                    exception = KeyboardInterrupt()
                error = pack_error(exception, name)
            self.current.reset(token)
            self.running_coroutines.pop(task_id, None)
            sys.stdout.flush()
            self.send("done", task_id, returns, error, started, time.time())
            self.running_calls.discard(task_id)

    def cancel_call(self, task_id):
        future = self.running_coroutines.get(task_id)
        if future is not None:
            future.cancel()
        else:
            self.cancelled_calls.add(task_id)  # skipped if not started; is_canceled() turns True if running

    def terminate(self, task_id, num_returns):
        """__ray_terminate__: exit like a normal program (atexit handlers run)."""
        self.send("exiting")
        self.send("done", task_id, [self.store_value(None, "")] * num_returns, None, time.time(), time.time())
        sys.stdout.flush()
        sys.exit(0)

    def store_returns(self, result, num_returns, name):
        if num_returns == 0:
            return []
        if inspect.isgenerator(result):
            result = list(result)
            if num_returns == 1 and len(result) == 1:
                result = result[0]
        if num_returns == 1:
            return [self.store_value(result, f"returned by {name}")]
        if not isinstance(result, (list, tuple)) or len(result) != num_returns:
            got = f"{len(result)} values" if isinstance(result, (list, tuple)) else f"a {type(result).__name__}"
            raise ValueError(f"Task '{name}' has num_returns={num_returns} but returned {got}: return a tuple or "
                             f"list of exactly {num_returns} values.")
        return [self.store_value(value, f"returned by {name}") for value in result]

    # ---- the object store, worker side --------------------------------------------------------------------
    def store_value(self, value, description):
        """Pickle a value for the store: (location, refs inside it, size)."""
        try:
            serialized = serialize(value)
        except Exception as error:
            raise TypeError(f"Could not serialize the value {description}: "
                            f"{describe_unpicklable(value, error)}.") from None
        return self.place(serialized, description), serialized.contained_refs, serialized.size

    def place(self, serialized, description):
        if serialized.size < INLINE_LIMIT:
            return ("v",) + serialized.inline()
        layout, size = serialized.layout()
        # The driver checks the memory budget first. Its reply must not be lost to a cancel: it names our segment.
        reply = self.request("alloc", size, description, interruptible=False)
        if reply[0] == "full":
            raise ObjectStoreFullError(reply[1])
        _, seg_id, path = reply
        try:
            self.raise_pending_cancel()
            mapping = map_for_writing(path, size)
            with memoryview(mapping) as memory:
                serialized.write_into(memory, layout)
            mapping.close()
        except BaseException:  # e.g. cancel()'s KeyboardInterrupt in a put: free the half-written segment now,
            self.send("abandon", seg_id)  # not when this worker exits
            raise
        return ("s", seg_id, layout)  # sealed: the driver makes it visible when this message arrives

    def put_serialized(self, serialized, description):
        object_id = new_id(random_task_id(), 1)
        self.send("put", object_id, self.place(serialized, description), serialized.contained_refs,
                  serialized.size, description)
        return object_id

    def load(self, location):
        kind = location[0]
        if kind == "v":
            return deserialize_inline(location[1], location[2])
        if kind == "s":
            return deserialize_from(map_for_reading(location[1], location[2]), location[3])
        raise ValueError(f"unknown location {kind!r}")

    # ---- the API inside a task (see api.py for the checks on arguments) -----------------------------------
    def submit_task(self, remote_function, args, kwargs, options):
        name = options.get("name") or remote_function.__name__
        args, kwargs, pins = pack_arguments(args, kwargs, name, self.put_serialized)
        func_id = remote_function._function_id
        func_bytes = None
        if func_id not in self.registered_functions:
            func_bytes = remote_function.pickled()
            self.registered_functions.add(func_id)
        task_id = random_task_id()
        refs = [ObjectRef(new_id(task_id, i + 1)) for i in range(options["num_returns"])]
        # Options may name exception classes defined in a notebook: cloudpickle carries them by value.
        self.send("submit", func_id, func_bytes, task_id, name, args, kwargs, pins, cloudpickle.dumps(options))
        if options["num_returns"] == 1:
            return refs[0]
        return refs or None

    def get_values(self, ids, timeout):
        reply = self.request("get", ids, timeout)
        if reply[0] == "values":
            return [self.load(location) for location in reply[1]]
        if reply[0] == "error":
            from .node import raise_stored_error
            raise_stored_error(pickle.loads(reply[1]))
        if reply[0] == "timeout":
            raise GetTimeoutError(f"Get timed out: some of {len(ids)} object(s) were not ready after {timeout} s.")
        raise KeyboardInterrupt  # "cancelled": this task was cancelled while it waited

    def wait_ids(self, ids, num_returns, timeout):
        reply = self.request("wait", ids, num_returns, timeout)
        if reply[0] == "cancelled":
            raise KeyboardInterrupt
        return reply[1]

    def put(self, value):
        task_name = self.task[1] if self.task else (self.class_name or "a worker")
        location, contained, size = self.store_value(value, f"put by {task_name}")
        object_id = new_id(random_task_id(), 1)
        ref = ObjectRef(object_id)  # created before sending, so the driver learns we hold it with the put
        self.send("put", object_id, location, contained, size, f"put by {task_name}")
        return ref

    def cancel(self, object_id, force, recursive):
        self.send("cancel", object_id, force, recursive)

    def future_for(self, ref):
        future, resolve = future_resolver(self, ref)
        threading.Thread(target=resolve, daemon=True).start()  # a worker has no IO thread to call it back
        return future

    def runtime_context(self):
        task_id, name, _, resources = self.task or (None, None, None, self.resources)
        handle = None
        if self.actor_id is not None:
            from .actor import ActorHandle, _method_table
            cls = type(self.actor)
            handle = ActorHandle(self.actor_id, self.qualname, _method_table(cls), False)
        return RuntimeContext(self.job_id, self.node_id, self.namespace, task_id=task_id, task_name=name,
                              assigned_resources=resources, worker_id=str(os.getpid()), actor_id=self.actor_id,
                              actor_name=self.actor_name, current_actor=handle,
                              canceled=lambda: self.cancel_pending or (task_id in self.cancelled_calls))

    def gpu_ids(self):
        return list(self.task[2]) if self.task else list(self.gpus)

    def create_actor(self, actor_class, args, kwargs, options):
        from .actor import ActorHandle
        args, kwargs, pins = pack_arguments(args, kwargs, actor_class.__name__, self.put_serialized)
        class_bytes = None
        if actor_class._class_id not in self.registered_functions:
            class_bytes = actor_class.pickled()
            self.registered_functions.add(actor_class._class_id)
        reply = self.request("create_actor", actor_class._class_id, class_bytes, actor_class._class_name,
                             actor_class._methods, actor_class._is_async, args, kwargs, pins,
                             cloudpickle.dumps(options))
        if reply[0] == "error":
            raise pickle.loads(reply[1])
        return ActorHandle(reply[1], actor_class._class_name, actor_class._methods, actor_class._is_async)

    def call_actor(self, handle, method, args, kwargs, options):
        name = options.get("name") or f"{handle._class_name.rsplit('.', 1)[-1]}.{method}"
        args, kwargs, pins = pack_arguments(args, kwargs, name, self.put_serialized)
        task_id = random_task_id()
        refs = [ObjectRef(new_id(task_id, i + 1)) for i in range(options["num_returns"])]
        self.send("actor_call", handle._actor_id, method, task_id, name, args, kwargs, pins,
                  cloudpickle.dumps(options))
        if options["num_returns"] == 1:
            return refs[0]
        return refs or None

    def kill_actor(self, actor_id, no_restart):
        self.send("kill", actor_id, no_restart)

    def get_actor(self, name, namespace=None):
        reply = self.request("get_actor", name, namespace)
        if reply[0] == "error":
            raise pickle.loads(reply[1])
        return reply[1]

    def cluster_resources(self):
        return self.request("query", "cluster_resources")

    def available_resources(self):
        return self.request("query", "available_resources")

    def nodes(self):
        return self.request("query", "nodes")

    def timeline(self):
        return self.request("query", "timeline")

    def flush_output(self):
        pass


def pack_error(exception, task_name):
    """The error to send back: a RayTaskError carrying the original exception and the remote traceback."""
    frames = [f for f in traceback.extract_tb(exception.__traceback__) if f.filename != __file__]  # user's only
    text = "".join(["Traceback (most recent call last):\n"] + traceback.format_list(frames) +
                   traceback.format_exception_only(type(exception), exception))
    cause = exception.cause if isinstance(exception, RayTaskError) else exception
    error = RayTaskError(task_name, text, cause, os.getpid())
    try:
        data = cloudpickle.dumps(error)
        pickle.loads(data)  # the driver must be able to rebuild it too
        return data
    except Exception:
        stand_in = UnserializableException(f"{type(cause).__name__}: {cause} (the original exception could not "
                                           f"be pickled)")
        return cloudpickle.dumps(RayTaskError(task_name, text, stand_in, os.getpid()))


class ForwardedStream(io.TextIOBase):
    """sys.stdout/sys.stderr of a worker: whole lines go to the driver, which prints them prefixed like Ray:
    `(task_name pid=1234) text`."""

    def __init__(self, client, name):
        self.client, self.name, self.pending, self.lock = client, name, [], threading.Lock()

    def write(self, text):
        with self.lock:
            self.pending.append(text)
            if "\n" in text:
                self._send(complete_lines_only=True)
        return len(text)

    def flush(self):
        if self.pending:  # checked without the lock first: it runs after every task, and is nearly always empty
            with self.lock:
                self._send(complete_lines_only=False)

    def _send(self, complete_lines_only):
        text = "".join(self.pending)
        rest = ""
        if complete_lines_only:
            cut = text.rfind("\n") + 1
            text, rest = text[:cut], text[cut:]
        self.pending = [rest] if rest else []
        if not text:
            return
        client = self.client
        task_name = client.class_name or (client.task[1] if client.task else "worker")
        prefix = f"({task_name} pid={os.getpid()}) "
        lines = text.splitlines(keepends=True)
        body = "".join(prefix + (line if line.endswith("\n") else line + "\n") for line in lines)
        try:
            self.client.send("log", self.name, body)
        except Exception:
            pass

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True
