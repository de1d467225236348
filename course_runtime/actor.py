"""`@remote` on a class: ActorClass, the ActorHandle that `.remote()` returns, and its ActorMethods.

Mirrors `ray.actor`. An actor is a dedicated worker process holding one instance of the class; a handle is a
picklable address for it. Calling `handle.method.remote(...)` builds a call's spec (task_spec.py), returns ObjectRefs
at once, and the runtime delivers calls to the actor's process in the order they were made (gcs.py in the driver,
worker.py in the actor's process).
"""
import inspect

from . import options as opts, serialization, session
from .object_ref import _events, random_hex
from .object_ref_generator import ObjectRefGenerator
from .remote_function import WithOptions
from .runtime_env import merge as merge_runtime_env
from .serialization import check_function_size, pickle_function
from .task_spec import actor_spec, call_spec, one_or_many, pack_arguments


def _method_table(cls):
    """{method name: (num_returns, signature, concurrency group)} for every method a handle may call."""
    table = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name not in ("__call__",):
            continue
        function = member.__func__ if inspect.ismethod(member) else member
        if not callable(function):
            continue
        method_options = getattr(function, "__ray_method_options__", {})
        try:
            if isinstance(inspect.getattr_static(cls, name), (staticmethod, classmethod)):
                signature = inspect.signature(member)  # nothing to drop, or `cls` already bound
            else:
                signature = inspect.signature(function)
                signature = signature.replace(parameters=list(signature.parameters.values())[1:])  # self
        except (TypeError, ValueError):
            signature = None
        streams = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)  # Ray's default
        table[name] = (method_options.get("num_returns", "streaming" if streams else 1), signature,
                       method_options.get("concurrency_group"))
    return table


class ActorClass:
    def __init__(self, cls, actor_options):
        self._cls = cls
        self._default_options = opts.validate(dict(actor_options), "actor")
        self._class_id = random_hex(16)
        self._pickled = None
        self._methods = _method_table(cls)
        self._is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                             for _, m in inspect.getmembers(cls, inspect.isfunction))
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self.__qualname__}()', use "
                        f"'{self.__qualname__}.remote()'.")

    def __mro_entries__(self, bases):  # `class B(MyActor):` lands here
        raise TypeError("Inheriting from actor classes is not currently supported. You can instead inherit from "
                        "the original (undecorated) class and apply @remote to the subclass.")

    def remote(self, *args, **kwargs):
        return self._remote(args, kwargs, self._default_options)

    def options(self, **actor_options):
        """A version of this actor class that creates actors with some options changed, e.g. name="counter"."""
        opts.validate(actor_options, "actor")
        merged = {**self._default_options, **actor_options}
        return WithOptions(lambda args, kwargs: self._remote(args, kwargs, merged),
                           f"{self!r}.options({actor_options})")

    def _remote(self, args, kwargs, actor_options):
        try:
            inspect.signature(self._cls).bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.__name__}.remote(): {error}") from None
        except ValueError:
            pass  # no signature to check (e.g. a class with a C-level constructor)
        groups = actor_options.get("concurrency_groups") or {}
        for method, (_, _, group) in self._methods.items():
            if group is not None and group not in groups:
                raise ValueError(f"{self.__name__}.{method} is in concurrency group {group!r}, which the actor does "
                                 f"not declare: give @ray.remote(concurrency_groups={{{group!r}: N, ...}}).")
        args, kwargs, pins, to_store = pack_arguments(args, kwargs, self.__name__)
        runtime = session.current()
        env = merge_runtime_env(runtime.runtime_env, actor_options.get("runtime_env"))
        spec = actor_spec(random_hex(16), self, args, kwargs, pins, actor_options, runtime.namespace, env)
        return ActorHandle(*runtime.create_actor(spec, to_store, self.pickled))

    @property
    def _class_name(self):
        return self.__qualname__  # as Ray names actors: Actor(Outer.<locals>.Inner, ...) for a nested class

    def pickled(self):
        if self._pickled is None:
            self._pickled = check_function_size(pickle_function(self._cls), f"The actor class {self.__qualname__}")
        return self._pickled

    def __getstate__(self):
        return {**self.__dict__, "_pickled": None}

    def __repr__(self):
        return f"<ActorClass {self.__module__}.{self.__qualname__}>"


class ActorHandle:
    """The address of one actor. Handles are counted like ObjectRefs: an unnamed, non-detached actor ends once no
    handle to it remains anywhere."""

    def __init__(self, actor_id, class_name, methods, is_async):
        self._actor_id, self._class_name, self._methods, self._is_async = actor_id, class_name, methods, is_async
        _events.append((actor_id, 1))

    def __del__(self):
        try:
            _events.append((self._actor_id, -1))
        except Exception:
            pass

    def __getattr__(self, name):  # only called for names that are not attributes: method names
        methods = self.__dict__.get("_methods")
        if methods is None:
            raise AttributeError(name)
        if name == "__ray_terminate__":
            return ActorMethod(self, name, 1, None)
        if name not in methods:
            raise AttributeError(f"'{self._class_name}' actor has no method '{name}'.")
        num_returns, signature, group = methods[name]
        return ActorMethod(self, name, num_returns, signature, {"concurrency_group": group})

    def __reduce__(self):
        serialization.note_contained_ref(self._actor_id)  # a value that holds a handle keeps its actor alive
        return (ActorHandle, (self._actor_id, self._class_name, self._methods, self._is_async))

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self):
        return hash(self._actor_id)

    def __repr__(self):
        return f"Actor({self._class_name}, {self._actor_id})"


class ActorMethod:
    def __init__(self, handle, name, num_returns, signature, method_options=None):
        self._handle, self._name, self._signature = handle, name, signature
        self._options = {"num_returns": num_returns, **(method_options or {})}

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of running 'object.{self._name}()', try "
                        f"'object.{self._name}.remote()'.")

    def options(self, **method_options):
        valid = {"num_returns", "name", "max_task_retries", "retry_exceptions", "concurrency_group",
                 "enable_task_events"}
        for key in method_options:
            if key not in valid:
                raise ValueError(f"Invalid option keyword {key} for actor methods. Valid ones are {sorted(valid)}.")
        if "num_returns" in method_options:
            opts.validate({"num_returns": method_options["num_returns"]}, "task")
        return ActorMethod(self._handle, self._name, self._options["num_returns"], self._signature,
                           {**self._options, **method_options})

    def remote(self, *args, **kwargs):
        if self._signature is not None:
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{self._handle._class_name}.{self._name}.remote(): {error}") from None
        handle, options = self._handle, self._options
        name = options.get("name") or f"{handle._class_name.rsplit('.', 1)[-1]}.{self._name}"
        args, kwargs, pins, to_store = pack_arguments(args, kwargs, name)
        spec = call_spec(handle._actor_id, self._name, name, args, kwargs, pins, options["num_returns"],
                         options.get("concurrency_group"))
        refs = session.current().submit_task(spec, to_store, None)
        return ObjectRefGenerator(refs[0]) if spec.num_returns.__class__ is tuple else one_or_many(refs,
                                                                                                 spec.num_returns)


def exit_actor():
    """End the current actor gracefully from inside one of its methods (atexit handlers run)."""
    context = session.in_task()
    if context is None or context.actor is None:
        raise TypeError("exit_actor() can only be called inside an actor.")
    raise SystemExit(0)
