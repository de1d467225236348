"""A worker process: takes tasks from its pipe, runs them, stores what they return.

Mirrors Ray's worker process (`default_worker.py` and the executing half of the core worker). The driver starts it
with one end of a socket pair; it sets itself up like the driver (same sys.path and working directory), then loops:
receive a task, load its arguments (zero-copy from shared memory for large ones), run the function, and send back
the results, small ones inline, large ones written into a segment the driver allocated. Inside a task the whole API
works (`remote`, `get`, `put`, `wait`, ...): the WorkerClient below forwards each call to the driver.
"""
import inspect
import io
import itertools
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

import cloudpickle

from .exceptions import GetTimeoutError, ObjectStoreFullError, RayTaskError, UnserializableException
from .object_ref import LocalRefCounts, ObjectRef, new_id, random_task_id
from .object_store import map_for_reading, map_for_writing
from .remote_function import pack_arguments
from .runtime_context import RuntimeContext
from .serialization import INLINE_LIMIT, describe_unpicklable, deserialize_from, deserialize_inline, serialize


def main():
    conn = Connection(int(sys.argv[1]))
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
    client.send("ready")
    client.serve()


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
        self.task = None  # (task id, name, gpu ids, resources) of the running task
        self.in_user_code = self.in_runtime_call = self.cancel_pending = False

    # ---- talking to the driver ----------------------------------------------------------------------------
    def send(self, kind, *payload):
        with self.send_lock:
            held, released = self.local_refs.drain()  # ref-count news rides along with every message
            self.conn.send((kind, held, released) + payload)

    def request(self, kind, *payload):
        with self.request_lock:
            self.in_runtime_call = True
            try:
                request_id = next(self.request_ids)
                self.send(kind, request_id, *payload)
                while True:
                    message = self.conn.recv()
                    if message[0] == "reply" and message[1] == request_id:
                        return message[2]
                    if message[0] == "exit":
                        os._exit(0)
            except (EOFError, OSError):
                os._exit(1)  # the driver is gone
            finally:
                self.in_runtime_call = False
                if self.cancel_pending and self.in_user_code:
                    self.cancel_pending = False
                    raise KeyboardInterrupt

    def on_cancel_signal(self, signum, frame):
        """`cancel()` of the running task: raise KeyboardInterrupt in it, but never in the middle of pipe I/O."""
        if self.in_user_code and not self.in_runtime_call:
            raise KeyboardInterrupt
        self.cancel_pending = True

    # ---- running tasks ------------------------------------------------------------------------------------
    def serve(self):
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "task":
                self.execute(*message[1:])
            elif message[0] == "exit":
                return

    def execute(self, task_id, name, func_id, func_bytes, args, kwargs, return_ids, num_returns, gpu_ids,
                resources):
        self.cancel_pending = False
        self.task = (task_id, name, gpu_ids, resources)
        cuda_before = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        if gpu_ids:  # set before the function runs, so CUDA libraries see only the assigned devices
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        started = time.time()
        returns = error = None
        try:
            if func_bytes is not None:
                self.functions[func_id] = cloudpickle.loads(func_bytes)
            function = self.functions[func_id]
            call_args = [self.load(a) for a in args]
            call_kwargs = {k: self.load(v) for k, v in kwargs.items()}
            self.in_user_code = True
            try:
                result = function(*call_args, **call_kwargs)
            finally:
                self.in_user_code = False
            returns = self.store_returns(result, num_returns, name)
        except BaseException as exception:  # noqa: B902 - KeyboardInterrupt is how cancel() stops a task
            error = pack_error(exception, name)
        finally:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            if cuda_before is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = cuda_before
        ended = time.time()
        sys.stdout.flush()
        sys.stderr.flush()
        self.task = None
        self.send("done", task_id, returns, error, started, ended)

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
        reply = self.request("alloc", size, description)  # the driver checks the memory budget first
        if reply[0] == "full":
            raise ObjectStoreFullError(reply[1])
        _, seg_id, path = reply
        mapping = map_for_writing(path, size)
        with memoryview(mapping) as memory:
            serialized.write_into(memory, layout)
        mapping.close()
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
        return set(reply[1])

    def put(self, value):
        task_name = self.task[1] if self.task else "a worker"
        location, contained, size = self.store_value(value, f"put by {task_name}")
        object_id = new_id(random_task_id(), 1)
        ref = ObjectRef(object_id)  # created before sending, so the driver learns we hold it with the put
        self.send("put", object_id, location, contained, size, f"put by {task_name}")
        return ref

    def cancel(self, object_id, force, recursive):
        self.send("cancel", object_id, force, recursive)

    def future_for(self, ref):
        import concurrent.futures
        future = concurrent.futures.Future()

        def resolve():
            try:
                future.set_result(self.get_values([ref.hex()], None)[0])
            except BaseException as error:
                future.set_exception(error)

        threading.Thread(target=resolve, daemon=True).start()
        return future

    def runtime_context(self):
        task_id, name, _, resources = self.task or (None, None, None, {})
        return RuntimeContext(self.job_id, self.node_id, self.namespace, task_id=task_id, task_name=name,
                              assigned_resources=resources, worker_id=str(os.getpid()),
                              canceled=lambda: self.cancel_pending)

    def gpu_ids(self):
        return list(self.task[2]) if self.task else []

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
    tb = exception.__traceback__
    frames = traceback.format_exception(type(exception), exception, tb.tb_next if tb else None)
    cause = exception.cause if isinstance(exception, RayTaskError) else exception
    error = RayTaskError(task_name, "".join(frames), cause, os.getpid())
    try:
        data = cloudpickle.dumps(error)
        pickle.loads(data)  # the driver must be able to rebuild it too
        return data
    except Exception:
        stand_in = UnserializableException(f"{type(cause).__name__}: {cause} (the original exception could not "
                                           f"be pickled)")
        return cloudpickle.dumps(RayTaskError(task_name, "".join(frames), stand_in, os.getpid()))


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
        task_name = self.client.task[1] if self.client.task else "worker"
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
