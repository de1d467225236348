"""`@remote` on a function: the RemoteFunction whose `.remote()` submits a task and returns ObjectRefs at once.

Mirrors `ray.remote_function`. This is the first step of a task's path: check the arguments against the function's
signature (so a wrong call fails here, not in a worker), then hand the call to the runtime (`node.submit_task` in the
driver, or the worker's client inside a task), which schedules it.
"""
import inspect
import sys

from . import options as opts
from .object_ref import ObjectRef, random_hex
from .serialization import INLINE_LIMIT, check_function_size, describe_unpicklable, pickle_function, serialize


class RemoteFunction:
    def __init__(self, function, task_options):
        if inspect.iscoroutinefunction(function):
            raise ValueError(f"'async def' functions cannot be remote tasks: {function.__qualname__} is a coroutine "
                             f"function. Make it a regular function, or put it in an actor (async actors run "
                             f"coroutines).")
        self._function = function
        self._default_options = opts.validate(dict(task_options), "task")
        self._signature = inspect.signature(function)
        self._arity = _plain_arity(self._signature)
        self._is_generator = inspect.isgeneratorfunction(function)
        self._submit_options = None  # the defaults merged with these options, made at the first .remote()
        self._function_id = random_hex(16)  # the key of this function in each worker's function table
        self._pickled = None
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__module__ = function.__module__
        self.__doc__ = function.__doc__

    def __call__(self, *args, **kwargs):
        name = f"{self.__module__}.{self.__qualname__}"
        raise TypeError(f"Remote functions cannot be called directly. Instead of running '{name}()', "
                        f"try '{name}.remote()'.")

    def remote(self, *args, **kwargs):
        if self._submit_options is None:
            self._submit_options = _submit_options(self._default_options)
        return self._remote(args, kwargs, self._default_options, self._submit_options)

    def options(self, **task_options):
        """Return a version of this function that submits with some options changed, e.g. num_cpus=2."""
        opts.validate(task_options, "task")
        if "max_calls" in task_options:
            raise ValueError("max_calls can only be set in @remote(...), not in .options().")
        merged = {**self._default_options, **task_options}
        function = self
        submit_options = []

        class _WithOptions:
            def remote(self, *args, **kwargs):
                if not submit_options:
                    submit_options.append(_submit_options(merged))
                return function._remote(args, kwargs, merged, submit_options[0])

            def __repr__(self):
                return f"{function!r}.options({task_options})"

        return _WithOptions()

    def _remote(self, args, kwargs, task_options, submit_options):
        arity = self._arity
        if kwargs or arity is None or not arity[0] <= len(args) <= arity[1]:  # the common case needs no bind()
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{self.__qualname__}.remote(): {error}") from None
        if self._is_generator and "num_returns" not in task_options:
            raise NotImplementedError(
                f"{self.__qualname__} is a generator function. Streaming generator tasks are not supported by the "
                f"course runtime yet: give num_returns=<how many values it yields>, return a list, or use real Ray.")
        return _api()._runtime().submit_task(self, args, kwargs, submit_options)

    def pickled(self):
        """The function by value, pickled once, to ship to each worker the first time it runs it."""
        if self._pickled is None:
            self._pickled = check_function_size(pickle_function(self._function),
                                                f"The remote function {self.__qualname__}")
        return self._pickled

    def __getstate__(self):  # a RemoteFunction used inside a task travels without its cached pickle
        state = self.__dict__.copy()
        state["_pickled"] = None
        return state

    def __repr__(self):
        return f"<RemoteFunction {self.__module__}.{self.__qualname__}>"


def _api():
    """The api module (imported late: it imports this one)."""
    return sys.modules[f"{__package__}.api"]


def _plain_arity(signature):
    """(fewest, most) positional arguments for a signature of plain parameters, else None. Checking a call's length
    against it is all `bind()` would do for such a function, at a fraction of the cost (this runs for every task)."""
    kinds = [p.kind for p in signature.parameters.values()]
    if any(k not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds):
        return None
    required = sum(p.default is inspect.Parameter.empty for p in signature.parameters.values())
    return required, len(kinds)


def _submit_options(task_options):
    """Every option a task needs, with its resource demand worked out once (not once per task)."""
    options = {**opts.TASK_DEFAULTS, **task_options}
    options["_demand"] = opts.resource_demand(options, 1)
    return options


def pack_arguments(args, kwargs, function_name, store_large):
    """Turn call arguments into what travels with the task.

    A top-level ObjectRef stays a reference ("r", id): the worker receives its *value*, once it exists. Any other
    argument is pickled now (so later changes by the caller don't leak into the task): small ones travel inside the
    task message ("v", ...), large ones are put in the object store first, exactly like `put`, and passed by
    reference. Returns (args, kwargs, ids the task must keep alive until it finishes).
    """
    pins = []

    def pack(value):
        if isinstance(value, ObjectRef):
            pins.append(value.hex())
            return ("r", value.hex())
        try:
            serialized = serialize(value)
        except Exception as error:
            raise TypeError(f"Could not serialize the argument {describe_unpicklable(value, error)}, for the task "
                            f"'{function_name}'. Arguments are pickled to reach the worker process: pass something "
                            f"picklable, or create the object inside the task.") from None
        pins.extend(serialized.contained_refs)  # refs nested in the argument stay alive while the task runs
        if serialized.size < INLINE_LIMIT:
            return ("v",) + serialized.inline()
        object_id = store_large(serialized, f"argument of {function_name}")
        pins.append(object_id)
        return ("r", object_id)

    packed_args = [pack(a) for a in args]
    packed_kwargs = {k: pack(v) for k, v in kwargs.items()}
    return packed_args, packed_kwargs, pins
