"""`python -m course_runtime doctor`, the instructor's readiness check: a table of checks, the fix for each problem,
and an exit status that tells a script whether the machine is ready."""
import json
import os
import subprocess
import sys

from course_runtime import doctor
from course_runtime.doctor import FAIL, OK, WARN, Row

GiB = 2**30
CHECK_NAMES = ["Python", "CPU cores", "Memory", "Object store memory", "package numpy", "package cloudpickle",
               "package matplotlib", "package jupyterlab", "package ipykernel", "Jupyter kernel",
               "Backend (COURSE_BACKEND)", "Real Ray (optional)", "GPUs (optional)", "User", "Runtime smoke test"]


def run_doctor(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("COURSE_BACKEND", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "course_runtime", "doctor"], capture_output=True, text=True,
                          timeout=50, env={**base, **env})


def test_doctor_says_this_machine_is_ready_and_shows_every_check():
    result = run_doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for name in CHECK_NAMES:
        assert f"\n{name} " in table, f"no row for {name!r}:\n{table}"
    assert "Runtime smoke test" in table and "init, 4 tasks, 3 actor calls" in table
    assert "READY" in table and "NOT READY" not in table


def test_a_failure_gives_a_nonzero_exit_and_the_fix():
    result = run_doctor(COURSE_BACKEND="bogus")  # the notebooks' `from course_runtime import ray` would raise
    assert result.returncode == 1
    assert "Backend (COURSE_BACKEND)  FAIL" in result.stdout
    assert "What to do:" in result.stdout and "unset COURSE_BACKEND" in result.stdout
    assert "NOT READY" in result.stdout


def test_a_kernel_without_the_course_fails_with_the_fix(tmp_path):
    kernel = tmp_path / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    result = run_doctor(JUPYTER_PATH=str(tmp_path))
    assert result.returncode == 1
    assert "python3 -> /nonexistent/python, which cannot import" in result.stdout
    assert "-m pip install -e ." in result.stdout


def test_usage_without_a_command():
    result = subprocess.run([sys.executable, "-m", "course_runtime"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "python -m course_runtime doctor" in result.stderr


def test_main_exits_nonzero_on_a_failed_check_and_zero_on_warnings(capsys):
    assert doctor.main(checks=[lambda: Row("Fine", OK, "yes"), lambda: Row("Wobbly", WARN, "meh", "tighten it")]) == 0
    out = capsys.readouterr().out
    assert "WARN Wobbly: tighten it" in out and "READY" in out
    assert doctor.main(checks=[lambda: Row("Broken", FAIL, "no", "replace the part")]) == 1
    out = capsys.readouterr().out
    assert "Broken  FAIL    no" in out and "FAIL Broken: replace the part" in out and "NOT READY" in out


def test_a_check_that_crashes_is_reported_not_raised(capsys):
    def check_exploding():
        raise RuntimeError("boom")

    assert doctor.main(checks=[check_exploding]) == 1
    assert "RuntimeError: boom" in capsys.readouterr().out


def test_old_python_fails():
    assert doctor.check_python((3, 9, 18)).status == FAIL
    assert "3.10" in doctor.check_python((3, 9, 18)).fix
    assert doctor.check_python((3, 10, 0)).status == OK


def test_memory_thresholds_include_a_container_limit():
    assert doctor.check_memory(total=16 * GiB, available=12 * GiB).status == OK
    assert doctor.check_memory(total=16 * GiB, available=int(1.5 * GiB)).status == WARN
    low = doctor.check_memory(total=16 * GiB, available=12 * GiB, limit=GiB // 2)  # a small hosted-notebook pod
    assert low.status == FAIL and "container limit 0.5 GiB" in low.found and low.fix


def test_one_core_is_a_warning():
    assert doctor.check_cpus(1).status == WARN
    assert doctor.check_cpus(2).status == OK
    limited = doctor.check_cpus(8, quota=1.0)  # a hosted-notebook container on a big machine
    assert limited.status == WARN and "container quota 1 CPUs" in limited.found


def test_missing_or_old_packages_fail_with_how_to_install():
    missing, old, fine = doctor.check_packages([("no-such-package-for-the-course", "1"), ("pytest", "999"),
                                                ("pytest", "7")])
    assert missing.status == FAIL and "not installed" in missing.found and "course.py open" in missing.fix
    assert old.status == FAIL and 'pip install -U "pytest>=999"' in old.fix
    assert fine.status == OK


def test_shared_memory_row_says_what_the_store_uses():
    assert "not limited by /dev/shm" in doctor.check_shared_memory(use_memfd=True).found
    files = doctor.check_shared_memory(use_memfd=False)
    assert files.status in (OK, WARN) and files.found.startswith("files in ")
