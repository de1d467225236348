"""The options `@remote(...)` and `.options(...)` accept, checked the way Ray checks them.

Mirrors `ray._private.ray_option_utils`. Options are validated when they are given, so a typo fails at the
decorator, not later inside a worker. Options that only matter on a real cluster are accepted and have no effect.
"""
import inspect
import warnings

from . import runtime_env
from .scheduler import to_units

COMMON = {"num_cpus", "num_gpus", "resources", "memory", "name", "runtime_env", "scheduling_strategy",
          "accelerator_type", "label_selector", "fallback_strategy", "enable_task_events", "_metadata",
          "object_store_memory", "_labels"}
TASK_ONLY = {"num_returns", "max_retries", "retry_exceptions", "max_calls", "_generator_backpressure_num_objects"}
ACTOR_ONLY = {"max_restarts", "max_task_retries", "max_concurrency", "max_pending_calls", "namespace", "lifetime",
              "get_if_exists", "concurrency_groups", "allow_out_of_order_execution"}
TASK_OPTIONS = COMMON | TASK_ONLY
ACTOR_OPTIONS = COMMON | ACTOR_ONLY

TASK_DEFAULTS = {"num_cpus": 1, "num_gpus": 0, "resources": None, "memory": None, "num_returns": 1,
                 "max_retries": 3, "retry_exceptions": False, "name": None}


def validate(options, kind):
    """Check `options` for a "task" or an "actor"; raise ValueError naming the first bad one."""
    valid = TASK_OPTIONS if kind == "task" else ACTOR_OPTIONS
    what = "remote functions" if kind == "task" else "actors"
    for key, value in options.items():
        if key not in valid:
            raise ValueError(f"Invalid option keyword {key} for {what}. Valid ones are {sorted(valid)}.")
        check = _CHECKS.get(key)
        if check is not None and value is not None:
            check(key, value)
        if key == "runtime_env":  # checked, with its paths made absolute (a worker may run elsewhere)
            options[key] = runtime_env.check(value)
    if kind == "actor":
        if options.get("name") == "":
            raise ValueError("Actor name cannot be an empty string.")
        if options.get("get_if_exists") and not options.get("name"):
            raise ValueError("The actor name must be specified to use `get_if_exists`.")
    return options


def _amount(key, value):
    to_units(value, key)
    if key == "num_gpus" and value > 1 and value != int(value):
        raise ValueError(f"num_gpus={value}: requests above 1 GPU must be whole numbers.")


def _resources(key, value):
    if not isinstance(value, dict):
        raise TypeError(f"resources must be a dict of name -> amount, not {type(value).__name__}.")
    for name, amount in value.items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"Use the 'num_cpus' and 'num_gpus' keyword instead of '{name}' in 'resources'.")
        to_units(amount, f"resources[{name!r}]")


def _num_returns(key, value):
    if value == "dynamic":
        warnings.warn("num_returns='dynamic' is deprecated and will be removed in a future Ray release. Use "
                      "num_returns='streaming' instead.", DeprecationWarning, stacklevel=4)
    if value in ("streaming", "dynamic"):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'num_returns must be a whole number >= 0, "streaming" or "dynamic", not {value!r}.')


def _retries(key, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ValueError(f"{key} must be a whole number >= -1 (-1 means retry forever), not {value!r}.")


def _retry_exceptions(key, value):
    if isinstance(value, bool):
        return
    if not isinstance(value, (list, tuple)) or not all(inspect.isclass(t) and issubclass(t, BaseException)
                                                       for t in value):
        raise TypeError(f"retry_exceptions must be True, False or a list of exception classes, not {value!r}.")


def _positive_int(key, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a whole number >= 1, not {value!r}.")


def _scheduling_strategy(key, value):
    if isinstance(value, str):
        if value not in ("DEFAULT", "SPREAD"):
            raise ValueError(f'Invalid scheduling_strategy value {value}. Valid values are ["DEFAULT" | "SPREAD" | '
                             f'PlacementGroupSchedulingStrategy | NodeAffinitySchedulingStrategy]')
    elif not hasattr(value, "_placement"):  # the classes of util.scheduling_strategies
        raise TypeError(f"The type of keyword 'scheduling_strategy' must be (<class 'NoneType'>, <class 'str'>, "
                        f"PlacementGroupSchedulingStrategy, NodeAffinitySchedulingStrategy), but received type "
                        f"{type(value)}")


def _concurrency_groups(key, value):
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"concurrency_groups must be a dict of group name -> max concurrency, not {value!r}.")
    for name, size in value.items():
        _positive_int(f"concurrency_groups[{name!r}]", size)


def _lifetime(key, value):
    if value not in ("detached", "non_detached"):
        raise ValueError(f"lifetime must be None, 'detached' or 'non_detached', not {value!r}.")


_CHECKS = {"num_cpus": _amount, "num_gpus": _amount, "memory": _amount, "resources": _resources,
           "num_returns": _num_returns, "max_retries": _retries, "max_restarts": _retries,
           "max_task_retries": _retries, "retry_exceptions": _retry_exceptions,
           "_generator_backpressure_num_objects": _positive_int,
           "max_concurrency": _positive_int, "lifetime": _lifetime, "scheduling_strategy": _scheduling_strategy,
           "concurrency_groups": _concurrency_groups}


def resource_demand(options, default_cpus):
    """The resources a task or actor asks for, in scheduler units, e.g. {'CPU': 10000, 'GPU': 5000}."""
    num_cpus = options.get("num_cpus")
    demand = {"CPU": to_units(default_cpus if num_cpus is None else num_cpus, "num_cpus"),
              "GPU": to_units(options.get("num_gpus") or 0, "num_gpus"),
              "memory": to_units(options.get("memory") or 0, "memory")}
    for name, amount in (options.get("resources") or {}).items():
        demand[name] = to_units(amount, name)
    return {k: v for k, v in demand.items() if v}
