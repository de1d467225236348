"""A worker process: takes tasks from its pipe, runs them, stores what they return.

Mirrors Ray's worker process (`default_worker.py` and the executing half of the core worker, `_raylet.pyx`
execute_task). The driver starts it with one end of a socket pair; it sets itself up like the driver (Setup), then
loops: receive a task, load its arguments (zero-copy from shared memory for large ones), run the function, send back
the results (TaskDone): small ones inline, large ones written into a segment the driver allocated. Inside a task the
whole API works, through task_context.py. An actor's worker is dedicated to one instance (StartActor); a plain actor
runs calls one at a time in the main thread, in order; a threaded actor (max_concurrency > 1) hands them to a thread
pool and an async actor to an asyncio loop, while the main thread reads the pipe and routes replies.
"""
import inspect
import io
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback

import cloudpickle

from . import fast_paths, runtime_env, session
from .exceptions import RayTaskError, UnserializableException
from .protocol import (CallActor, CancelCall, CancelTask, Channel, Exit, Exiting, Log, Put, Ready, Reply, RunTask,
                       StartActor, TaskDone)
from .object_ref_generator import DynamicObjectRefGenerator
from .serialization import unpickle_function
from .task_context import TaskContext
from .task_spec import item_id

EXIT = "exit"  # a run that ended with exit_actor(): the actor ends, and that call gets no reply

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def main():
    conn = Channel(socket.socket(fileno=int(sys.argv[1])))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the whole group: the driver acts
    setup = conn.recv()
    sys.path[:] = setup.sys_path
    os.chdir(setup.cwd)
    _exit_when_driver_dies(setup.driver_pid)
    worker = Worker(TaskContext(conn, setup))
    session.enter_worker(worker.context)
    signal.signal(signal.SIGUSR1, worker.on_cancel_signal)
    sys.stdout, sys.stderr = ForwardedStream(worker.context, "stdout"), ForwardedStream(worker.context, "stderr")
    os.register_at_fork(after_in_child=_print_directly)
    worker.context.send(Ready())
    worker.serve()


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


