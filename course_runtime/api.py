"""The public API: init, shutdown, remote, get, put, wait, cancel, and what code can ask about the machine.

Mirrors `ray/_private/worker.py`, where Ray defines these functions. Each call checks its arguments the way Ray
does (same errors, same wording where it matters), then hands the work to the runtime of *this* process
(session.py): the driver's (driver.py), or the task context inside a worker (task_context.py).
"""
import atexit
import inspect
import json
import operator

from . import options as opts, session
from .actor import ActorClass, ActorHandle, _method_table
from .object_ref import ObjectRef
from .object_ref_generator import ObjectRefGenerator, wait_with_generators
from .remote_function import RemoteFunction
from .runtime_env import check as check_runtime_env

# init() arguments that only mean something on a real Ray cluster: accepted, and ignored without noise.
RAY_ONLY_INIT_OPTIONS = {
    "include_dashboard", "dashboard_host", "dashboard_port", "job_config", "configure_logging", "logging_level",
    "logging_format", "logging_config", "log_to_driver", "storage", "labels", "enable_resource_isolation",
    "system_reserved_cpu", "system_reserved_memory", "cgroup_path", "_system_config", "_temp_dir", "_node_ip_address",
    "_enable_object_reconstruction", "_plasma_directory", "_metrics_export_port", "_tracing_startup_hook",
    "_redis_password", "_memory", "_driver_object_store_memory", "_skip_env_hook", "_node_name",
}


class RuntimeInfo:
    """What init() returns (Ray's RayContext): address information, and `with init(): ...` support."""

    def __init__(self, driver):
        raylet = driver.raylet
        self.address_info = {"node_ip_address": "127.0.0.1", "node_id": raylet.node_id, "address": "local",
                             "session_dir": None, "webui_url": None}
        self.dashboard_url = None
        self._description = (f"course_runtime: {raylet.num_cpus:g} CPUs, {len(raylet.resources.gpu_free)} GPUs, "
                             f"{raylet.store.capacity / 2**20:.0f} MiB object store, {len(raylet.pool.workers)} "
                             f"workers")

    def __getitem__(self, key):
        return self.address_info[key]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()

    def disconnect(self):
        shutdown()

    def __repr__(self):
        return self._description


def init(address=None, *, num_cpus=None, num_gpus=None, resources=None, object_store_memory=None, local_mode=False,
         ignore_reinit_error=False, namespace=None, runtime_env=None, **kwargs):
    """Start the runtime: worker processes, the object store and the scheduler. Returns at once; workers finish
    starting in the background (tasks submitted meanwhile wait for them)."""
    with session.lock:
        if is_initialized():
            if ignore_reinit_error:
                return RuntimeInfo(session.driver()) if session.driver() is not None else None
            raise RuntimeError("Maybe you called ray.init twice by accident? This error can be suppressed by "
                               "passing in 'ignore_reinit_error=True' or by calling 'ray.shutdown()' prior to "
                               "'ray.init()'.")
        if local_mode:
            raise RuntimeError("local_mode is no longer supported (as in Ray 2.60). Remove local_mode=True.")
        unknown = sorted(k for k in kwargs if k not in RAY_ONLY_INIT_OPTIONS)
        if unknown:
            raise RuntimeError(f"Unknown keyword argument(s): {', '.join(unknown)}")
        if address not in (None, "local", "auto"):
            raise ValueError(f"init(address={address!r}): the course runtime runs on this machine only. To use a "
                             f"Ray cluster, install Ray and set COURSE_BACKEND=ray (and RAY_ADDRESS).")
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float))
                                     or num_cpus < 0):
            raise ValueError(f"init(num_cpus={num_cpus!r}): give a number >= 0.")
        if object_store_memory is not None and (not isinstance(object_store_memory, int) or object_store_memory <= 0):
            raise ValueError(f"init(object_store_memory={object_store_memory!r}): give a number of bytes > 0.")
        runtime_env = check_runtime_env(runtime_env, job=True)  # the job's: every task and actor starts from it
        return RuntimeInfo(session.start_driver(num_cpus, num_gpus, resources, object_store_memory, namespace,
                                                runtime_env))


