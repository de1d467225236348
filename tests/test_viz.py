"""course_runtime.viz: the timeline picture and overlaps(), on synthetic events in both runtimes' formats."""

import doctest
import json

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course_runtime import viz  # noqa: E402
from course_runtime.viz import overlaps, plot_timeline, task_spans  # noqa: E402

T0 = 1_700_000_000 * 1e6  # µs since the epoch, as timeline() reports


def course_events():
    """What course_runtime.timeline() returns: 2 workers, 4 `square` tasks of 1 s (two at a time), then a
    `total` of 0.4 s."""
    def task(name, worker, start_s, dur_s):
        return {"cat": f"task::{name}", "name": name, "pid": "Node 127.0.0.1", "tid": f"worker {worker}",
                "ts": T0 + start_s * 1e6, "dur": dur_s * 1e6, "ph": "X",
                "args": {"task_id": f"{worker:04x}{int(start_s * 10):04x}", "state": "FINISHED"}}
    meta = [{"ph": "M", "name": "thread_name", "pid": "Node 127.0.0.1", "tid": f"worker {w}",
             "args": {"name": f"worker {w}"}} for w in (101, 102)]
    meta.append({"ph": "M", "name": "process_name", "pid": "Node 127.0.0.1", "args": {"name": "Node 127.0.0.1"}})
    return meta + [
        task("square", 101, 0.0, 1.0), task("square", 102, 0.0, 1.0),
        task("square", 101, 1.0, 1.0), task("square", 102, 1.05, 1.0),
        task("total", 101, 2.1, 0.4),
    ]


def ray_events():
    """Shaped like real Ray's timeline: integer pid/tid named by metadata, a "task::" event per task plus
    internal sub-events (deserialize, execute, store outputs) and driver-side events that must be ignored."""
    events = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "Node 10.0.0.5"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 0, "args": {"name": "worker:aaaa"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 1, "args": {"name": "worker:bbbb"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 2, "args": {"name": "worker:cccc"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 3, "args": {"name": "driver:dddd"}},
        {"cat": "ray.get", "name": "ray.get", "pid": 0, "tid": 3, "ts": T0, "dur": 3e6, "ph": "X", "args": {}},
    ]
    for i, (tid, start) in enumerate([(0, 0.0), (1, 0.2), (2, 0.4), (0, 1.1)]):
        ts, dur = T0 + start * 1e6, 1e6
        events.append({"cat": "task::slow", "name": "task::slow", "pid": 0, "tid": tid, "ts": ts, "dur": dur,
                       "ph": "X", "cname": "rail_response", "args": {"task_id": str(i)}})
        for sub, a, b in [("task:deserialize_arguments", 0, 0.1), ("task:execute", 0.1, 0.9),
                          ("task:store_outputs", 0.9, 1.0)]:
            events.append({"cat": sub, "name": sub, "pid": 0, "tid": tid, "ts": ts + a * 1e6,
                           "dur": (b - a) * 1e6, "ph": "X", "args": {}})
    return events


def ray_260_events():
    """The shape real Ray 2.60 returned for 4 `slow` tasks (0.3 s, 2 workers) and an actor `C` with `inc`:
    pid is the node IP, tid "worker:<id>", cat "task::slow" / "task::C.inc" while name is "__main__.slow" / "inc",
    sub-events per task, and the driver's "submit_task" events."""
    events = []

    def task(cat, name, worker, start, dur):
        tid = f"worker:{worker * 56}"  # Ray's worker ids are 56 hex digits
        events.append({"cat": cat, "name": name, "pid": "192.0.2.2", "tid": tid, "ts": T0 + start * 1e6,
                       "dur": dur * 1e6, "ph": "X", "cname": "generic_work", "args": {"name": name, "task_id": "x"}})
        for sub in ("task:deserialize_arguments", "task:execute", "task:store_outputs"):
            events.append({"cat": sub, "name": sub, "pid": "192.0.2.2", "tid": tid, "ts": T0 + start * 1e6,
                           "dur": dur * 1e6 / 3, "ph": "X", "cname": "rail_load", "args": {}})
    task("task::slow", "__main__.slow", "a", 0.00, 0.38)
    task("task::slow", "__main__.slow", "b", 0.00, 0.37)
    task("task::slow", "__main__.slow", "a", 0.38, 0.30)
    task("task::slow", "__main__.slow", "b", 0.38, 0.30)
    task("task::C.__init__", "__init__", "c", 1.10, 0.01)
    task("task::C.inc", "inc", "c", 1.12, 0.15)
    events += [{"cat": "submit_task", "name": "submit_task", "pid": "192.0.2.2", "tid": "driver:01", "ts": T0,
                "dur": 1e4, "ph": "X", "args": {}}]
    return events


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def bars(ax):
    """(lane index, start, width) of every bar drawn, from the BrokenBarHCollections on the axes."""
    out = []
    for coll in ax.collections:
        for path in coll.get_paths():
            xs, ys = path.vertices[:, 0], path.vertices[:, 1]
            out.append((round((ys.min() + ys.max()) / 2), xs.min(), xs.max() - xs.min()))
    return sorted(out)


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_course_format_lanes_bars_and_labels():
    ax = plot_timeline(course_events(), title="squares")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["worker 101", "worker 102"]
    drawn = bars(ax)
    assert len(drawn) == 5
    assert sorted(texts(ax)) == ["square"] * 4 + ["total"]
    assert ax.get_title() == "squares"
    # x axis: seconds from the first task's start
    assert min(start for _, start, _ in drawn) == pytest.approx(0.0)
    assert max(start + width for _, start, width in drawn) == pytest.approx(2.5)
    # worker 101 ran three tasks, worker 102 two
    assert sum(1 for lane, _, _ in drawn if lane == 0) == 3
    assert sum(1 for lane, _, _ in drawn if lane == 1) == 2


def test_ray_format_keeps_only_task_events():
    ax = plot_timeline(ray_events())
    lanes = [t.get_text() for t in ax.get_yticklabels()]
    assert lanes == ["worker:aaaa", "worker:bbbb", "worker:cccc"]  # no driver lane: ray.get is not a task
    assert len(bars(ax)) == 4  # sub-events of each task are not drawn again
    assert texts(ax) == ["slow"] * 4  # "task::" prefix stripped


def test_ray_format_without_task_categories_drops_sub_events():
    # Older Ray: the task span is called "task" with the function in args; sub-events are "task:execute" etc.
    events = [e for e in ray_events() if e.get("cat") != "task::slow"]
    spans = task_spans(events)
    assert spans == []  # only internal sub-events and ray.get were left
    events.append({"cat": "task", "name": "slow", "pid": 0, "tid": 0, "ts": T0, "dur": 5e5, "ph": "X"})
    assert [s.name for s in task_spans(events)] == ["slow"]


def test_real_ray_260_shape():
    ax = plot_timeline(ray_260_events())
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"worker:{c * 13}…" for c in "abc"]
    assert len(bars(ax)) == 6
    assert sorted(set(texts(ax))) == ["C.inc", "slow"]  # C.__init__ is too short for its name; the legend has it
    assert overlaps(ray_260_events()) == 2
    for name in ("slow", "task::slow", "__main__.slow"):
        assert overlaps(ray_260_events(), name=name) == 2
    assert [s.name for s in task_spans(ray_260_events(), name="inc")] == ["C.inc"]


