#!/usr/bin/env python3
"""Set up and run the course with one command (needs only Python 3.10+).

    python3 course.py open     # create .venv, install the course, open JupyterLab on notebooks/ (extra arguments
                               # go to JupyterLab, e.g. `python3 course.py open --no-browser --port 8899`)
    python3 course.py test     # create .venv, install the test tools, run the whole test suite (also on real Ray;
                               # --no-ray runs only the course runtime's part, --only-ray only the real-Ray part)
    python3 course.py student DIR   # write a copy of the course without the exercise solutions

Both create a virtual environment in .venv the first time and reuse it afterwards.
Extra arguments after `test` go to pytest (e.g. `python3 course.py test -k objects`).
"""
import os
import re
import signal
import subprocess
import sys
import time
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
PYTHON = os.path.join(VENV, "Scripts" if os.name == "nt" else "bin", "python")


def setup(extra):
    if sys.version_info < (3, 10):
        sys.exit(f"The course needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    if not os.path.exists(PYTHON):
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except Exception as error:  # Debian/Ubuntu ship venv's pip support separately
            sys.exit(f"Could not create a virtual environment ({error}). On Debian/Ubuntu: "
                     f"apt install python3-venv, then run this command again.")
    stamp = str(os.path.getmtime(os.path.join(ROOT, "pyproject.toml")))
    if not any(installed(name, stamp) for name in COVERED_BY.get(extra, [extra])):
        print(f"Installing the course runtime and its [{extra}] tools ...", flush=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extra}]"], check=True)
        with open(os.path.join(VENV, f".installed-{extra}"), "w") as f:
            f.write(stamp)


# The extras that already hold everything an extra needs: [test] has all of [course] (JupyterLab, ipykernel,
# matplotlib), so `open` after `test` installs nothing.
COVERED_BY = {"course": ["course", "test"], "test": ["test"]}


def installed(extra, stamp):
    marker = os.path.join(VENV, f".installed-{extra}")
    return os.path.exists(marker) and open(marker).read() == stamp


def jupyter_lab_command(args):
    """`jupyter lab notebooks` with the user's arguments. As root (a workshop's Docker container, a CI machine)
    JupyterLab refuses to start unless told `--allow-root`, so we add it there."""
    command = [PYTHON, "-m", "jupyter", "lab", "notebooks", *args]
    running_as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if running_as_root and not any(a == "--allow-root" or a.startswith("--ServerApp.allow_root") for a in args):
        command.append("--allow-root")
    return command


# Tests written only against the public API: they run on the course runtime and on real Ray.
CONFORMANCE_TESTS = ["tests/test_lifecycle.py", "tests/test_tasks.py", "tests/test_objects.py",
                     "tests/test_errors.py", "tests/test_resources.py", "tests/test_actors.py",
                     "tests/test_actor_pool_and_queue.py", "tests/test_actor_resources.py",
                     "tests/test_serialization_properties.py", "tests/test_task_trees.py",
                     "tests/test_multiprocessing_pool.py", "tests/test_generators.py",
                     "tests/test_placement_groups.py", "tests/test_scheduling_strategies.py",
                     "tests/test_runtime_env.py", "tests/test_concurrency_groups.py",
                     "tests/test_cancel_actor_calls.py", "tests/test_state_api.py", "tests/test_tqdm_ray.py"]
RAY_SCRIPTS = ["extra/code/parallel_process.py", "extra/code/tasks_pipeline.py", "extra/code/actor_counter.py"]
# The Ray the real-Ray half and notebook 8 use ([default]: `ray start`'s dashboard, the state API, `ray job submit`).
RAY_REQUIREMENT = "ray[default]==2.60.0"
# Notebooks that need Ray itself (notebook 8 starts a three-node cluster): run by the real-Ray half only, outputs compared.
REAL_RAY_NOTEBOOKS = ["notebooks/08_laptop_to_cluster.ipynb"]
# Everything on a real two-node Ray cluster that tests/ray_cluster.py starts and stops: every notebook and script
# through RAY_ADDRESS, the course helpers there, a wrong address or token; notebook 8's checks fail on its stubs.
CLUSTER_TESTS = ["tests/test_cluster.py"]


