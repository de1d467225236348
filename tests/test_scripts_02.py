"""extra/code/tasks_pipeline.py, run as a learner runs it (`python extra/code/tasks_pipeline.py` from the repository
root): the same downloads handled by `get` in a loop, by one `get` on the list, and by a `wait` loop."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "extra/code/tasks_pipeline.py"
HEADER = re.compile(r"^(\d+) downloads of (\d+\.\d\d) to (\d+\.\d\d) seconds on (\d+) CPUs?, then 0\.10 seconds of "
                    r"processing each in the driver$", re.M)


def run_script(*args, cwd=ROOT):
    result = subprocess.run([sys.executable, os.path.join(ROOT, SCRIPT), *args], cwd=cwd, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def seconds(out, label):
    match = re.search(rf"^{re.escape(label)}: +(\d+\.\d\d) seconds$", out, re.M)
    assert match, f"no line for {label!r} in:\n{out}"
    return float(match.group(1))


def durations(seed, n):
    import numpy as np
    return [round(float(s), 2) for s in np.random.default_rng(seed).uniform(0.1, 0.4, n)]


def test_the_three_strategies_agree_and_the_wait_loop_beats_get_in_a_loop():
    out = run_script()
    tasks, low, high, cpus = HEADER.search(out).groups()
    assert (tasks, cpus) == ("6", "2")
    expected = durations(0, 6)
    assert (float(low), float(high)) == (min(expected), max(expected))
    looped, all_then, waited = (seconds(out, label) for label in ("get in a loop", "get all, then process",
                                                                  "wait loop"))
    # Lower bounds only (a busy machine makes things slower, never faster): one download at a time, then 0.1 s
    # of processing each; with a get on the list, processing starts after the slowest download.
    assert looped >= sum(expected) + 6 * 0.1 - 0.05
    assert all_then >= max(expected) + 6 * 0.1 - 0.05
    assert waited >= 6 * 0.1 - 0.05
    assert waited < looped


def test_options_and_timeline(tmp_path):
    timeline = tmp_path / "timeline.json"
    out = run_script("--tasks", "3", "--num-cpus", "1", "--seed", "1", "--timeline", str(timeline), cwd=tmp_path)
    assert HEADER.search(out).group(1, 4) == ("3", "1")
    assert "on 1 CPU," in out
    from course_runtime.viz import overlaps, task_spans
    spans = task_spans(str(timeline), name="download")
    assert len(spans) == 9  # three downloads for each of the three strategies
    assert overlaps(str(timeline)) == 1  # one CPU: never two at once