def shutdown(_exiting_interpreter=False):
    """Stop the workers and free every object. Safe to call twice; init() may be called again afterwards."""
    session.stop_driver()


def is_initialized():
    return session.driver() is not None or session.in_task() is not None


atexit.register(shutdown)


# ---- @remote ----------------------------------------------------------------------------------------------
def remote(*args, **kwargs):
    """Turn a function into a remote function (tasks) or a class into an actor class.

    >>> import course_runtime as ray
    >>> @ray.remote
    ... def square(x):
    ...     return x * x
    >>> ray.get([square.remote(i) for i in range(4)])
    [0, 1, 4, 9]
    """
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _make_remote(args[0], {})
    assert len(args) == 0 and len(kwargs) > 0, (
        "The @remote decorator must be applied either with no arguments and no parentheses, for example "
        "'@ray.remote', or it must be applied using some of the arguments, for example '@ray.remote(num_gpus=1)'.")
    return lambda function_or_class: _make_remote(function_or_class, kwargs)


def _make_remote(function_or_class, options):
    if inspect.isclass(function_or_class):
        return ActorClass(function_or_class, options)
    if inspect.isfunction(function_or_class) or inspect.isbuiltin(function_or_class) or callable(function_or_class):
        return RemoteFunction(function_or_class, options)
    raise TypeError("The @ray.remote decorator must be applied to either a function or a class.")


def method(*args, **kwargs):
    """Options for one actor method, e.g. `@ray.method(num_returns=2)`."""
    valid = {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions", "enable_task_events",
             "tensor_transport", "_generator_backpressure_num_objects"}
    assert len(args) == 0, "The @ray.method decorator must be applied using keyword arguments, e.g. num_returns=2."
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"Invalid option keyword {key} for actor methods. Valid ones are {sorted(valid)}.")
    if "num_returns" in kwargs:
        opts.validate({"num_returns": kwargs["num_returns"]}, "task")

    def annotate(function):
        function.__ray_method_options__ = dict(kwargs)
        return function

    return annotate


# ---- objects ----------------------------------------------------------------------------------------------
def get(object_refs, *, timeout=None):
    """Wait for the values of one ObjectRef or a list of them (the list keeps its order). Raises the task's error
    if it failed, and GetTimeoutError if `timeout` seconds pass first."""
    _check_timeout(timeout)
    if isinstance(object_refs, ObjectRef):
        return session.current().get_values([object_refs.hex()], timeout)[0]
    if not isinstance(object_refs, list):
        raise ValueError(f"Invalid type of object refs, {type(object_refs)}, is given. 'object_refs' must either "
                         f"be an ObjectRef or a list of ObjectRefs.")
    for ref in object_refs:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"Attempting to call `get` on the value {ref!r}, which is not an ray.ObjectRef.")
    return session.current().get_values([ref.hex() for ref in object_refs], timeout)


def put(value, *, _owner=None):
    """Store a value in the object store once; pass the returned ref to as many tasks as you like."""
    if isinstance(value, ObjectRef):
        raise TypeError("Calling 'put' on an ray.ObjectRef is not allowed. If you really want to do this, you can "
                        "wrap the ray.ObjectRef in a list and call 'put' on it.")
    return session.current().put(value)


_ID_OF = operator.attrgetter("_id")


