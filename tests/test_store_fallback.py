"""The object store's fallback for systems without memfd (macOS): segments are files in a private per-session
folder. Forced here with COURSE_RUNTIME_SHM=files, in subprocesses so the setting applies from import time."""
import glob
import os
import signal
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.course_only

SCRIPT = """
import sys, time, numpy as np
import course_runtime as ray
ray.init(num_cpus=1)
ref = ray.put(np.ones(2_000_000))

@ray.remote
def total(a):
    return float(a.sum())

assert ray.get(total.remote(ref)) == 2_000_000.0
folder = ray.session.driver().raylet.store.folder
print(folder, flush=True)
if sys.argv[1] == "hang":
    time.sleep(60)
ray.shutdown()
"""


def start(mode):
    env = {**os.environ, "COURSE_RUNTIME_SHM": "files"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, mode], stdout=subprocess.PIPE, text=True, env=env)


def test_file_segments_are_private_and_removed_at_shutdown():
    process = start("exit")
    folder = process.stdout.readline().strip()
    assert process.wait(timeout=60) == 0
    assert os.path.basename(folder).startswith("course-runtime-")
    assert not os.path.exists(folder)


def test_a_killed_session_is_swept_by_the_next_init():
    process = start("hang")
    folder = process.stdout.readline().strip()
    assert os.stat(folder).st_mode & 0o777 == 0o700 and os.listdir(folder)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert os.path.exists(folder)  # nobody could clean up at SIGKILL...
    survivor = start("exit")  # ...so the next session does
    survivor.stdout.readline()
    assert survivor.wait(timeout=60) == 0
    assert not os.path.exists(folder)
    assert not glob.glob(os.path.join(tempfile.gettempdir(), f"course-runtime-{process.pid}-*"))