def test_colours_are_stable_per_name():
    ax1 = plot_timeline(course_events())
    ax2 = plot_timeline([e for e in course_events() if e.get("name") != "square"])
    colour = {c.get_label(): tuple(c.get_facecolor()[0]) for c in ax1.collections if c.get_label()[:1] != "_"}
    colour2 = {c.get_label(): tuple(c.get_facecolor()[0]) for c in ax2.collections if c.get_label()[:1] != "_"}
    assert set(colour) == {"square", "total"}
    assert colour["square"] != colour["total"]
    assert colour2["total"] == colour["total"]


def test_overlaps():
    assert overlaps(course_events()) == 2
    assert overlaps(course_events(), name="square") == 2
    assert overlaps(course_events(), name="total") == 1
    assert overlaps(course_events(), name="task::total") == 1
    assert overlaps(course_events(), name="missing") == 0
    assert overlaps(ray_events()) == 3  # tasks at 0.0, 0.2, 0.4 all run at 0.5 s; sub-events not counted twice
    assert overlaps([]) == 0


def test_back_to_back_tasks_do_not_overlap():
    events = [{"ph": "X", "name": "f", "pid": "n", "tid": "w", "ts": T0 + i * 1e6, "dur": 1e6} for i in range(3)]
    assert overlaps(events) == 1


def test_names_too_long_for_their_bar_are_not_written():
    events = course_events() + [{"ph": "X", "name": "a_task_with_a_long_name",
                                 "cat": "task::a_task_with_a_long_name", "pid": "Node 127.0.0.1",
                                 "tid": "worker 102", "ts": T0 + 2.2e6, "dur": 1e4}]
    ax = plot_timeline(events)
    assert len(bars(ax)) == 6
    assert "a_task_with_a_long_name" not in texts(ax)
    assert "a_task_with_a_long_name" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_draws_into_given_axes_and_filters_by_name():
    fig, ax = plt.subplots()
    assert plot_timeline(course_events(), ax=ax, name="total") is ax
    assert len(bars(ax)) == 1
    assert texts(ax) == ["total"]


def test_empty_timeline_and_events_from_a_file(tmp_path):
    ax = plot_timeline([{"ph": "M", "name": "thread_name", "args": {"name": "x"}}])
    assert bars(ax) == []
    path = tmp_path / "timeline.json"
    path.write_text(json.dumps(course_events()))
    assert len(bars(plot_timeline(str(path)))) == 5
    assert overlaps({"traceEvents": course_events()}) == 2


def test_events_default_to_the_backend_timeline():
    class FakeBackend:
        @staticmethod
        def timeline():
            return course_events()

    assert overlaps(backend=FakeBackend) == 2
    assert len(bars(plot_timeline(backend=FakeBackend))) == 5


def test_docstring_examples():
    assert doctest.testmod(viz).failed == 0
