"""course_runtime: Ray Core's API on a small multiprocessing runtime, for learning Ray on one machine.

`from course_runtime import ray` (or `import course_runtime as ray`) gives the functions and classes of `import ray`
with Ray 2.60's behaviour. How a task travels (each box names a module; the messages are in protocol.py):

    driver process                                   |   worker processes (one socket pair each)
                                                     |
    f.remote(x)  remote_function: a TaskSpec          |
        |        (task_spec.pack_arguments)          |
        v                                            |
    driver.Driver --submit--> raylet.Raylet          |
                     owner.Owner: tables, refcounts  |
                     scheduler: ReadyQueues, CPUs    |
                     worker_pool: ---- RunTask ------+--> worker.Worker: load the arguments,
                     gcs: actors, their calls        |      run f, store the result (plasma.write
                                                     |      for large ones, into a segment the
    ray.get(ref) <-- ObjectEntry <-- IO thread  <----+---  driver allocated)        TaskDone
        (plasma: shared memory, zero-copy reads)     |
                      handlers table (raylet.py) <---+---  task_context.TaskContext: the API inside
                                                     |      a task (SubmitTask, Get, Wait, Put, ...)

The user's thread submits and dispatches directly, under the raylet's lock; the IO thread (raylet._io_loop) waits on
every worker pipe at once and handles what arrives. Read in this order: remote_function, task_spec, driver, raylet
(submit -> schedule -> dispatch -> done), owner, scheduler, worker_pool, worker, task_context, plasma, gcs, then
fast_paths (the speed tricks, switched off by COURSE_RUNTIME_FAST_PATHS=0).
"""
from . import actor, exceptions
from .api import (available_resources, cancel, cluster_resources, get, get_actor, get_gpu_ids, get_runtime_context,
                  init, is_initialized, kill, method, nodes, put, remote, shutdown, timeline, wait)
from .object_ref import ObjectRef
from .object_ref_generator import DynamicObjectRefGenerator, ObjectRefGenerator

__version__ = "0.1.0"


def __getattr__(name):
    # `from course_runtime import ray`: this runtime, or real Ray when COURSE_BACKEND=ray (see backend.py)
    if name == "ray":
        from .backend import load
        return load()
    if name in ("state", "util", "viz", "checks", "experimental"):  # loaded on first use: workers never need them
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'course_runtime' has no attribute {name!r}")


__all__ = ["ObjectRef", "ObjectRefGenerator", "DynamicObjectRefGenerator", "actor", "util", "available_resources", "cancel", "cluster_resources", "exceptions", "state",
           "get", "get_actor", "get_gpu_ids", "kill", "get_runtime_context", "init", "is_initialized", "method",
           "nodes", "put", "remote", "shutdown", "timeline", "wait"]
