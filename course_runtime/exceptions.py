"""The errors a Ray program can see, with Ray's names and class hierarchy.

Mirrors `ray.exceptions`. The one piece of machinery here is RayTaskError.as_instanceof_cause(): an error raised
inside a task comes back to the caller as a class that is *both* a RayTaskError and the original type, so
`except ValueError:` around `get` works exactly as it would around a local call.
"""
import copy


class RayError(Exception):
    """Base class of every error the runtime raises on its own behalf."""


class RaySystemError(RayError):
    """The runtime itself failed (not the user's code)."""


class RayTaskError(RayError):
    """A task or actor method raised; `cause` is the original exception, `traceback_str` its remote traceback."""

    def __init__(self, function_name, traceback_str, cause, pid=None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        Exception.__init__(self, self._message())  # not super(): in a dual class, the next base is the cause's

    def _message(self):
        where = f" (pid={self.pid})" if self.pid is not None else ""
        return f"ray::{self.function_name}(){where}\n{self.traceback_str.rstrip()}"

    def __str__(self):
        return self._message()

    def __reduce__(self):
        return (RayTaskError, (self.function_name, self.traceback_str, self.cause, self.pid))

    def as_instanceof_cause(self):
        """Return an error that is an instance of both RayTaskError and type(self.cause)."""
        cause_cls = type(self.cause)
        if issubclass(cause_cls, RayTaskError):
            return self
        try:
            dual = _dual_class(cause_cls)
            error = dual.__new__(dual)
            error.__dict__.update(getattr(self.cause, "__dict__", {}))  # custom attributes survive
            RayTaskError.__init__(error, self.function_name, self.traceback_str, self.cause, self.pid)
            error.args = (self.cause,)
            return error
        except TypeError:  # the cause's class can't be subclassed, or wants other constructor arguments
            return self


_dual_classes = {}


def _dual_class(cause_cls):
    """Create (once per cause class) the class `RayTaskError(<cause>)`."""
    if cause_cls not in _dual_classes:

        def __init__(self, cause):  # what pickle/copy would call
            RayTaskError.__init__(self, "unknown", "", cause)

        def __getattr__(self, name):  # methods/attributes of the cause that live outside __dict__
            cause = self.__dict__.get("cause")
            if cause is None:
                raise AttributeError(name)
            return getattr(cause, name)

        name = f"RayTaskError({cause_cls.__name__})"
        body = {"__init__": __init__, "__getattr__": __getattr__, "__str__": RayTaskError.__str__,
                "__reduce__": RayTaskError.__reduce__, "__module__": __name__}
        _dual_classes[cause_cls] = type(name, (RayTaskError, cause_cls), body)
    return _dual_classes[cause_cls]


class GetTimeoutError(RayError, TimeoutError):
    """`get` (or a wait with a deadline) ran out of time."""


class TaskCancelledError(RayError):
    """The task was cancelled with `cancel()` before it could finish."""

    def __init__(self, task_id=None, message=None):
        self.task_id = task_id
        super().__init__(message or f"Task {task_id} was cancelled.")

    def __reduce__(self):
        return (type(self), (self.task_id, str(self)))


class WorkerCrashedError(RayError):
    """The worker process running the task died, and no retries were left."""


class TaskUnschedulableError(RayError):
    """No machine here could ever run the task: it asks for more than exists (course runtime: fails at once)."""


class ObjectStoreFullError(RayError):
    """The object store has no room for a new object; the message says what fills it."""


class OutOfMemoryError(RayError):
    """The task or actor was killed for using too much memory. Never raised here (there is no memory monitor); kept
    because programs written for Ray catch it."""


class ObjectLostError(RayError):
    """An object's value is gone (for example its store was shut down)."""

    def __init__(self, object_ref_hex="", message=None):
        self.object_ref_hex = object_ref_hex
        super().__init__(message or f"Object {object_ref_hex} is lost.")

    def __reduce__(self):
        return (type(self), (self.object_ref_hex, str(self)))


class RayActorError(RayError):
    """An actor could not run a method call."""


class ActorDiedError(RayActorError):
    """The actor is dead: it crashed, was killed, or its constructor raised."""


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable (for example while it restarts)."""


class ActorAlreadyExistsError(RayError, ValueError):
    """An actor with this name already exists in the namespace."""


class UnserializableException(RayError):
    """An exception raised in a task that could not be pickled back to the caller."""


class ActorUnschedulableError(RayError):
    """No machine here could ever host the actor: it asks for more than exists (course runtime: fails at once)."""


class PendingCallsLimitExceeded(RayError):
    """An actor already has `max_pending_calls` calls waiting."""


class TaskPlacementGroupRemoved(RayError):
    """The placement group a task was to run in was removed."""


class ActorPlacementGroupRemoved(RayError):
    """The placement group an actor was to run in was removed."""


def raise_stored(error):
    """Raise the error a task left (or a request answered with): a fresh instance each time, so tracebacks don't
    pile up; a task's error as RayTaskError *and* its cause's class."""
    if isinstance(error, RayTaskError):
        raise error.as_instanceof_cause()
    raise copy.copy(error)
