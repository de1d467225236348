"""Which runtime this process talks to: the driver's (between init() and shutdown()), or, in a worker process, the
task context; and forgetting both in a child forked from either.

Mirrors `ray/_private/worker.py`'s global worker, the one object every API call goes through. Lower modules never
reach the runtime; remote_function, actor and api ask this module for it.
"""
import os
import sys
import threading

from . import object_ref

_driver = None  # the driver.Driver, between init() and shutdown()
_in_task = None  # in a worker process: its task_context.TaskContext
lock = threading.Lock()
_forked_from = None  # in a process forked from a driver or worker: that process's pid (see _forget_after_fork)


def driver():
    return _driver


def in_task():
    return _in_task


def current():
    """The runtime of this process; in the driver, one started with init()'s defaults if none runs, as Ray does."""
    if _in_task is not None:
        return _in_task
    if _driver is None:
        if _forked_from is not None:
            raise RuntimeError(
                f"This process (pid {os.getpid()}) was forked from process {_forked_from}, which runs the course "
                f"runtime: the runtime belongs to that process and cannot be used here (it would hang, or garble "
                f"its messages). Use the API only in the driver and in tasks and actors: run the work as a task "
                f"(@ray.remote) instead of in a multiprocessing/os.fork child, or pass the child plain values "
                f"(ray.get them first), not ObjectRefs.")
        with lock:
            if _driver is None:
                start_driver()
    return _driver


def start_driver(num_cpus=None, num_gpus=None, resources=None, object_store_memory=None, namespace=None,
                 runtime_env=None):
    """init() (after its checks, in api.py): start the driver's runtime: the raylet, its workers and store."""
    global _driver, _forked_from
    from .driver import Driver  # only a driver ever loads the driver's side
    if num_cpus is None:
        num_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _forked_from = None  # a forked child may start a runtime of its own (its parent's refs mean nothing there)
    _driver = Driver(num_cpus, num_gpus, resources, object_store_memory, namespace)
    _driver.runtime_env = runtime_env
    _watch_ipython_cells()
    return _driver


def _watch_ipython_cells():
    """In Jupyter, print worker output that arrived while no API call was running, at the end of each cell."""
    ipython = sys.modules.get("IPython")  # not imported: not in IPython (importing it here would be slow)
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and _flush_after_cell not in shell.events.callbacks.get("post_run_cell", []):
        shell.events.register("post_run_cell", _flush_after_cell)


def _flush_after_cell(*_):
    if _driver is not None:
        _driver.flush_output()


def stop_driver():
    global _driver
    with lock:
        stopping, _driver = _driver, None
    if stopping is not None:
        stopping.shutdown()


def enter_worker(context):
    global _in_task
    _in_task = context


def _forget_after_fork():
    """In a child made by fork (multiprocessing, os.fork) of a driver or a worker: drop the inherited runtime.
    Its threads did not survive the fork and its pipes belong to the parent: using it would hang or garble the
    parent's messages, and the child's exit (atexit: shutdown) would stop the parent's workers."""
    global _driver, _in_task, _forked_from, lock
    if _driver is not None or _in_task is not None:
        _forked_from = os.getppid()
        object_ref.clear_pending_events()  # the parent's ref-count news, not ours
    _driver = _in_task = None
    lock = threading.Lock()  # another thread may have held it at the moment of the fork


object_ref.current_runtime = current  # what ObjectRef.future() asks for
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
