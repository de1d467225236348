"""The state API: what runs, what waits, what is stored, as lists of records with Ray's field names.

Mirrors `ray.util.state` (`list_tasks`, `list_actors`, ...). Ray asks its dashboard's API server; here the
answers come straight from the driver's tables, so these work in the driver (where notebooks call them).
"""
import dataclasses
import os

from ... import session
from ...scheduler import from_units

DEFAULT_LIMIT = 100  # as in Ray
TASK_STATES = {"WAITING": "PENDING_ARGS_AVAIL", "READY": "PENDING_NODE_ASSIGNMENT", "QUEUED": "SUBMITTED_TO_WORKER",
               "RUNNING": "RUNNING"}
TASK_TYPES = {"task": "NORMAL_TASK", "actor_create": "ACTOR_CREATION_TASK", "actor_call": "ACTOR_TASK"}
ACTOR_STATES = {"PENDING": "PENDING_CREATION", "ALIVE": "ALIVE", "RESTARTING": "RESTARTING", "DEAD": "DEAD"}


class RayStateApiException(Exception):
    """A state query that cannot be answered (as in Ray: e.g. a filter on a field the records do not have)."""


@dataclasses.dataclass
class TaskState:
    task_id: str
    attempt_number: int
    name: str
    state: str
    job_id: str
    actor_id: str
    type: str
    func_or_class_name: str
    node_id: str
    worker_id: str
    worker_pid: int
    required_resources: dict
    start_time_ms: int
    end_time_ms: int


@dataclasses.dataclass
class ActorState:
    actor_id: str
    class_name: str
    state: str
    job_id: str
    name: str
    node_id: str
    pid: int
    ray_namespace: str
    is_detached: bool
    num_restarts: int


@dataclasses.dataclass
class ObjectState:
    object_id: str
    object_size: int
    task_status: str
    reference_type: str
    type: str
    pid: int
    ip: str


@dataclasses.dataclass
class NodeState:
    node_id: str
    node_ip: str
    is_head_node: bool
    state: str
    node_name: str
    resources_total: dict
    labels: dict


@dataclasses.dataclass
class WorkerState:
    worker_id: str
    is_alive: bool
    worker_type: str
    node_id: str
    ip: str
    pid: int


def _raylet():
    driver = session.driver()
    if driver is None:
        raise RayStateApiException("ray.util.state works in the driver of a running session (call ray.init() "
                                   "first); inside a task, pass what it needs as arguments.")
    return driver.raylet


def _tasks(raylet):
    job, node = "01000000", raylet.node_id
    attempts, rows = {}, []
    for name, task_id, pid, started, ended, state, kind, actor_id in list(raylet.owner.finished):
        attempt = attempts[task_id] = attempts.get(task_id, -1) + 1
        rows.append(TaskState(task_id, attempt, name, state, job, actor_id, TASK_TYPES[kind], name, node, str(pid),
                              pid, None, int(started * 1000), int(ended * 1000)))
    for task in raylet.owner.tasks.values():
        worker = task.worker
        rows.append(TaskState(task.spec.task_id, max(task.attempts - 1, 0), task.spec.name,
                              TASK_STATES.get(task.state, task.state), job, task.spec.actor_id,
                              TASK_TYPES[task.spec.kind], task.spec.name, node, worker and str(worker.pid),
                              worker and worker.pid, {k: from_units(v) for k, v in task.spec.demand.items()},
                              None, None))
    return rows


def _actors(raylet):
    return [ActorState(a.spec.actor_id, a.spec.qualname, ACTOR_STATES.get(a.state, a.state), "01000000", a.spec.name,
                       raylet.node_id, a.worker.pid if a.worker else None, a.spec.namespace, a.spec.detached,
                       a.restarts) for a in raylet.gcs.actors.values()]


def _objects(raylet):
    status = {True: "FINISHED", False: "PENDING"}
    return [ObjectState(e.id, e.size, status[e.value is not None],
                        "LOCAL_REFERENCE" if e.refs > 0 else "PINNED_IN_MEMORY", "DRIVER", os.getpid(), "127.0.0.1")
            for e in raylet.owner.objects.values()]


def _nodes(raylet):
    return [NodeState(raylet.node_id, "127.0.0.1", True, "ALIVE", "127.0.0.1", raylet.resources.total_dict(),
                      {"ray.io/node-id": raylet.node_id})]


def _workers(raylet):
    rows = [WorkerState(str(os.getpid()), True, "DRIVER", raylet.node_id, "127.0.0.1", os.getpid())]
    return rows + [WorkerState(str(w.pid), w.sock is not None, "WORKER", raylet.node_id, "127.0.0.1", w.pid)
                   for w in raylet.pool.workers]


def _list(collect, record, filters, limit):
    raylet = _raylet()
    fields = {f.name for f in dataclasses.fields(record)}
    for key, predicate, _ in filters or ():
        if key not in fields:
            raise RayStateApiException(f"The given filter column {key} is not supported. Supported filter "
                                       f"columns: {sorted(fields)}")
        if predicate not in ("=", "!="):
            raise ValueError(f"Unsupported filter predicate {predicate} is given. Available predicates: =, !=.")
    with raylet.lock:
        raylet.apply_local_refs()
        rows = collect(raylet)
    for key, predicate, value in filters or ():
        rows = [r for r in rows if (str(getattr(r, key)) == str(value)) == (predicate == "=")]
    return rows[:limit]


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=None, detail=False, **_):
    """Every task this session ran or will run (one record per attempt of a finished one)."""
    return _list(_tasks, TaskState, filters, limit)


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=None, detail=False, **_):
    return _list(_actors, ActorState, filters, limit)


def list_objects(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=None, detail=False, **_):
    return _list(_objects, ObjectState, filters, limit)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=None, detail=False, **_):
    return _list(_nodes, NodeState, filters, limit)


def list_workers(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=None, detail=False, **_):
    return _list(_workers, WorkerState, filters, limit)


def get_task(id, address=None, timeout=None, **_):
    """The task's latest attempt, or None."""
    rows = _list(_tasks, TaskState, [("task_id", "=", id)], None)
    return max(rows, key=lambda r: r.attempt_number) if rows else None


def get_actor(id, address=None, timeout=None, **_):
    rows = _list(_actors, ActorState, [("actor_id", "=", id)], None)
    return rows[0] if rows else None


def summarize_tasks(address=None, timeout=None, **_):
    """Tasks grouped by function (or method), with how many are in each state, in Ray's layout."""
    latest = {}
    for row in _list(_tasks, TaskState, None, None):
        latest[row.task_id] = row  # the last attempt counts
    summary, totals = {}, {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for row in latest.values():
        group = summary.setdefault(row.func_or_class_name, {"func_or_class_name": row.func_or_class_name,
                                                            "type": row.type, "state_counts": {}})
        group["state_counts"][row.state] = group["state_counts"].get(row.state, 0) + 1
        totals[row.type] += 1
    return {"cluster": {"summary": dict(sorted(summary.items())), "total_tasks": totals["NORMAL_TASK"],
                        "total_actor_tasks": totals["ACTOR_TASK"],
                        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"], "summary_by": "func_name"}}


__all__ = ["ActorState", "NodeState", "ObjectState", "RayStateApiException", "TaskState", "WorkerState",
           "get_actor", "get_task", "list_actors", "list_nodes", "list_objects", "list_tasks", "list_workers",
           "summarize_tasks"]