STAGES = []  # (title, exit code, seconds, the tests it named as failed), for the summary at the end
LEFT_BEHIND = []  # processes and /dev/shm segments a half left behind, for the summary too
# pytest names a failed test in its -v progress line ("ID FAILED [ 5%]") and, with -rf, in its summary ("FAILED ID")
FAILED_TEST = re.compile(r"^(\S+::.*?) (?:FAILED|ERROR)\b|^(?:FAILED|ERROR) (\S+::\S*)")


def run_stage(title, command, extra_env=None):
    """Run one stage with the venv's Python, echoing its output; return 1 if it failed."""
    print(f"\n=== {title} ===", flush=True)
    begin, failures = time.monotonic(), []
    if command[:2] == ["-m", "pytest"] and sys.stdout.isatty():
        command = [*command, "--color=yes"]  # its output comes through a pipe, which would turn colours off
    with subprocess.Popen([PYTHON, *command], env={**os.environ, **(extra_env or {})}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1) as stage:
        for line in stage.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            found = FAILED_TEST.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
            if found and (found[1] or found[2]) not in failures:
                failures.append(found[1] or found[2])
    STAGES.append((title, stage.returncode, time.monotonic() - begin, failures))
    return int(stage.returncode != 0)


def left_behind(leftovers):
    """Report what a half left behind (now, and in the summary); return 1 if anything was."""
    for line in leftovers:
        print(f"LEFT BEHIND: {line}", file=sys.stderr)
    LEFT_BEHIND.extend(leftovers)
    return int(bool(leftovers))


def print_summary():
    """One line per stage, then what failed: a long log's last screen says where to look."""
    print("\n=== summary ===")
    for title, code, seconds, _ in STAGES:
        print(f"{'FAILED' if code else 'ok':>6} {seconds:6.0f} s  {title}")
    for title, code, _, failures in STAGES:
        if code:  # below 0: killed by that signal (e.g. -6, an abort), before it could name a failed test
            print(f"\n{title} (exit code {code}):", *(failures or ["no failed test named: see the stage's output"]),
                  sep="\n  ")
    for line in LEFT_BEHIND:
        print(f"LEFT BEHIND: {line}")
    sys.stdout.flush()


def has_ray():
    """Whether the venv has the Ray of RAY_REQUIREMENT, with its [default] extras (aiohttp comes with them)."""
    version = RAY_REQUIREMENT.split("==")[1]
    return subprocess.run([PYTHON, "-c", f"import ray, aiohttp; assert ray.__version__ == {version!r}"],
                          capture_output=True).returncode == 0


def install_ray():
    """Real Ray for the second half of the suite. Required in CI; elsewhere, skipped with a note if unavailable."""
    if has_ray():
        return True
    print(f"Installing {RAY_REQUIREMENT} (for the tests on real Ray; skip them with --no-ray) ...", flush=True)
    if subprocess.run([PYTHON, "-m", "pip", "install", "-q", RAY_REQUIREMENT]).returncode == 0:
        return True
    if os.environ.get("CI"):
        sys.exit("Could not install Ray, which CI needs for the tests on real Ray.")
    print("Ray could not be installed here: the tests on real Ray were NOT run.", file=sys.stderr)
    return False


