"""`python3 course.py open`, run the way learners run it: as root (a workshop's Docker container, this project's CI
machines) and as an ordinary user.

Each test starts the command in a session of its own, with a free port on 127.0.0.1 and no browser (arguments that the
command passes on to JupyterLab), waits for the URL that JupyterLab prints, fetches the lab page and the notebook list
over HTTP, stops the server with SIGTERM, and checks that no process of that session is left and the port is closed.

The command reuses the course's `.venv` (created by `python3 course.py test` or `open`): nothing is installed here.
The ordinary user is `nobody`, with a fresh temporary home; as a non-root tester, the root test is skipped and the
ordinary-user test runs as the tester.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
START_TIMEOUT_S = 120  # JupyterLab starts in a few seconds; a loaded 2-core machine can take much longer
STOP_TIMEOUT_S = 30
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]+)")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="starts and stops processes the POSIX way")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def processes_in_session(sid):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) == sid:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(f"{pid}: {cmdline}")
        except (OSError, ProcessLookupError):
            continue
    return found


def python3():
    """The interpreter a learner types: `python3` on the PATH (course.py then execs the .venv's own Python)."""
    return shutil.which("python3") or sys.executable


def need_venv():
    """The .venv that `course.py open` will use as it is: this test must not install anything."""
    sys.path.insert(0, ROOT)
    try:
        import course
    finally:
        sys.path.remove(ROOT)
    stamp = str(os.path.getmtime(os.path.join(ROOT, "pyproject.toml")))
    if not os.path.exists(VENV_PYTHON) or not any(course.installed(e, stamp) for e in course.COVERED_BY["course"]):
        pytest.skip("no up-to-date .venv: `python3 course.py test` (which runs this test) creates it first")


def clean_env(home):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "PYTEST_", "COURSE_", "RAY_", "IPYTHON", "XDG_"))}
    env["HOME"] = home
    env["JUPYTER_RUNTIME_DIR"] = os.path.join(home, "jupyter-runtime")  # the server's files: removed with home
    return env


def run_open_command(prefix, env, home, interpreter=None):
    """Start `python3 course.py open`, fetch what it serves, stop it; return what was seen."""
    port = free_port()
    log_path = os.path.join(home, "open.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*prefix, interpreter or python3(), os.path.join(ROOT, "course.py"), "open",
             "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0"],
            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output():
        with open(log_path, errors="replace") as f:
            return f.read()

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not URL.search(output()):
            assert process.poll() is None, f"`course.py open` exited with {process.returncode}:\n{output()[-3000:]}"
            assert time.monotonic() < deadline, f"no URL printed within {START_TIMEOUT_S} s:\n{output()[-3000:]}"
            time.sleep(0.3)
        url = URL.search(output())
        assert int(url.group(1)) == port, "the --port given to the command reached JupyterLab"
        token = url.group(2)
        # JupyterLab prints its URL a moment before it listens (it binds its port on the first turn of its event
        # loop), so on a loaded machine the first request can be refused: wait for the port, as a browser retries.
        while not port_open(port):
            assert process.poll() is None, f"`course.py open` exited with {process.returncode}:\n{output()[-3000:]}"
            assert time.monotonic() < deadline, f"port {port} not open within {START_TIMEOUT_S} s:\n{output()[-3000:]}"
            time.sleep(0.1)
        with urllib.request.urlopen(url.group(0), timeout=30) as response:
            page = response.read().decode()
            assert response.status == 200
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            listing = [item["name"] for item in json.load(response)["content"]]
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)  # what Ctrl+C twice, or `docker stop`, does: the server shuts down
        try:
            process.wait(STOP_TIMEOUT_S)
            stopped = True
        except subprocess.TimeoutExpired:
            stopped = False
        left = processes_in_session(process.pid)
        if left or not stopped:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert stopped, f"JupyterLab did not stop within {STOP_TIMEOUT_S} s of SIGTERM"
    assert not left, f"left running after the server stopped: {left}"
    assert not port_open(port), f"port {port} still open after the server stopped"
    return page, listing, output()


