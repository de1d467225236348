"""Pictures of what ran: a per-worker timeline drawn from `timeline()` events.

Ray has no inline picture of this: `ray.timeline()` returns Chrome-trace events that you load into
chrome://tracing or Perfetto. In a notebook it is quicker to *see* the timeline right under the cell, so this
module draws the same events with matplotlib: one horizontal lane per worker, one bar per task.

It reads the events of both runtimes, because both speak the Chrome trace format:

* course_runtime: one complete event per finished task, ``{"ph": "X", "cat": "task::f", "name": "f",
  "pid": "Node 127.0.0.1", "tid": "worker 1234", "ts": <µs>, "dur": <µs>, ...}``, plus ``"M"`` metadata events;
* real Ray: a ``"task::f"`` event per task *and* internal sub-events for the same task
  (``task:deserialize_arguments``, ``task:execute``, ``task:store_outputs``, ...). When events whose ``cat``
  starts with ``"task::"`` are present, only those are used, so every task is drawn exactly once.

``overlaps()`` answers the question the exercises ask ("did your tasks really run in parallel?") from the same
events. matplotlib is imported only when a picture is drawn: the runtime itself does not need it.
"""

import json
import os
import zlib
from collections import namedtuple

__all__ = ["plot_timeline", "overlaps", "task_spans", "TaskSpan"]

#: One task as drawn: its label, the lane (worker) it ran in, and its start and end in seconds since the epoch.
TaskSpan = namedtuple("TaskSpan", "name lane start end")

# Names of the bookkeeping events Ray records besides the task itself (see ray/_private/profiling.py).
_RAY_INTERNAL_EVENTS = {
    "worker_idle", "ray.get", "ray.put", "ray.wait", "submit_task", "wait_for_function",
    "fetch_and_run_function", "register_remote_function",
}
_RAY_INTERNAL_PARTS = {"store_outputs", "deserialize", "deserialize_arguments", "execute", "get_arguments"}


def _load(events):
    """Accept a list of events, a ``{"traceEvents": [...]}`` dict, or the path of a JSON file of either."""
    if isinstance(events, (str, os.PathLike)):
        with open(events) as f:
            events = json.load(f)
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    return list(events)


def _strip(label):
    label = str(label)
    return label[len("task::"):] if label.startswith("task::") else label


def _is_internal(event):
    """True for Ray's sub-events of a task (``task:execute`` ...) and its driver-side bookkeeping events."""
    for key in ("name", "cat"):
        text = str(event.get(key, ""))
        if text in _RAY_INTERNAL_EVENTS:
            return True
        if text.startswith("task:") and not text.startswith("task::"):
            return True  # "task:execute", "task:store_outputs", ...
        parts = text.split("::")
        if len(parts) >= 3 and parts[-1] in _RAY_INTERNAL_PARTS:
            return True  # e.g. "task::f::store_outputs" (but a user task called "execute" is kept)
    return False


def _label(event):
    """The task name to show. ``cat`` when it is ``"task::<name>"`` (Ray puts "task::f" / "task::Counter.inc"
    there, and a module-qualified "__main__.f" or a bare "inc" in ``name``), else ``name``, else ``cat``."""
    cat = str(event.get("cat") or "")
    if cat.startswith("task::"):
        return _strip(cat)
    return _strip(event.get("name") or cat or "task")


def _matches(span_name, event, wanted):
    """Does a task match `wanted`? Its label, its raw event name or the last dotted part of either will do,
    so ``"slow"``, ``"task::slow"``, ``"__main__.slow"`` all select Ray's "task::slow", and ``"inc"`` selects
    an actor method "Counter.inc"."""
    wanted = _strip(wanted)
    candidates = {span_name, _strip(event.get("name") or "")}
    candidates |= {c.rsplit(".", 1)[-1] for c in candidates}
    return wanted in candidates


