"""Seeing inside the runtime: workers, waiting tasks and why, actors and their calls, objects, the event log.

Plays the part of Ray's state API (`ray.util.state`) and dashboard, for one machine and inline in a notebook:
`summary()` shows a readable table (text, or HTML in Jupyter), `events()` the log of everything that happened.
These are course helpers: real Ray offers the same information through its dashboard and `ray list ...`.
"""
import html
import time

from . import session
from .owner import Error, Stored
from .scheduler import describe


def _raylet():
    driver = session.driver()
    if driver is None:
        raise RuntimeError("The course runtime is not running in this process: call init() first (state helpers "
                           "work in the driver only).")
    return driver.raylet


def events(kind=None):
    """The event log as a list of dicts: submit, dispatch, finish, retry, cancel, get, wait, put, worker_started...

    >>> import course_runtime as ray
    >>> from course_runtime import state
    >>> _ = ray.init(num_cpus=1, ignore_reinit_error=True)
    >>> _ = ray.get(ray.put(1))
    >>> [e["kind"] for e in state.events("get")][-1]
    'get'
    """
    fields = {"submit": ("task_id", "name"), "dispatch": ("task_id", "worker_pid"),
              "queued_at_worker": ("task_id", "worker_pid"), "handed_back": ("task_id", "worker_pid"),
              "finish": ("task_id", "state"),
              "retry": ("task_id", "attempt"), "cancel": ("task_id", "force"), "get": ("count",),
              "wait": ("count", "num_returns"), "put": ("object_id", "size"),
              "argument_stored": ("object_id", "size"), "actor_created": ("actor_id", "class_name"),
              "actor_restarting": ("actor_id", "restarts"), "actor_died": ("actor_id",),
              "worker_started": ("worker_pid",), "worker_exited": ("worker_pid", "exit_code")}
    raylet = _raylet()
    with raylet.lock:
        log = list(raylet.events)
    out = []
    for record in log:
        if kind is None or record[1] == kind:
            entry = {"time": record[0], "kind": record[1]}
            entry.update(zip(fields.get(record[1], ()), record[2:]))
            out.append(entry)
    return out


def summary():
    """A snapshot: workers and what they run, tasks waiting and why, objects in the store."""
    raylet = _raylet()
    owner = raylet.owner
    with raylet.lock:
        raylet.apply_local_refs()
        now = time.time()
        blocked = {id(w.worker) for w in raylet.waits.waiters}
        workers = [{"pid": w.pid, "state": ("blocked in get/wait" if id(w) in blocked else "running") if w.task
                    else "idle", "task": w.task.spec.name if w.task else ""}
                   for w in raylet.pool.workers if w.actor is None]
        tasks = []
        for task in owner.tasks.values():
            if task.spec.kind == "actor_call":
                continue  # listed with their actor below
            if task.state == "WAITING":
                reason = f"waiting for {len(task.waiting_on)} argument(s) to be computed"
            elif task.state == "READY":
                reason = (f"waiting for resources: needs {describe(task.spec.demand)}, "
                          f"free now {describe({k: v for k, v in raylet.resources.available.items() if v > 0})}")
            elif task.state == "QUEUED":
                reason = f"sent to worker {task.worker.pid}, to start when its current (tiny) task ends"
            else:
                reason = f"running on worker {task.worker.pid}" if task.worker else "running"
            tasks.append({"task_id": task.spec.task_id, "name": task.spec.name, "state": task.state, "reason": reason,
                          "age_s": round(now - task.submitted, 3)})
        actors = []
        for a in raylet.gcs.actors.values():
            if a.state == "DEAD":
                continue
            sent = [t.spec.method for t in a.in_flight.values()]  # it runs max_concurrency of these at once
            concurrency = a.spec.max_concurrency
            running, queued = sent[:concurrency], sent[concurrency:] + [t.spec.method for t in a.queue]
            actors.append({"actor": f"{a.class_name} {a.spec.actor_id[:8]}…", "name": a.spec.name or "",
                           "state": a.state,
                           "pid": a.worker.pid if a.worker else "", "running": ", ".join(running),
                           "queued": ", ".join(queued)})
        objects = [{"object_id": e.id, "size": e.size, "where": _where(e), "created_by": e.creator,
                    "refs": e.refs} for e in owner.objects.values()]
        store = {"used": raylet.store.used, "capacity": raylet.store.capacity, "segments": len(raylet.store.segments)}
    return Summary(workers, tasks, actors, objects, store, raylet.resources.total_dict())


def _where(entry):
    if entry.value is None:
        return "pending"
    return {Stored: "shared memory", Error: "error"}.get(type(entry.value), "inline")


class Summary:
    def __init__(self, workers, tasks, actors, objects, store, resources):
        self.workers, self.tasks, self.actors, self.objects = workers, tasks, actors, objects
        self.store, self.resources = store, resources

    def _sections(self):
        yield ("Workers", ["pid", "state", "task"], self.workers)
        yield ("Tasks not finished", ["name", "state", "reason"], self.tasks)
        yield ("Actors", ["actor", "name", "state", "pid", "running", "queued"], self.actors)
        yield ("Objects", ["object_id", "size", "where", "created_by", "refs"],
               [dict(o, object_id=o["object_id"][:16] + "…") for o in self.objects])

    def _store_line(self):
        return (f"Object store: {self.store['used'] / 2**20:.1f} MiB of {self.store['capacity'] / 2**20:.0f} MiB "
                f"in shared memory, {self.store['segments']} segment(s); {len(self.objects)} object(s) in all")

    def __repr__(self):
        lines = [self._store_line()]
        for title, columns, rows in self._sections():
            lines.append(f"\n{title} ({len(rows)})")
            if rows:
                widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
                lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
                for row in rows:
                    lines.append("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))
        return "\n".join(lines)

    def _repr_html_(self):
        parts = [f"<p><b>{html.escape(self._store_line())}</b></p>"]
        for title, columns, rows in self._sections():
            parts.append(f"<p>{title} ({len(rows)})</p>")
            if rows:
                head = "".join(f"<th>{c}</th>" for c in columns)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>"
                               for r in rows)
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
        return "".join(parts)