def check_served(page, listing, log):
    assert "JupyterLab" in page, f"the lab page is not JupyterLab's:\n{page[:500]}"
    assert "01_introduction.ipynb" in listing, f"the server does not serve notebooks/: {listing}"
    assert "Running as root is not recommended" not in log


@pytest.fixture(autouse=True)
def _test_timeout():
    """Overrides conftest's 60 s limit: the server gets START_TIMEOUT_S to start, STOP_TIMEOUT_S to stop."""

    def on_alarm(signum, frame):
        pytest.fail("`course.py open` test did not finish in time (hang?)", pytrace=True)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(START_TIMEOUT_S + STOP_TIMEOUT_S + 60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def home():
    path = tempfile.mkdtemp(prefix="course-open-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the tester is not root")
def test_open_command_works_as_root(home):
    need_venv()
    page, listing, log = run_open_command([], clean_env(home), home)
    check_served(page, listing, log)


def venv_base_prefix():
    """The folder of the Python that created .venv (its standard library lives there)."""
    with open(os.path.join(ROOT, ".venv", "pyvenv.cfg")) as f:
        home_line = next(line for line in f if line.split("=")[0].strip() == "home")
    return os.path.dirname(home_line.split("=", 1)[1].strip())  # home = <prefix>/bin


def closed_ancestor(path):
    """The highest folder above `path` that other users cannot enter (e.g. /root, mode 700), or None."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    for i in range(1, len(parts)):
        folder = os.sep + os.path.join(*parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def ordinary_user_prefix(uid, gid, home):
    """The command prefix that runs a command as uid/gid. When the .venv's Python (or the checkout) sits under a folder
    that other users cannot enter (pyenv in /root on CI machines), the command runs in a mount namespace of its own
    where that folder is replaced by an empty one holding read-only views of just those two folders: nothing changes
    outside that namespace, and the user sees no other file of root's."""
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    needed = [venv_base_prefix(), ROOT]
    blocked = sorted({closed_ancestor(p) for p in needed} - {None})
    if not blocked:
        return drop
    if not shutil.which("unshare"):
        pytest.skip(f"{blocked} cannot be entered by an ordinary user, and unshare (util-linux) is missing")
    views = [(path, os.path.join(home, f".view{n}")) for n, path in enumerate(needed)
             if any(path.startswith(b + os.sep) for b in blocked)]
    steps = [f"mkdir -p {view}" for _, view in views]
    steps += [f"mount --bind {path} {view} && mount -o remount,bind,ro {view}" for path, view in views]
    steps += [f"mount -t tmpfs -o mode=755,size=1m tmpfs {b}" for b in blocked]
    steps += [f"mkdir -p {path} && mount --bind {view} {path}" for path, view in views]
    script = " && ".join(steps) + ' && exec "$@"'
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{blocked} cannot be entered by an ordinary user, and this machine allows no private mount "
                    f"namespace to show it the course's Python: {probe.stderr.strip()[:200]}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *drop]


def test_open_command_works_as_an_ordinary_user(home):
    need_venv()
    if os.geteuid() != 0:  # we are an ordinary user already
        prefix = []
        interpreter = python3()
    else:
        import pwd
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no unprivileged user `nobody` on this machine to run the command as")
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is missing: cannot drop root to run the command as an ordinary user")
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        prefix = ordinary_user_prefix(nobody.pw_uid, nobody.pw_gid, home)
        # The learner's `python3`: the interpreter that created .venv (root's PATH may hold shims a user cannot run).
        interpreter = os.path.join(venv_base_prefix(), "bin", "python3")
        who = subprocess.run([*prefix, interpreter, "-c", "import os; print(os.geteuid())"],
                             capture_output=True, text=True, env=clean_env(home))
        assert who.returncode == 0, who.stderr
        assert who.stdout.strip() == str(nobody.pw_uid), "the command runs as the ordinary user, not as root"
    page, listing, log = run_open_command(prefix, clean_env(home), home, interpreter)
    check_served(page, listing, log)
