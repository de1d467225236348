"""extra/code/actor_counter.py, run as a learner runs it (`python extra/code/actor_counter.py` from the repository root):
a global variable changed by tasks never reaches the driver; a Counter actor shared by the tasks counts everything."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "extra/code/actor_counter.py"


def run_script(*args):
    result = subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_actor_counter_counts_every_increment_and_the_global_stays_put():
    out = run_script()
    assert "8 tasks each add 1 to a counter 100 times: 800 increments." in out
    assert "global variable: the driver still sees 0 (the workers' own copies add up to 800)" in out
    assert re.search(r"^Counter actor: +800 \(every increment counted", out, re.M), out
    assert re.search(r"^800 actor calls from 8 tasks took \d+\.\d\d s$", out, re.M), out


def test_actor_counter_takes_its_sizes_from_the_command_line():
    out = run_script("--tasks", "3", "--increments", "7", "--num-cpus", "1")
    assert "3 tasks each add 1 to a counter 7 times: 21 increments." in out
    assert "the driver still sees 0 (the workers' own copies add up to 21)" in out
    assert re.search(r"^Counter actor: +21 ", out, re.M), out


def test_actor_counter_also_runs_from_another_folder(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, SCRIPT), "--tasks", "2", "--increments", "5"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^Counter actor: +10 ", result.stdout, re.M), result.stdout
