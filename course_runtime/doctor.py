"""Is this machine ready for the course? `python -m course_runtime doctor` prints one row per check and, for each
problem, what to do. The last check starts the runtime for real: a task, an actor call and a stored array.
Exit status 1 when something would break the course (a FAIL); warnings alone leave it 0.

Not part of Ray: an instructor's tool. It needs only the standard library, so it runs even where the course's
dependencies are missing (`python course_runtime/doctor.py` works too).
"""
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from collections import namedtuple

OK, WARN, FAIL = "OK", "WARN", "FAIL"
Row = namedtuple("Row", "check status found fix", defaults=("",))
INSTALL = "from the course folder: `python3 course.py open` (it installs everything), or `pip install -e \".[course]\"`"
GiB = 2**30

# What the notebooks import, with the oldest versions the course supports (pyproject.toml's [course] extra).
NOTEBOOK_PACKAGES = [("numpy", "1.22"), ("cloudpickle", "2.0"), ("matplotlib", "3.5"), ("jupyterlab", "4"),
                     ("ipykernel", "6")]


def check_python(version=None):
    version = tuple((version or sys.version_info)[:3])
    found = ".".join(map(str, version)) + f" ({sys.executable})"
    if version < (3, 10):
        return Row("Python", FAIL, found, "install Python 3.10 or newer and create the environment with it")
    return Row("Python", OK, found)


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_quota():
    """The CPUs a container may use (cgroups' quota), or None where there is no such limit."""
    v2 = _read("/sys/fs/cgroup/cpu.max").split()  # "max 100000" or "150000 100000"
    quota, period = v2 if len(v2) == 2 else (_read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                                             _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
    if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
        return int(quota) / int(period)
    return None


def check_cpus(count=None, quota=None):
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        quota = cpu_quota()
    found = f"{count}" + (f", container quota {quota:g} CPUs" if quota is not None and quota < count else "")
    if min(count, quota or count) < 2:
        return Row("CPU cores", WARN, found, "the notebooks run 2 tasks at a time (num_cpus=2): everything works on "
                   "1 core, but the parallel speed-ups and timelines will not show it; give the machine 2+ cores")
    return Row("CPU cores", OK, found)


def memory_available():
    """(total bytes, available bytes, container limit or None), from /proc and cgroups where there are any."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 8 * GiB
    available = total
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:]}
        available = info.get("MemAvailable", total)
    except (OSError, ValueError, IndexError):
        pass
    limit = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                value = f.read().strip()
            if value.isdigit() and int(value) < total:
                limit = int(value)
            break
        except OSError:
            continue
    return total, available, limit


def check_memory(total=None, available=None, limit=None):
    if total is None:
        total, available, limit = memory_available()
    usable = min(available, limit) if limit else available
    found = f"{total / GiB:.1f} GiB, {available / GiB:.1f} GiB available"
    if limit:
        found += f", container limit {limit / GiB:.1f} GiB"
    if usable < 1 * GiB:
        return Row("Memory", FAIL, found, "the notebooks need about 1 GiB free (notebook 4 stores arrays of 80 MB): "
                   "close other programs or give the machine/container more memory")
    if usable < 2 * GiB:
        return Row("Memory", WARN, found, "less than 2 GiB free: close other programs while the course runs")
    return Row("Memory", OK, found)


def check_shared_memory(use_memfd=None, shm="/dev/shm"):
    """The object store puts large objects in memfd segments on Linux (anonymous memory, no file in /dev/shm, not
    limited by its size); elsewhere in files in a private temporary folder."""
    if use_memfd is None:
        use_memfd = hasattr(os, "memfd_create") and os.environ.get("COURSE_RUNTIME_SHM") != "files"
    if use_memfd:
        try:
            usage = shutil.disk_usage(shm)
            size = f"/dev/shm {usage.total / 2**20:.0f} MiB ({usage.free / 2**20:.0f} MiB free)"
        except OSError:
            size = "no /dev/shm"
        return Row("Object store memory", OK, f"memfd, not limited by /dev/shm; {size}")
    import tempfile
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    found = f"files in {folder} ({free / GiB:.1f} GiB free)"
    if free < 1 * GiB:
        return Row("Object store memory", WARN, found, f"the object store writes large objects under {folder}: "
                   f"free some space there, or point TMPDIR at a folder with 1 GiB free")
    return Row("Object store memory", OK, found)


def check_packages(packages=NOTEBOOK_PACKAGES):
    rows = []
    for name, oldest in packages:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            rows.append(Row(f"package {name}", FAIL, "not installed", f"install it: {INSTALL}"))
            continue
        if _version_tuple(version) < _version_tuple(oldest):
            rows.append(Row(f"package {name}", FAIL, f"{version}, the course needs >= {oldest}",
                            f"upgrade it: pip install -U \"{name}>={oldest}\""))
        else:
            rows.append(Row(f"package {name}", OK, version))
    return rows


def _version_tuple(version):
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def kernel_python():
    """The Python that JupyterLab runs the notebooks in (its 'python3' kernel), or None if there is no such kernel."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return None
    try:
        python = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        return None
    if python in ("python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        python = sys.executable  # jupyter_client starts such a kernel with the Python that runs JupyterLab
    return python


def check_kernel():
    """The kernel JupyterLab starts for the notebooks must be a Python that can import course_runtime."""
    python = kernel_python()
    if python is None:
        return Row("Jupyter kernel", FAIL, "no 'python3' kernel (or no jupyter_client)",
                   f"install JupyterLab and ipykernel in this environment: {INSTALL}")
    try:
        probe = subprocess.run([python, "-c", "import ipykernel, os, course_runtime; "
                                "print(os.path.dirname(os.path.dirname(course_runtime.__file__)))"],
                               capture_output=True, text=True, timeout=60)
        course = probe.stdout.strip() if probe.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        course = None
    if not course:
        return Row("Jupyter kernel", FAIL, f"python3 -> {python}, which cannot import ipykernel and course_runtime",
                   f"start JupyterLab from the course's environment ({INSTALL}), or install the course into the "
                   f"kernel's Python: {python} -m pip install -e .")
    return Row("Jupyter kernel", OK, f"python3 -> {python}, course_runtime from {course}")


def check_backend():
    """COURSE_BACKEND picks what `from course_runtime import ray` gives the notebooks (see backend.py)."""
    choice = (os.environ.get("COURSE_BACKEND") or "course").strip().lower()
    if choice == "course":
        return Row("Backend (COURSE_BACKEND)", OK, "course runtime")
    if choice == "ray":
        if _installed("ray"):
            address = os.environ.get("RAY_ADDRESS")
            return Row("Backend (COURSE_BACKEND)", OK, f"real Ray{' at ' + address if address else ', local'}")
        return Row("Backend (COURSE_BACKEND)", FAIL, "ray, but Ray is not installed",
                   "pip install -e \".[ray]\", or unset COURSE_BACKEND to use the course runtime")
    return Row("Backend (COURSE_BACKEND)", FAIL, f"{choice!r} is not a backend",
               "unset COURSE_BACKEND (the course runtime), or set it to 'ray'")


def _installed(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_ray():
    version = _installed("ray")
    if version:
        return Row("Real Ray (optional)", OK, f"{version}: COURSE_BACKEND=ray runs the notebooks on it")
    return Row("Real Ray (optional)", OK, "not installed; not needed (pip install -e \".[ray]\" to compare)")


def check_gpus():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = f"CUDA_VISIBLE_DEVICES={visible!r}"
    elif shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
            gpus = [line for line in listing.splitlines() if line.startswith("GPU ")]
            found = f"{len(gpus)} NVIDIA GPU(s)" + (f": {gpus[0].split('(')[0].strip()}" if gpus else "")
        except (OSError, subprocess.SubprocessError):
            found = "nvidia-smi did not answer"
    else:
        found = "none"
    return Row("GPUs (optional)", OK, f"{found}; notebook 5 declares logical GPUs, so none are needed")


SMOKE_TEST = """
import time
started = time.perf_counter()
import numpy as np
import course_runtime as ray
ray.init(num_cpus=2)
@ray.remote
def square(x):
    return x * x
@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self):
        self.n += 1
        return self.n
assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9], "task results"
counter = Counter.remote()
assert ray.get([counter.add.remote() for _ in range(3)]) == [1, 2, 3], "actor calls"
assert ray.get(ray.put(np.ones(1_000_000))).sum() == 1_000_000, "a stored array"
ray.shutdown()
print(f"{time.perf_counter() - started:.2f}")
"""


def check_runtime(timeout=120):
    """Start the course runtime in the kernel's Python: init, tasks, an actor, an 8 MB array in the store, shutdown."""
    try:
        result = subprocess.run([kernel_python() or sys.executable, "-c", SMOKE_TEST], capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return Row("Runtime smoke test", FAIL, f"did not finish within {timeout} s",
                   "run it again on a quieter machine; if it hangs again, report it with the output of "
                   "`python -X faulthandler -m course_runtime doctor`")
    if result.returncode != 0:
        error = (result.stderr.strip().splitlines() or ["no error message"])[-1]
        fix = f"install the course in this Python: {INSTALL}" if "No module named" in error else \
            "read the error; the instructor guide (docs/instructor_guide.md) lists the usual causes"
        return Row("Runtime smoke test", FAIL, error[:200], fix)
    seconds = result.stdout.strip().splitlines()[-1]
    return Row("Runtime smoke test", OK, f"init, 4 tasks, 3 actor calls, an 8 MB array, shutdown: {seconds} s")


def check_user():
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Row("User", WARN, "root", "JupyterLab refuses to run as root: start it with --allow-root "
                   "(`python3 course.py open --allow-root`), or use an ordinary user")
    return Row("User", OK, "not root")


CHECKS = [check_python, check_cpus, check_memory, check_shared_memory, check_packages, check_kernel, check_backend,
          check_ray, check_gpus, check_user, check_runtime]


def run_checks(checks=None):
    rows = []
    for check in checks or CHECKS:
        try:
            result = check()
        except Exception as error:  # a broken check is a finding, not a crash of the doctor
            result = Row(check.__name__.replace("check_", ""), FAIL, f"{type(error).__name__}: {error}",
                         "report this error to the course authors")
        rows.extend(result if isinstance(result, list) else [result])
    return rows


def format_table(rows):
    width = max(len(row.check) for row in rows)
    lines = [f"{'check':<{width}}  status  found", f"{'-' * width}  ------  {'-' * 40}"]
    lines += [f"{row.check:<{width}}  {row.status:<6}  {row.found}" for row in rows]
    return "\n".join(lines)


def main(argv=None, checks=None):
    print(f"Course readiness check: {platform.system()} {platform.machine()}, Python {platform.python_version()}\n",
          flush=True)
    rows = run_checks(checks)
    print(format_table(rows))
    problems = [row for row in rows if row.status != OK]
    if problems:
        print("\nWhat to do:")
        for row in problems:
            print(f"  {row.status} {row.check}: {row.fix}")
    failed = [row for row in rows if row.status == FAIL]
    if failed:
        print(f"\nNOT READY: {len(failed)} check(s) failed; the course will not work until they are fixed.")
        return 1
    print("\nREADY" + (" (see the warnings above)." if problems else ": this machine can run the course."))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