class Worker:
    def __init__(self, context):
        self.context = context
        self.functions = {}  # function id -> function: this worker's function table
        self.idle = False  # the main thread is waiting in serve() for the next message
        self.news_waiting = False  # a cancel signal came between tasks: look for its news before the next one
        self.calls = 0  # tasks run so far (a delayed cancel checks it is still for the same task)
        self.exit_requested = False
        self.loop, self.pools, self.semaphores = None, {}, {}  # an async actor's loop; per concurrency group (None:
        # the default one), a threaded actor's threads or an async actor's limit
        self.running_coroutines = {}  # task id -> concurrent Future of an async actor's call
        self.running_calls = set()  # calls of a threaded or async actor still running
        self.pending_terminate = None  # __ray_terminate__ waiting for those calls to finish

    def serve(self):
        context, spin = self.context, fast_paths.spinner()
        handlers = {RunTask: self.run_task, StartActor: self.start_actor, CallActor: self.call_actor,
                    Reply: self.route_reply, CancelCall: self.cancel_call, CancelTask: lambda message: None}
        while True:
            if self.pending_terminate is not None and not self.running_calls:
                self.terminate(self.pending_terminate)
            if context.backlog:
                message = context.backlog.popleft()
            else:
                try:
                    if context.replies is not None and not context.conn.poll(0.05):
                        if self.exit_requested:  # a threaded/async actor looks now and then for an exit
                            sys.exit(0)
                        continue
                    self.idle = True
                    message = context.conn.recv(spin)
                    self.idle = False
                    if spin is not None:
                        spin.woke()
                except (EOFError, OSError):
                    return
            if type(message) is Exit:
                return
            handlers[type(message)](message)  # a CancelTask read here came after its task ended: nothing to do
            if self.exit_requested:
                sys.exit(0)

    def route_reply(self, message):
        future = self.context.replies.pop(message.request_id, None)
        if future is not None:
            future.set_result(message.answer)

    # ---- running: one path for tasks, actor calls, threaded and async ones --------------------------------
    def run_task(self, message):
        """A pool worker's task, in its runtime_env, undone afterwards. GPUs are set before the function is even
        loaded, so CUDA sees only its own."""
        if not message.gpu_ids and message.runtime_env is None and "CUDA_VISIBLE_DEVICES" not in os.environ:
            return self.run(message, self.function_of(message), message.gpu_ids, message.resources)  # nothing to set
        gpus = ",".join(map(str, message.gpu_ids)) or None  # None: no GPU, so CUDA must see none
        undo = runtime_env.enter(message.runtime_env, {"CUDA_VISIBLE_DEVICES": gpus})
        self.context.runtime_env = message.runtime_env
        try:
            self.run(message, self.function_of(message), message.gpu_ids, message.resources)
        finally:
            self.context.runtime_env = None
            runtime_env.leave(undo)

    def function_of(self, message):
        """The driver sends a function's pickle with its first task here; one handed back was kept (task_context)."""
        pickled = message.function or self.context.kept.pop(message.function_id, None)
        if pickled is not None:
            self.functions[message.function_id] = unpickle_function(pickled)
        return self.functions.get(message.function_id)

    def run(self, call, function, gpu_ids, resources):
        """`call` (a RunTask or CallActor) has the task's id, name, arguments and number of returns."""
        started, token = time.time(), self.context.current.set((call.task_id, call.name, gpu_ids, resources))
        try:
            load = self.context.load
            args, kwargs = [load(a) for a in call.args], {k: load(v) for k, v in call.kwargs.items()}
            if call.num_returns.__class__ is tuple:  # a streaming generator: cancel() must reach its items' code
                returns, failure = self.call(lambda: self.store_returns(function(*args, **kwargs), call), (), {}), None
            else:
                returns, failure = self.store_returns(self.call(function, args, kwargs), call), None
        except BaseException as exception:  # noqa: B902 - KeyboardInterrupt is how cancel() stops a task
            returns, failure = None, self.failure(exception, call.name)
        self.finish(call, started, token, returns, failure)

    async def run_async(self, call, method):
        async with self.semaphores[call.concurrency_group]:  # at most max_concurrency at once (Ray's default: 1000)
            context = self.context
            started, token = time.time(), context.current.set((call.task_id, call.name, context.gpus,
                                                               context.resources))
            try:
                load = context.load
                result = method(*[load(a) for a in call.args], **{k: load(v) for k, v in call.kwargs.items()})
                if inspect.isawaitable(result):
                    result = await result
                if inspect.isasyncgen(result) and call.num_returns.__class__ is tuple:  # items stream as they come
                    index = 0
                    async for item in result:
                        self.announce(call, index, item)
                        index += 1
                    result = ()
                elif inspect.isasyncgen(result):
                    result = [item async for item in result]
                returns, failure = self.store_returns(result, call), None
            except BaseException as exception:  # noqa: B902 - CancelledError is how cancel() stops a coroutine
                returns, failure = None, self.failure(exception, call.name)
            self.finish(call, started, token, returns, failure)

    def failure(self, exception, name):
        """The pickled error of a run that raised. Packed at once, inside `except`: the traceback holds the task's
        frames, and the refs in them must be dropped before TaskDone carries the ref-count news."""
        if isinstance(exception, SystemExit):
            if self.context.actor_id is not None:
                return EXIT  # exit_actor(): no reply for this call, as in Ray
            exception = RuntimeError(f"the task called sys.exit({exception.code})")
        elif type(exception).__name__ == "CancelledError":  # how cancel() stops an async actor's call
            exception = KeyboardInterrupt()
        return pack_error(exception, name)

    def finish(self, call, started, token, returns, error):
        """The end of every run (the one path): its TaskDone, with its results or its error."""
        context = self.context
        sys.stdout.flush()  # while the output's prefix can still name the task
        sys.stderr.flush()
        context.current.reset(token)
        if error is EXIT:
            return self.request_exit()
        self.running_coroutines.pop(call.task_id, None)
        context.cancelled_calls.discard(call.task_id)
        context.send(TaskDone(call.task_id, returns, error, started, time.time()))
        self.running_calls.discard(call.task_id)

    def call(self, function, args, kwargs):
        context = self.context
        if context.replies is not None:
            return function(*args, **kwargs)
        context.cancel_pending, context.in_user_code = False, True
        self.calls += 1
        try:
            if self.news_waiting:
                self.news_waiting = False
                context.read_cancel_news()
                context.raise_pending_cancel()
            return function(*args, **kwargs)
        finally:
            context.in_user_code = False

    def store_returns(self, result, call):
        num_returns, name = call.num_returns, call.name
        if num_returns.__class__ is tuple:  # ("streaming", backpressure): each item goes out as it comes
            for index, item in enumerate(result):
                self.announce(call, index, item)
            return [self.context.store_value(None, f"returned by {name}")]  # the completion object
        if num_returns == "dynamic":  # every item stored now; the one result lists their refs
            result, num_returns = DynamicObjectRefGenerator([self.context.put(item) for item in result]), 1
        if num_returns == 0:
            return []
        if inspect.isgenerator(result):
            result = list(result)
            if num_returns == 1 and len(result) == 1:
                result = result[0]
        if num_returns == 1:
            return [self.context.store_value(result, f"returned by {name}")]
        if not isinstance(result, (list, tuple)) or len(result) != num_returns:
            got = f"{len(result)} values" if isinstance(result, (list, tuple)) else f"a {type(result).__name__}"
            raise ValueError(f"Task '{name}' has num_returns={num_returns} but returned {got}: return a tuple or "
                             f"list of exactly {num_returns} values.")
        return [self.context.store_value(value, f"returned by {name}") for value in result]

    def announce(self, call, index, item):
        """A streaming generator's item: stored and sent at once, so that its consumer may take it now. With
        backpressure N, wait while N items are unread."""
        context, description = self.context, f"yielded by {call.name}"
        location, contained, size = context.store_value(item, description)
        context.send(Put(item_id(call.task_id, index), location, contained, size, description))
        unread_limit = call.num_returns[1] if call.num_returns.__class__ is tuple else 0
        if unread_limit > 0 and index + 2 - unread_limit > 0:
            context.wait_consumed(call.task_id, index + 2 - unread_limit)

    # ---- actors -------------------------------------------------------------------------------------------
    def start_actor(self, message):
        context = self.context
        context.actor_id, context.actor_name, context.namespace = message.actor_id, message.name, message.namespace
        context.qualname, context.class_name = message.qualname, message.qualname.rsplit(".", 1)[-1]
        context.resources, context.gpus = message.resources, message.gpu_ids
        context.runtime_env = message.runtime_env  # for the actor's whole life, as are its GPUs
        runtime_env.enter(message.runtime_env, {"CUDA_VISIBLE_DEVICES": ",".join(map(str, message.gpu_ids)) or None})
        cls = unpickle_function(message.cls)

        def construct(*args, **kwargs):
            context.actor = cls(*args, **kwargs)

        self.run(CallActor(message.task_id, f"{context.class_name}.__init__", "__init__", message.args, message.kwargs,
                           0, None), construct, message.gpu_ids, message.resources)
        groups = {None: message.max_concurrency, **(message.concurrency_groups or {})}
        if message.is_async:
            import asyncio  # only async actors need it (a worker that starts without it starts sooner)

            self.loop = context.loop = asyncio.new_event_loop()
            self.semaphores = {group: asyncio.Semaphore(size) for group, size in groups.items()}
            threading.Thread(target=self.loop.run_forever, name="course_runtime-actor-loop", daemon=True).start()
        elif message.max_concurrency > 1 or message.concurrency_groups:
            import concurrent.futures

            self.pools = {group: concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix=f"actor-{group}")
                          for group, size in groups.items()}
        if self.loop is not None or self.pools:
            context.replies = {}  # from now on the main thread only reads the pipe, and routes replies

    def call_actor(self, message):
        context = self.context
        if message.method == "__ray_terminate__":
            if context.replies is not None:  # let the calls already running finish first
                self.pending_terminate = message
            else:
                self.terminate(message)
            return
        group, known = message.concurrency_group, self.semaphores or self.pools or {None: 1}
        if message.task_id in context.cancelled_calls or group not in known:  # cancelled before it started
            context.cancelled_calls.discard(message.task_id)
            error = KeyboardInterrupt() if group in known else ValueError(
                f"{message.name}: the actor has no concurrency group {group!r}; it has {sorted(filter(None, known))}.")
            context.send(TaskDone(message.task_id, None, pack_error(error, message.name), time.time(), time.time()))
            return
        method = getattr(context.actor, message.method)
        if context.replies is not None:
            self.running_calls.add(message.task_id)
        if self.loop is not None:
            import asyncio

            self.running_coroutines[message.task_id] = asyncio.run_coroutine_threadsafe(
                self.run_async(message, method), self.loop)
        elif self.pools:
            self.pools[group].submit(self.run, message, method, context.gpus, context.resources)
        else:
            self.run(message, method, context.gpus, context.resources)

    def cancel_call(self, message):
        future = self.running_coroutines.get(message.task_id)
        if future is not None:
            future.cancel()
        else:
            self.context.cancelled_calls.add(message.task_id)  # skipped if not started; is_canceled() turns True

    def request_exit(self):
        """exit_actor() (or sys.exit()) in an actor method: no reply for that call (it fails with ActorDiedError,
        as in Ray); the main thread then exits normally, so atexit handlers run."""
        self.context.send(Exiting())
        self.exit_requested = True

    def terminate(self, message):
        """__ray_terminate__: exit like a normal program (atexit handlers run)."""
        self.context.send(Exiting())
        returns = [self.context.store_value(None, "")] * message.num_returns
        self.context.send(TaskDone(message.task_id, returns, None, time.time(), time.time()))
        sys.stdout.flush()
        sys.exit(0)

    # ---- cancel() -----------------------------------------------------------------------------------------
    def on_cancel_signal(self, signum, frame):
        """`cancel()` of the running task: raise KeyboardInterrupt in it, but never in the middle of pipe I/O.
        In a sync actor, cancel is cooperative instead: read the CancelCall so is_canceled() turns True."""
        context = self.context
        if context.actor_id is not None:
            if not context.in_runtime_call and not self.idle:  # idle: serve() reads the news itself, next
                context.read_cancel_news()
            return
        # The driver sent CancelTask before the signal: the task is cancelled only if that names the task running
        # now (the signal may land just after that task ended and the next queued one began). The request loop
        # reads such messages itself; otherwise read them here (only from inside user code: between tasks the main
        # thread may be in the middle of reading a message, and nothing is left to cancel anyway).
        if context.in_user_code and not context.request_lock.locked():
            context.read_cancel_news()
        elif not context.in_user_code:
            self.news_waiting = True  # e.g. the signal came before the task it names started: call() reads it
        if context.cancel_pending and context.in_user_code and not context.in_runtime_call:
            if frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
                # The task is in the runtime's own bookkeeping (an ObjectRef's __del__, a put between writing and
                # reporting): interrupted there, ref-count news would be lost. Let it finish; try again shortly.
                threading.Timer(0.005, self._cancel_again, (self.calls,)).start()
                return
            context.cancel_pending = False
            raise KeyboardInterrupt
        # Otherwise it stays pending: raise_pending_cancel() raises it as soon as the runtime code is done.

    def _cancel_again(self, calls):
        if self.calls == calls and self.context.in_user_code:  # still the task that was cancelled
            os.kill(os.getpid(), signal.SIGUSR1)