def task_spans(events, name=None):
    """The tasks in `events` as a list of :class:`TaskSpan`, sorted by start time.

    Keeps complete (``"ph": "X"``) events only; drops metadata, and Ray's internal sub-events. Lanes are named
    after the worker (``tid``), prefixed by the node (``pid``) when there is more than one node, using the
    ``thread_name``/``process_name`` metadata events when they give names.

    >>> spans = task_spans([
    ...     {"ph": "X", "cat": "task::f", "name": "f", "pid": "Node 1", "tid": "worker 7", "ts": 0, "dur": 2e6},
    ...     {"ph": "M", "name": "thread_name", "pid": "Node 1", "tid": "worker 7", "args": {"name": "worker 7"}},
    ... ])
    >>> spans[0].name, spans[0].lane, spans[0].end - spans[0].start
    ('f', 'worker 7', 2.0)
    """
    events = _load(events)
    thread_names, process_names = {}, {}
    for e in events:
        if e.get("ph") == "M" and isinstance(e.get("args"), dict) and "name" in e["args"]:
            if e.get("name") == "thread_name":
                thread_names[(e.get("pid"), e.get("tid"))] = e["args"]["name"]
            elif e.get("name") == "process_name":
                process_names[e.get("pid")] = e["args"]["name"]

    complete = [e for e in events
                if e.get("ph") == "X" and isinstance(e.get("ts"), (int, float))
                and isinstance(e.get("dur", 0), (int, float))]
    if any(str(e.get("cat", "")).startswith("task::") for e in complete):
        complete = [e for e in complete if str(e.get("cat", "")).startswith("task::")]
    complete = [e for e in complete if not _is_internal(e)]

    several_nodes = len({e.get("pid") for e in complete}) > 1
    spans = []
    for e in complete:
        label = _label(e)
        if name is not None and not _matches(label, e, name):
            continue
        pid, tid = e.get("pid"), e.get("tid")
        lane = str(thread_names.get((pid, tid), tid))
        if several_nodes:
            lane = f"{process_names.get(pid, pid)} / {lane}"
        start = e["ts"] / 1e6
        spans.append(TaskSpan(label, lane, start, start + e.get("dur", 0) / 1e6))
    spans.sort(key=lambda s: (s.start, s.lane))
    return spans


def overlaps(events=None, name=None, backend=None):
    """The largest number of tasks running at the same moment (only tasks called `name`, if given).

    A task that starts exactly when another ends does not overlap it. Exercises use this to check that work
    really ran in parallel:

    >>> events = [
    ...     {"ph": "X", "name": "f", "cat": "task::f", "pid": "n", "tid": "w1", "ts": 0, "dur": 1_000_000},
    ...     {"ph": "X", "name": "f", "cat": "task::f", "pid": "n", "tid": "w2", "ts": 500_000, "dur": 1_000_000},
    ...     {"ph": "X", "name": "g", "cat": "task::g", "pid": "n", "tid": "w1", "ts": 1_000_000, "dur": 10},
    ... ]
    >>> overlaps(events), overlaps(events, name="g")
    (2, 1)

    In a notebook: ``assert overlaps(ray.timeline(), name="slow_square") >= 2, "your tasks ran one by one"``.
    With ``events=None`` the events come from ``backend.timeline()`` (default: course_runtime).
    """
    if events is None:
        events = _backend(backend).timeline()
    # Sweep over the start (+1) and end (-1) points in time order; at equal times ends come first.
    points = []
    for span in task_spans(events, name=name):
        if span.end > span.start:
            points += [(span.start, 1), (span.end, -1)]
    points.sort(key=lambda p: (p[0], p[1]))
    running = most = 0
    for _, delta in points:
        running += delta
        most = max(most, running)
    return most


def _backend(backend):
    if backend is None:  # the backend the course runs on: this runtime, or real Ray with COURSE_BACKEND=ray
        from .backend import load
        backend = load()
    return backend


# A colour per task name that does not depend on which other tasks are in the picture.
_PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860",
            "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]


