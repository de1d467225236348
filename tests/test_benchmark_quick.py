"""The benchmark's quick mode runs end to end on course_runtime and ProcessPoolExecutor.

This catches breakage of the benchmark (and of the runtime paths it exercises); it asserts no timings: speed is
reported by `python bench/benchmark.py`, not tested (issue 6).
"""

import json
import os
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "bench", "benchmark.py")
TIMEOUT_S = 240
REQUIRED = ["startup", "tasks_serial", "tasks_pipelined", "put_100mb", "get_stored_100mb", "read_shared_8"]


@pytest.fixture
def longer_alarm():
    """conftest.py fails any test after 60 s with SIGALRM; this one may legitimately take longer."""
    signal.alarm(TIMEOUT_S + 30)
    yield


@pytest.mark.course_only
def test_quick_benchmark_reports_numbers_for_both_backends(tmp_path, longer_alarm):
    output = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--quick", "--backends", "course,ppe", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert output.exists(), proc.stdout[-3000:]
    try:
        import matplotlib  # noqa: F401 - the chart is drawn only where matplotlib is installed
    except ImportError:
        pass
    else:
        assert (tmp_path / "latest.png").exists()
    results = json.loads(output.read_text())

    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]
    problems = []
    for backend in ("course", "ppe"):
        figures = results["backends"][backend]["figures"]
        for key in REQUIRED:
            value = figures.get(key, {}).get("value")
            if backend == "ppe" and key in ("put_100mb", "get_stored_100mb"):
                assert isinstance(value, str) and value.startswith("n/a")  # no object store in PPE
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                problems.append(f"{backend} {key}: {value!r}")
    assert not problems, "figures that are not numbers:\n" + "\n".join(problems) + "\n" + proc.stdout[-3000:]
    assert [row["figure"] for row in results["table"]][:1] == ["startup"]