def pack_error(exception, task_name):
    """The error to send back: a RayTaskError carrying the original exception and the remote traceback."""
    frames = [f for f in traceback.extract_tb(exception.__traceback__) if f.filename != __file__]  # user's only
    text = "".join(["Traceback (most recent call last):\n"] + traceback.format_list(frames) +
                   traceback.format_exception_only(type(exception), exception))
    cause = exception.cause if isinstance(exception, RayTaskError) else exception
    try:
        data = cloudpickle.dumps(RayTaskError(task_name, text, cause, os.getpid()))
        pickle.loads(data)  # the driver must be able to rebuild it too
        return data
    except Exception:
        stand_in = UnserializableException(f"{type(cause).__name__}: {cause} (the original exception could not "
                                           f"be pickled)")
        return cloudpickle.dumps(RayTaskError(task_name, text, stand_in, os.getpid()))


class ForwardedStream(io.TextIOBase):
    """sys.stdout/sys.stderr of a worker: whole lines go to the driver, which prints them prefixed like Ray:
    `(task_name pid=1234) text`."""

    def __init__(self, context, name):
        self.context, self.name, self.pending, self.lock = context, name, [], threading.Lock()

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
        text, rest = "".join(self.pending), ""
        if complete_lines_only:
            cut = text.rfind("\n") + 1
            text, rest = text[:cut], text[cut:]
        self.pending = [rest] if rest else []
        if not text:
            return
        context = self.context
        prefix = f"({context.class_name or (context.task[1] if context.task else 'worker')} pid={os.getpid()}) "
        body = "".join(prefix + (line if line.endswith("\n") else line + "\n") for line in text.splitlines(True))
        try:
            context.send(Log(self.name, body))
        except Exception:
            pass

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True
