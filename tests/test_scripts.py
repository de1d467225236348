"""The scripts in extra/code run as a learner runs them (`python extra/code/NAME.py` from the repository root)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE = re.compile(r"^Processed 8 images in (\d+\.\d\d) seconds\.$", re.M)


def run_script(*args, env=None):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.course_only
def test_sequential_script_takes_about_eight_seconds():
    seconds = float(LINE.search(run_script("extra/code/sequential_process.py")).group(1))
    assert 7.9 <= seconds < 12


@pytest.mark.course_only
def test_parallel_script_is_limited_by_the_cpus_it_is_given(tmp_path):
    timeline = tmp_path / "timeline.json"
    out = run_script("extra/code/parallel_process.py", "--num-cpus", "2", "--timeline", str(timeline))
    seconds = float(LINE.search(out).group(1))
    assert 3.9 <= seconds < 7  # 8 one-second tasks, 2 at a time
    from course_runtime.viz import overlaps, task_spans
    spans = task_spans(str(timeline))
    assert len(spans) == 8 and overlaps(str(timeline)) == 2


@pytest.mark.course_only
def test_an_unknown_backend_is_a_clear_error():
    result = subprocess.run([sys.executable, "extra/code/parallel_process.py"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "COURSE_BACKEND": "dask"})
    assert result.returncode != 0
    assert "COURSE_BACKEND='dask'" in result.stderr and "'course', 'ray'" in result.stderr