def leftover_processes(grace_s=5.0):
    """Worker processes of the course runtime still running after the tests (they must all have exited)."""
    import time
    deadline = time.monotonic() + grace_s
    while True:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else []):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "course_runtime.worker" in cmdline:
                found.append(f"process {pid}: {cmdline.strip()}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def ray_cluster_folders():
    """The folders of the Ray clusters that tests/ray_cluster.py and notebook 8 start (one each, in /tmp)."""
    import glob
    return set(glob.glob("/tmp/raycl-*") + glob.glob("/tmp/ray08-*"))


def leftover_ray_processes(before):
    """Processes of a Ray cluster that this run started and did not stop (raylets, GCS, dashboard, workers)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from ray_cluster import processes_of
    return [f"process {pid} of the Ray cluster in {folder}"
            for folder in sorted(ray_cluster_folders() - before) for pid in processes_of(folder)]


def install_ray_for_notebook_8():
    """Notebook 8 needs Ray itself: install it once, next to the course. Where that fails (no Ray package for this
    platform, no network), say so and go on: the other notebooks need only the course runtime."""
    marker = os.path.join(VENV, ".ray-install-tried")
    if os.path.exists(marker) or has_ray():
        return
    print(f"Installing {RAY_REQUIREMENT} for notebook 8 (a minute or two, once) ...", flush=True)
    result = subprocess.run([PYTHON, "-m", "pip", "install", "-q", RAY_REQUIREMENT], capture_output=True, text=True)
    open(marker, "w").close()
    if result.returncode != 0:
        print(f"Ray could not be installed here, so notebook 8 (a Ray cluster) will not run; every other notebook "
              f"works. pip said: {(result.stderr.strip().splitlines() or ['(nothing)'])[-1]}\n"
              f"To try again: {PYTHON} -m pip install \"{RAY_REQUIREMENT}\"", file=sys.stderr, flush=True)


def leftover_segments(before):
    if not os.path.isdir("/dev/shm"):
        return []
    return [f"/dev/shm/{name}" for name in sorted(set(os.listdir("/dev/shm")) - before)]


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "open":
        setup("course")
        install_ray_for_notebook_8()
        os.chdir(ROOT)
        command = jupyter_lab_command(sys.argv[2:])
        os.execv(command[0], command)
    elif command == "test":
        args = [a for a in sys.argv[2:] if a not in ("--no-ray", "--only-ray")]
        with_ray = "--no-ray" not in sys.argv[2:]
        with_course = "--only-ray" not in sys.argv[2:]
        setup("test")
        os.chdir(ROOT)
        # A command started in the background by a script (`cmd &`, nohup) has Ctrl-C ignored, and so would every
        # Ray worker under it: Ray cancels a running task with a simulated Ctrl-C, which is then lost.
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
        skip_real_ray_notebooks = [f"--ignore={path}" for path in REAL_RAY_NOTEBOOKS]
        failed = 0
        # 1. The unit tests, then every notebook executed and compared with its stored outputs (nbval).
        if with_course:
            failed += run_stage("course runtime: tests and notebooks", [
                "-m", "pytest", "tests", "notebooks", "--nbval", "--nbval-current-env",
                "--nbval-sanitize-with", "notebooks/sanitize.cfg", *skip_real_ray_notebooks, *args])
            # The same public-API tests with the runtime's fast paths switched off (course_runtime/fast_paths.py):
            # the plain path a learner reads must behave exactly the same.
            failed += run_stage("course runtime: conformance tests, fast paths off (COURSE_RUNTIME_FAST_PATHS=0)",
                                ["-m", "pytest", *CONFORMANCE_TESTS, *args], {"COURSE_RUNTIME_FAST_PATHS": "0"})
            failed += left_behind(leftover_processes() + leftover_segments(shm_before))
        # 2. The same public-API tests, the notebooks and the scripts on real Ray (see README: one setting).
        if with_ray and install_ray():
            ray_env = {"COURSE_TEST_BACKEND": "ray", "COURSE_BACKEND": "ray"}
            failed += run_stage("real Ray: conformance tests", ["-m", "pytest", *CONFORMANCE_TESTS, *args], ray_env)
            failed += run_stage("real Ray: every notebook, top to bottom", [
                "-m", "pytest", "notebooks", "--nbval-lax", "--nbval-current-env", *skip_real_ray_notebooks, *args],
                ray_env)
            for script in RAY_SCRIPTS:
                failed += run_stage(f"real Ray: {script}", [script], ray_env)
            clusters_before = ray_cluster_folders()
            failed += run_stage("real Ray: notebook 8 on its own three-node cluster, outputs compared", [
                "-m", "pytest", *REAL_RAY_NOTEBOOKS, "--nbval", "--nbval-current-env",
                "--nbval-sanitize-with", "notebooks/sanitize.cfg", *args], ray_env)
            failed += run_stage("real Ray: a two-node cluster through RAY_ADDRESS (every notebook and script, "
                                "the helpers, bad input)", ["-m", "pytest", *CLUSTER_TESTS, "-rsx", *args], ray_env)
            failed += left_behind(leftover_ray_processes(clusters_before))
        print_summary()
        sys.exit(1 if failed else 0)
    elif command == "student":
        setup("course")
        os.execv(PYTHON, [PYTHON, os.path.join(ROOT, "tools", "notebooks.py"), "student", *sys.argv[2:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
