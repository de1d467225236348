"""course_runtime: Ray Core's API on a small multiprocessing runtime, for learning Ray on one machine.

`from course_runtime import ray` (or `import course_runtime as ray`) gives the functions and classes of `import ray` with Ray 2.60's behaviour. Read the
modules in the order a task travels: remote_function (submit) -> node + scheduler (schedule, dispatch) -> worker
(execute) -> object_store + serialization (store) -> api.get (get).
"""
from . import actor, exceptions
from .api import (available_resources, cancel, cluster_resources, get, get_actor, get_gpu_ids, get_runtime_context,
                  init, is_initialized, kill, method, nodes, put, remote, shutdown, timeline, wait)
from .object_ref import ObjectRef

__version__ = "0.1.0"


def __getattr__(name):
    # `from course_runtime import ray`: this runtime, or real Ray when COURSE_BACKEND=ray (see backend.py)
    if name == "ray":
        from .backend import load
        return load()
    if name in ("state", "util", "viz", "checks"):  # loaded on first use: workers never need them
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'course_runtime' has no attribute {name!r}")

__all__ = ["ObjectRef", "actor", "util", "available_resources", "cancel", "cluster_resources", "exceptions", "state", "get", "get_actor", "get_gpu_ids", "kill",
           "get_runtime_context", "init", "is_initialized", "method", "nodes", "put", "remote", "shutdown",
           "timeline", "wait"]
