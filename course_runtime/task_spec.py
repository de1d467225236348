"""What a task is, before it runs: its spec, and how call arguments are packed to travel with it.

Mirrors Ray's TaskSpecification (`src/ray/common/task/task_spec.h`) and the argument handling of the core worker's
task submission. `pack_arguments` is pure: it says what travels inline, what must be stored first, and what is
already a reference; the caller (the driver, or a task inside a worker) stores what must be stored.
"""
import collections

from . import options as opts
from .object_ref import ObjectRef, new_id, random_task_id
from .protocol import ByRef, Inline
from .serialization import INLINE_LIMIT, describe_unpicklable, serialize

# kind: "task", "actor_create" or "actor_call"; demand: resource units held while it runs, e.g. {"CPU": 10000}
TaskSpec = collections.namedtuple("TaskSpec", "task_id name function_id args kwargs num_returns demand max_retries "
                                              "retry_exceptions kind actor_id method pins runtime_env "
                                              "placement concurrency_group", defaults=(None, None, None),
                                   module=__name__)
# schedule_demand: what a machine must have to host it; life_demand: what it holds while it lives
ActorSpec = collections.namedtuple("ActorSpec", "actor_id class_id qualname methods is_async args kwargs pins name "
                                                "namespace detached schedule_demand life_demand max_restarts "
                                                "max_task_retries max_concurrency max_pending_calls get_if_exists "
                                                "runtime_env placement concurrency_groups",
                                   module=__name__)


def return_ids(spec):
    """Object ids are the task's id plus a 4-byte index, as in Ray. A generator task has one: the "completion"
    object of a streaming one (its items follow, from index 2), or the DynamicObjectRefGenerator of a dynamic one."""
    count = spec.num_returns
    return [new_id(spec.task_id, i + 1) for i in range(count if count.__class__ is int else 1)]


def item_id(task_id, index):
    """The id of a streaming generator's item `index` (0, 1, ...)."""
    return new_id(task_id, index + 2)


def returns_of(num_returns, backpressure=None):
    """num_returns as a spec carries it: a number, "dynamic", or ("streaming", how many items may wait unread)."""
    return ("streaming", backpressure or 0) if num_returns == "streaming" else num_returns


def one_or_many(refs, num_returns):
    """What `.remote()` returns: one ref, a list of them, or None for num_returns=0."""
    return refs[0] if num_returns == 1 or num_returns == "dynamic" else (refs or None)


def pack_arguments(args, kwargs, function_name):
    """Turn call arguments into what travels with the task: (args, kwargs, pins, to_store).

    A top-level ObjectRef stays a reference: the task receives its *value*, once it exists. Any other argument is
    pickled now (so later changes by the caller don't leak into the task): small ones travel inline, large ones
    get an object id and go into `to_store` [(id, SerializedValue)], for the caller to store, like `put`, before
    it submits. `pins` are the ids the task keeps alive until it finishes.

    >>> import course_runtime as ray
    >>> args, kwargs, pins, to_store = pack_arguments((1, ObjectRef("ab" * 28), bytes(200_000)), {}, "f")
    >>> [type(a).__name__ for a in args], len(pins), len(to_store)
    (['Inline', 'ByRef', 'ByRef'], 2, 1)
    """
    pins, to_store = [], []

    def pack(value):
        if isinstance(value, ObjectRef):
            pins.append(value.hex())
            return ByRef(value.hex())
        try:
            serialized = serialize(value)
        except Exception as error:
            raise TypeError(f"Could not serialize the argument {describe_unpicklable(value, error)}, for the task "
                            f"'{function_name}'. Arguments are pickled to reach the worker process: pass something "
                            f"picklable, or create the object inside the task.") from None
        pins.extend(serialized.contained_refs)  # refs nested in the argument stay alive while the task runs
        if serialized.size < INLINE_LIMIT:
            return Inline(*serialized.inline())
        object_id = new_id(random_task_id(), 1)
        to_store.append((object_id, serialized))
        pins.append(object_id)
        return ByRef(object_id)

    return [pack(a) for a in args], {k: pack(v) for k, v in kwargs.items()}, pins, to_store


def submit_options(task_options):
    """Every option a task needs, with its resource demand worked out once (not once per task)."""
    options = {**opts.TASK_DEFAULTS, **task_options}
    options["_demand"] = opts.resource_demand(options, 1)
    return options


def task_spec(function_id, name, args, kwargs, pins, options, runtime_env):
    returns = returns_of(options["num_returns"], options.get("_generator_backpressure_num_objects"))
    return TaskSpec(random_task_id(), name, function_id, args, kwargs, returns, options["_demand"],
                    options["max_retries"], options["retry_exceptions"], "task", None, None, pins, runtime_env,
                    placement(options.get("scheduling_strategy")))


def placement(strategy):
    """`scheduling_strategy` as plain data for the raylet: None for "DEFAULT" and "SPREAD" (the same on one
    machine), else what the strategy object says, e.g. ("node", node_id, soft)."""
    return None if strategy is None or isinstance(strategy, str) else strategy._placement()


def call_spec(actor_id, method, name, args, kwargs, pins, num_returns, concurrency_group=None):
    """An actor call: no resources of its own (the actor holds them), retried as the actor says (gcs.py)."""
    return TaskSpec(random_task_id(), name, None, args, kwargs, returns_of(num_returns), {}, 0, False, "actor_call",
                    actor_id, method, pins, concurrency_group=concurrency_group)


def actor_spec(actor_id, actor_class, args, kwargs, pins, options, namespace, runtime_env):
    # Ray's defaults: a plain actor needs a machine with 1 CPU but takes none; an actor that asks for other
    # resources (GPUs, custom, memory) and not for CPUs holds 1 CPU for its whole life.
    asks_other = any(options.get(k) for k in ("num_gpus", "resources", "memory"))
    life_cpus = options["num_cpus"] if options.get("num_cpus") is not None else (1 if asks_other else 0)
    return ActorSpec(
        actor_id, actor_class._class_id, actor_class._class_name, actor_class._methods, actor_class._is_async,
        args, kwargs, pins, options.get("name"), options.get("namespace") or namespace,
        options.get("lifetime") == "detached", opts.resource_demand(options, 1),
        opts.resource_demand({**options, "num_cpus": life_cpus}, 0), options.get("max_restarts") or 0,
        options.get("max_task_retries") or 0,
        options.get("max_concurrency") or (1000 if actor_class._is_async else 1),
        options.get("max_pending_calls") or -1, bool(options.get("get_if_exists")), runtime_env,
        placement(options.get("scheduling_strategy")), options.get("concurrency_groups") or None)
