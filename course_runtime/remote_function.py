"""`@remote` on a function: the RemoteFunction whose `.remote()` submits a task and returns ObjectRefs at once.

Mirrors `ray.remote_function`. The first step of a task's path: check the arguments against the function's
signature (so a wrong call fails here, not in a worker), build the task's spec (task_spec.py), and hand it to the
runtime of this process (session.py): the driver, or the task context inside a worker.
"""
import inspect

from . import fast_paths, options as opts, session
from .object_ref import random_hex
from .object_ref_generator import ObjectRefGenerator
from .runtime_env import merge as merge_runtime_env
from .serialization import check_function_size, pickle_function
from .task_spec import one_or_many, pack_arguments, submit_options, task_spec


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
        if inspect.isgeneratorfunction(function):  # as in Ray: a generator task streams its items by default
            self._default_options.setdefault("num_returns", "streaming")
        self._submit_options = None  # the defaults merged with these options, made at the first .remote()
        self._function_id = random_hex(16)  # the key of this function in each worker's function table
        self._pickled = None
        self.__name__, self.__qualname__ = function.__name__, function.__qualname__
        self.__module__, self.__doc__ = function.__module__, function.__doc__

    def __call__(self, *args, **kwargs):
        name = f"{self.__module__}.{self.__qualname__}"
        raise TypeError(f"Remote functions cannot be called directly. Instead of running '{name}()', "
                        f"try '{name}.remote()'.")

    def remote(self, *args, **kwargs):
        if self._submit_options is None:
            self._submit_options = submit_options(self._default_options)
        return self._remote(args, kwargs, self._default_options, self._submit_options)

    def options(self, **task_options):
        """Return a version of this function that submits with some options changed, e.g. num_cpus=2."""
        opts.validate(task_options, "task")
        if "max_calls" in task_options:
            raise ValueError("max_calls can only be set in @remote(...), not in .options().")
        merged = {**self._default_options, **task_options}
        return WithOptions(lambda args, kwargs: self._remote(args, kwargs, merged, submit_options(merged)),
                           f"{self!r}.options({task_options})")

    def _remote(self, args, kwargs, task_options, options):
        if not fast_paths.call_fits(self._arity, args, kwargs):
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{self.__qualname__}.remote(): {error}") from None
        name = options.get("name") or self.__name__
        args, kwargs, pins, to_store = pack_arguments(args, kwargs, name)
        runtime = session.current()
        env = merge_runtime_env(runtime.runtime_env, options.get("runtime_env"))
        spec = task_spec(self._function_id, name, args, kwargs, pins, options, env)
        refs = runtime.submit_task(spec, to_store, self.pickled)
        return ObjectRefGenerator(refs[0]) if spec.num_returns.__class__ is tuple else one_or_many(refs,
                                                                                                 spec.num_returns)

    def pickled(self):
        """The function by value, pickled once, to ship to each worker the first time it runs it."""
        if self._pickled is None:
            self._pickled = check_function_size(pickle_function(self._function),
                                                f"The remote function {self.__qualname__}")
        return self._pickled

    def __getstate__(self):  # a RemoteFunction used inside a task travels without its cached pickle
        return {**self.__dict__, "_pickled": None}

    def __repr__(self):
        return f"<RemoteFunction {self.__module__}.{self.__qualname__}>"


class WithOptions:
    """What `.options(...)` returns: something with a `.remote()` that uses those options."""

    def __init__(self, submit, description):
        self._submit, self._description = submit, description

    def remote(self, *args, **kwargs):
        return self._submit(args, kwargs)

    def __repr__(self):
        return self._description


def _plain_arity(signature):
    """(fewest, most) positional arguments for a signature of plain parameters, else None (see fast_paths)."""
    kinds = [p.kind for p in signature.parameters.values()]
    if any(k not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds):
        return None
    return sum(p.default is inspect.Parameter.empty for p in signature.parameters.values()), len(kinds)