def wait(ray_waitables, *, num_returns=1, timeout=None, fetch_local=True):
    """Split refs into (ready, not_ready) once `num_returns` are ready or `timeout` seconds pass. Both lists keep
    the input order."""
    if isinstance(ray_waitables, ObjectRef):
        raise TypeError("wait() expected a list of ray.ObjectRef, got a single ray.ObjectRef "
                        f"{ray_waitables!r}: wrap it in a list.")
    if not isinstance(ray_waitables, list):
        raise TypeError(f"wait() expected a list of ray.ObjectRef, got {type(ray_waitables)}.")
    _check_timeout(timeout)
    # A wait() loop calls this once per result with the refs still pending, so every step below is one pass at C
    # speed (map, set) rather than a Python loop: 10,000 refs cost about a millisecond.
    kinds = set(map(type, ray_waitables))
    if ObjectRefGenerator in kinds and kinds <= {ObjectRef, ObjectRefGenerator}:
        _check_num_returns(num_returns, ray_waitables)
        return wait_with_generators(ray_waitables, num_returns, timeout, session.current().wait_ids)
    if not kinds <= {ObjectRef}:
        odd = next(r for r in ray_waitables if not isinstance(r, ObjectRef))
        raise TypeError(f"wait() expected a list of ray.ObjectRef, got list containing {type(odd)}.")
    ids = list(map(_ID_OF, ray_waitables))
    if len(set(ids)) != len(ids):
        raise ValueError("Wait requires a list of unique ray_waitables.")
    if not ray_waitables:
        return [], []
    _check_num_returns(num_returns, ray_waitables)
    positions = session.current().wait_ids(ids, num_returns, timeout)  # of the ready ones, in order
    ready = [ray_waitables[p] for p in positions]
    not_ready, start = [], 0
    for p in positions:  # the rest, copied in slices
        not_ready += ray_waitables[start:p]
        start = p + 1
    not_ready += ray_waitables[start:]
    return ready, not_ready


def _check_num_returns(num_returns, ray_waitables):
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns!r}.")
    if num_returns > len(ray_waitables):
        raise ValueError(f"num_returns cannot be greater than the number of ray_waitables provided: "
                         f"{num_returns} > {len(ray_waitables)}.")


def cancel(ray_waitable, *, force=False, recursive=True):
    """Cancel the task that produces this ref: dropped if queued, interrupted (KeyboardInterrupt) if running, its
    process killed if force=True. `get` on the ref then raises TaskCancelledError."""
    if isinstance(ray_waitable, ObjectRefGenerator):  # a generator task: cancel it through its completion object
        ray_waitable = ray_waitable.completed()
    if not isinstance(ray_waitable, ObjectRef):
        raise TypeError(f"ray.cancel() only supported for object refs. For actors, try ray.kill(). Got: "
                        f"{type(ray_waitable)}.")
    session.current().cancel(ray_waitable.hex(), force, recursive)


def kill(actor, *, no_restart=True):
    """End an actor at once (its process is killed: atexit handlers do not run). Calls to it then raise
    ActorDiedError; with no_restart=False it restarts if it has max_restarts left."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. For tasks, try ray.cancel(). Got: {type(actor)}.")
    session.current().kill_actor(actor._actor_id, no_restart)


def get_actor(name, namespace=None):
    """The handle of the named actor; ValueError if there is none with that name."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"Please supply a non-empty string name to get_actor, not {name!r}.")
    return ActorHandle(*session.current().get_actor(name, namespace))


def _check_timeout(timeout):
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"'timeout' must be a non-negative number or None, not {timeout!r}.")


# ---- what code can ask ------------------------------------------------------------------------------------
def get_gpu_ids():
    """The GPU ids assigned to the running task or actor ([] on the driver and in CPU-only tasks)."""
    return session.current().gpu_ids()


def get_runtime_context():
    context = session.current().runtime_context()
    if context._current_actor is not None:  # (id, class name, class): a handle to the actor running this code
        actor_id, qualname, cls = context._current_actor
        context._current_actor = ActorHandle(actor_id, qualname, _method_table(cls), False)
    return context


def cluster_resources():
    return session.current().query("cluster_resources")


def available_resources():
    return session.current().query("available_resources")


def nodes():
    return session.current().query("nodes")


def timeline(filename=None):
    """Every finished task as Chrome-trace events (open the file in chrome://tracing or Perfetto, or draw it
    inline with course_runtime.viz.plot_timeline)."""
    events = session.current().query("timeline")
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None