def _colours(names):
    """Map each task name to a palette colour chosen by a hash of the name (stable across pictures);
    two names of one picture that hash alike get the next free colour."""
    taken, colours = set(), {}
    for n in sorted(names):
        i = zlib.crc32(n.encode()) % len(_PALETTE)
        for step in range(len(_PALETTE)):
            if (i + step) % len(_PALETTE) not in taken:
                i = (i + step) % len(_PALETTE)
                break
        taken.add(i)
        if len(taken) == len(_PALETTE):
            taken.clear()
        colours[n] = _PALETTE[i]
    return colours


def plot_timeline(events=None, ax=None, title=None, backend=None, name=None, labels=True, legend=True,
                  figsize=None):
    """Draw a per-worker timeline of finished tasks and return the matplotlib ``Axes``.

    One horizontal lane per worker, one bar per task, coloured by task name (the same name always gets the
    same colour) and labelled with it; the x axis is seconds since the first task started.

    Args:
        events: Chrome-trace events as returned by ``timeline()`` of course_runtime or of real Ray (a list of
            dicts), a ``{"traceEvents": [...]}`` dict or the path of a JSON file. ``None``: call
            ``backend.timeline()``.
        ax: an ``Axes`` to draw into; by default a new figure is made.
        title: the title of the picture.
        backend: the runtime module whose ``timeline()`` to call when `events` is None (default course_runtime;
            pass ``ray`` to draw real Ray's timeline).
        name: draw only the tasks with this name.
        labels: write task names on the bars that are wide enough (and only when there are at most 60 bars,
            so pictures stay readable).
        legend: add a legend of task names (when there are at most 12).
        figsize: size of the new figure, default grows with the number of workers.

    Example, in a notebook::

        import course_runtime as ray
        from course_runtime.viz import plot_timeline

        @ray.remote
        def slow_square(x):
            time.sleep(0.5)
            return x * x

        ray.get([slow_square.remote(i) for i in range(4)])
        plot_timeline(title="4 tasks on 2 workers")   # two lanes, two bars in each
    """
    if events is None:
        events = _backend(backend).timeline()
    spans = task_spans(events, name=name)

    if ax is None:
        import matplotlib.pyplot as plt  # optional dependency: only needed for pictures

        lanes_count = max(1, len({s.lane for s in spans}))
        _, ax = plt.subplots(figsize=figsize or (9, 1.2 + 0.55 * lanes_count))
    if title:
        ax.set_title(title)
    ax.set_xlabel("seconds since the first task started")
    if not spans:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no finished tasks in this timeline", ha="center", va="center", transform=ax.transAxes)
        return ax

    t0 = min(s.start for s in spans)
    # Lanes in the order their workers first ran something, top to bottom.
    lanes = []
    for s in spans:
        if s.lane not in lanes:
            lanes.append(s.lane)
    row = {lane: i for i, lane in enumerate(lanes)}
    colours = _colours({s.name for s in spans})

    # One broken_barh per (task name, lane): all the bars of one name share a colour and one legend entry.
    for task_name in sorted(colours):
        first = True
        for lane in lanes:
            bars = [(s.start - t0, s.end - s.start) for s in spans if s.name == task_name and s.lane == lane]
            if bars:
                ax.broken_barh(bars, (row[lane] - 0.35, 0.7), facecolors=colours[task_name], edgecolor="white",
                               linewidth=0.5, label=task_name if first else None)
                first = False

    end = max(s.end for s in spans) - t0
    if labels and len(spans) <= 60:
        for s in spans:
            if (s.end - s.start) < 0.014 * len(s.name) * (end or 1):
                continue  # the name would not fit inside its bar: the legend says what it is
            ax.text(s.start - t0 + (s.end - s.start) / 2, row[s.lane], s.name, ha="center", va="center",
                    fontsize=8, color="white", clip_on=True)

    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([lane if len(lane) <= 24 else lane[:20] + "…" for lane in lanes])  # Ray's ids are long
    ax.set_ylim(len(lanes) - 0.5, -0.5)  # first lane on top
    ax.set_xlim(0, end * 1.02 if end > 0 else 1)
    ax.grid(axis="x", alpha=0.3)
    if legend and 1 < len(colours) <= 12:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax
