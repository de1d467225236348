"""Benchmark: course_runtime side by side with ProcessPoolExecutor and real Ray, in one run.

    python bench/benchmark.py                      # everything, 5 repetitions (a few minutes; more with Ray)
    python bench/benchmark.py --quick              # reduced set, under a minute: what CI runs to catch breakage
    python bench/benchmark.py --backends course,ppe --repeat 3 --num-cpus 2
    python bench/benchmark.py --compare 4b0187e     # this tree (fast paths on and off) against a commit's runtime

The same workloads run on three backends:

* ``course``: ``import course_runtime as ray`` (this repository's runtime);
* ``ppe``:    ``concurrent.futures.ProcessPoolExecutor`` (forkserver, ``max_workers=num_cpus``), the standard library's
  answer to "run this function in other processes";
* ``ray``:    real Ray, when ``import ray`` works (otherwise it is skipped with a note).

Because course_runtime implements Ray's API, the Ray workloads below are written once and run unchanged on both
``course_runtime`` and ``ray``: only the module differs. ProcessPoolExecutor gets the closest equivalent code.

How a run is organised (so that one backend cannot disturb another, and start-up is measured honestly):

1. The parent process (``main``) starts one *worker* subprocess per backend, one after the other:
   ``python bench/benchmark.py --worker BACKEND --workloads ...``. It gives each a time limit.
2. The worker runs the workloads and prints one ``@@bench {...json...}`` line per figure as soon as it has it,
   so a worker that hangs or crashes still reports everything it measured before.
3. Start-up cannot be measured twice in one process (the second ``import`` is free), so the ``startup`` workload
   starts a fresh ``--probe-startup`` process per repetition.
4. The parent prints the table (figures, ratios, the goals of issue 6 with a ✓/✗ column) and saves
   ``bench/results/latest.json`` and ``bench/results/latest.png``.

A workload that raises is recorded as ``"error: <message>"`` and the run goes on; one that exceeds its time limit
is recorded as an error too.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
MARK = "@@bench "  # prefix of the result lines a worker prints on stdout

BACKENDS = ["course", "ppe", "ray"]
BACKEND_TITLES = {"course": "course_runtime", "ppe": "ProcessPoolExecutor", "ray": "Ray"}


# ---------------------------------------------------------------------------------------------------------------
# The figures: what each one measures, its unit, whether more is better, and the goal from issue 6.
# ---------------------------------------------------------------------------------------------------------------

class Figure:
    def __init__(self, key, title, unit, higher_is_better, goal=None, check=None, ratio=True, peers_of=None):
        self.key, self.title, self.unit = key, title, unit
        self.peers_of = peers_of or key  # the figure whose peer values the ratios and the goal compare with
        self.ratio = ratio  # False where a ratio means nothing (a growth of a few MB either way is noise)
        self.higher_is_better = higher_is_better
        self.goal = goal  # text shown in the table
        self.check = check  # check(course_value, peers: {"ppe": v, "ray": v}) -> True / False / None (can't tell)


def _ratio_at_least(peer, factor):
    def check(value, peers):
        return None if peers.get(peer) is None else value >= factor * peers[peer]
    return check


def _startup_check(value, peers):
    fast = value < 0.5
    if peers.get("ray") is None:
        return fast  # Ray not measured: only the absolute part of the goal can be checked
    return fast and peers["ray"] / value >= 20


FIGURES = [
    Figure("startup", "start-up: import+init+1st result", "s", False, "< 0.5 s and ≥ 20x faster than Ray",
           _startup_check),
    Figure("shutdown", "shutdown", "s", False),
    Figure("tasks_serial", "tasks one at a time", "tasks/s", True, "≥ 1.5x PPE", _ratio_at_least("ppe", 1.5)),
    Figure("tasks_pipelined", "5,000 tasks pipelined", "tasks/s", True, "≥ 1.5x PPE",
           _ratio_at_least("ppe", 1.5)),
    Figure("actor_serial", "actor calls one at a time", "calls/s", True, "≥ 3,000/s", lambda v, p: v >= 3000),
    Figure("actor_pipelined", "5,000 actor calls pipelined", "calls/s", True, "≥ 8,000/s", lambda v, p: v >= 8000),
    Figure("put_100mb", "put 100 MB array", "GB/s", True, "≥ 2 GB/s", lambda v, p: v >= 2),
    Figure("get_stored_100mb", "get stored 100 MB array", "ms", False, "< 1 ms", lambda v, p: v < 1),
    Figure("read_shared_8", "8 tasks read one 100 MB array", "s", False, "< 0.2 s", lambda v, p: v < 0.2),
    Figure("wait_10k", "tiny tasks consumed with wait", "s", False),
    Figure("images_8", "seed example: 8 images, 1 s each", "s", False),
    Figure("qsort_2m", "quicksort tree of tasks, 2M items", "s", False),
    Figure("qsort_4m", "quicksort tree, 4M items (peers: 2M)", "s", False, "< Ray's time for 2M items",
           lambda v, p: None if p.get("ray") is None else v < p["ray"], peers_of="qsort_2m"),
    Figure("driver_memory", "driver RSS growth over many tasks", "MB", False, "< 50 MB (100,000 tasks)",
           lambda v, p: v < 50, ratio=False),
    Figure("stream_10k", "10,000 items streamed by one generator task", "items/s", True, "≥ 5x Ray",
           _ratio_at_least("ray", 5)),
]
FIGURE = {f.key: f for f in FIGURES}

# Workloads in the order a worker runs them. "startup" yields two figures (startup and shutdown), "actors" two.
# driver_memory runs before the 100 MB workloads so that their large allocations cannot blur it.
WORKLOADS = ["startup", "tasks_serial", "tasks_pipelined", "actors", "driver_memory", "wait_10k", "stream_10k",
             "put_100mb", "get_stored_100mb", "read_shared_8", "images_8", "qsort_2m", "qsort_4m"]
QUICK_WORKLOADS = [w for w in WORKLOADS if w != "images_8"]


class Sizes:
    """How much work each workload does; --quick makes it smaller."""

    def __init__(self, quick):
        self.serial = 300 if quick else 2000  # tasks/actor calls one at a time
        self.pipelined = 5000  # tasks/actor calls in flight at once
        self.wait = 1000 if quick else 10_000  # tasks consumed one by one with wait()
        self.stream = 2000 if quick else 10_000  # items one generator task yields, read as they come
        self.memory_tasks = 10_000 if quick else 100_000  # tasks for the driver-memory figure, in batches of 1,000
        self.array_bytes = 100_000_000  # the "100 MB" array: 12.5 million float64
        # the recursive quicksort of issue 16 (a tree of tasks that get their children): items for qsort_2m, qsort_4m
        self.qsort = {"qsort_2m": 200_000 if quick else 2_000_000, "qsort_4m": 400_000 if quick else 4_000_000}


# ---------------------------------------------------------------------------------------------------------------
# The functions the tasks run. They live at module level so that ProcessPoolExecutor's workers can import them
# (its forkserver children import this file as __mp_main__); Ray and course_runtime send them by value.
# ---------------------------------------------------------------------------------------------------------------

def noop(x=None):
    return x


def count_up(n):
    for i in range(n):
        yield i


def array_sum(array):
    return float(array.sum())


def image_filter(image):
    """The course's seed example: a slow "filter" that inverts an image."""
    time.sleep(1)
    return 255 - image


class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------

def rss_mb():
    """The resident memory of this process, in MB, from /proc/self/status (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def median_of(repeat, measure, budget_s=float("inf")):
    """Run measure() `repeat` times; return (median, all samples).

    Stops repeating (keeping at least one sample) once `budget_s` seconds have gone, so that a slow backend
    cannot make the run endless; the samples in the JSON show how many repetitions were made.
    """
    deadline = time.perf_counter() + budget_s
    samples = []
    while len(samples) < repeat and (not samples or time.perf_counter() < deadline):
        samples.append(measure())
    return statistics.median(samples), samples


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class WorkloadTimeout(Exception):
    pass


class Terminated(BaseException):
    """The parent asked this worker to stop (SIGTERM): not an Exception, so no workload catches it."""


class time_limit:
    """Raise WorkloadTimeout in the main thread if the block runs longer than `seconds` (SIGALRM, Unix only)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        def on_alarm(signum, frame):
            raise WorkloadTimeout(f"did not finish within {self.seconds} s")
        self.previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


# ---------------------------------------------------------------------------------------------------------------
# The workloads on Ray's API: one code path for course_runtime and for real Ray (`rt` is the module).
# Each function returns {figure_key: (value, samples, details)}.
# ---------------------------------------------------------------------------------------------------------------

class Workloads:
    """What the two kinds of workloads share: the sizes, the number of repetitions and a time budget."""

    def __init__(self, sizes, repeat, budget_s):
        self.sizes, self.repeat, self.budget_s = sizes, repeat, budget_s

    def median(self, measure):
        return median_of(self.repeat, measure, self.budget_s)


class RayAPI(Workloads):
    def __init__(self, rt, sizes, repeat, budget_s):
        super().__init__(sizes, repeat, budget_s)
        self.rt = rt
        self.noop = rt.remote(noop)

    def tasks_serial(self):
        rt, f, n = self.rt, self.noop, self.sizes.serial
        rt.get(f.remote())  # warm-up: the function reaches the workers

        def run():
            for i in range(n):
                rt.get(f.remote(i))
        value, samples = self.median(lambda: n / timed(run))
        return {"tasks_serial": (value, samples, {"tasks": n})}

    def tasks_pipelined(self):
        rt, f, n = self.rt, self.noop, self.sizes.pipelined

        def run():
            refs = [f.remote(i) for i in range(n)]
            rt.get(refs)
        value, samples = self.median(lambda: n / timed(run))
        return {"tasks_pipelined": (value, samples, {"tasks": n})}

    def actors(self):
        rt = self.rt
        try:
            counter = rt.remote(Counter).remote()
            rt.get(counter.inc.remote())
        except Exception as e:  # actors are a later issue of course_runtime: report, don't fail the run
            note = f"n/a: actors unavailable ({type(e).__name__}: {e})"
            return {"actor_serial": (note, [], {}), "actor_pipelined": (note, [], {})}
        n_serial, n_pipelined = self.sizes.serial, self.sizes.pipelined

        def serial():
            for _ in range(n_serial):
                rt.get(counter.inc.remote())

        def pipelined():
            rt.get([counter.inc.remote() for _ in range(n_pipelined)])
        serial_value, serial_samples = self.median(lambda: n_serial / timed(serial))
        pipelined_value, pipelined_samples = self.median(lambda: n_pipelined / timed(pipelined))
        return {"actor_serial": (serial_value, serial_samples, {"calls": n_serial}),
                "actor_pipelined": (pipelined_value, pipelined_samples, {"calls": n_pipelined})}

    def driver_memory(self):
        rt, f, n = self.rt, self.noop, self.sizes.memory_tasks
        rt.get([f.remote(i) for i in range(1000)])  # warm-up batch: first-use allocations are not growth
        gc.collect()
        before = rss_mb()
        for _ in range(n // 1000):
            refs = [f.remote(i) for i in range(1000)]
            rt.get(refs)
        del refs
        gc.collect()
        growth = rss_mb() - before
        return {"driver_memory": (growth, [growth], {"tasks": n, "rss_before_mb": round(before, 1)})}

    def wait_10k(self):
        rt, f, n = self.rt, self.noop, self.sizes.wait

        def run():
            pending = [f.remote(i) for i in range(n)]
            while pending:
                ready, pending = rt.wait(pending, num_returns=1)
                rt.get(ready[0])
        value, samples = self.median(lambda: timed(run))
        return {"wait_10k": (value, samples, {"tasks": n})}

    def stream_10k(self):
        rt, n = self.rt, self.sizes.stream
        produce = rt.remote(count_up)
        rt.get(list(produce.remote(10)))  # warm-up: the function reaches a worker

        def run():
            total = 0
            for ref in produce.remote(n):
                total += rt.get(ref)
            assert total == n * (n - 1) // 2
        value, samples = self.median(lambda: n / timed(run))
        return {"stream_10k": (value, samples, {"items": n})}

    def qsort(self, key):
        """Issue 16's program: each task above 50,000 items splits its list around a pivot, sorts both halves in
        child tasks and blocks in get() on them, so one process waits per inner node of the tree."""
        rt, n = self.rt, self.sizes.qsort[key]

        @rt.remote
        def qsort(xs):
            if len(xs) <= 50_000:
                return sorted(xs)
            pivot = xs.pop()
            lesser = [x for x in xs if x <= pivot]
            greater = [x for x in xs if x > pivot]
            left, right = qsort.remote(lesser), qsort.remote(greater)
            return rt.get(left) + [pivot] + rt.get(right)

        import numpy as np
        data = np.random.default_rng(1).integers(0, 1_000_000, n).tolist()
        expected = sorted(data)

        def once():
            start = time.perf_counter()
            result = rt.get(qsort.remote(data))
            elapsed = time.perf_counter() - start
            if result != expected:
                raise AssertionError("the quicksort tree returned a wrong result")
            return elapsed
        value, samples = median_of(min(self.repeat, 3), once, self.budget_s)
        return {key: (value, samples, {"items": n})}

    def qsort_2m(self):
        return self.qsort("qsort_2m")

    def qsort_4m(self):
        return self.qsort("qsort_4m")

    def put_100mb(self, array):
        def once():
            start = time.perf_counter()
            ref = self.rt.put(array)
            elapsed = time.perf_counter() - start
            del ref
            return array.nbytes / 1e9 / elapsed
        value, samples = self.median(once)
        return {"put_100mb": (value, samples, {"bytes": array.nbytes})}

    def get_stored_100mb(self, array):
        def once():
            # A fresh object each time: the first get of a stored object is what a program pays (runtimes may
            # cache what they handed out before, which would make later gets of the same ref look cheaper).
            ref = self.rt.put(array)
            start = time.perf_counter()
            out = self.rt.get(ref)
            elapsed = time.perf_counter() - start
            assert out.shape == array.shape
            del out, ref
            return elapsed * 1000
        value, samples = self.median(once)
        return {"get_stored_100mb": (value, samples, {"bytes": array.nbytes})}

    def read_shared_8(self, array):
        import numpy as np

        rt = self.rt
        total = rt.remote(array_sum)
        rt.get(total.remote(np.ones(10)))  # warm-up: ship the function, import numpy in the workers
        ref = rt.put(array)
        expected = float(array.sum())

        def once():
            start = time.perf_counter()
            sums = rt.get([total.remote(ref) for _ in range(8)])
            elapsed = time.perf_counter() - start
            assert all(abs(s - expected) < 1e-6 * abs(expected) for s in sums)
            return elapsed
        value, samples = self.median(once)
        return {"read_shared_8": (value, samples, {"by": "reference (ObjectRef)"})}

    def images_8(self, images):
        rt = self.rt
        filt = rt.remote(image_filter)
        value, samples = self.median(lambda: timed(lambda: rt.get([filt.remote(i) for i in images])))
        return {"images_8": (value, samples, {"images": len(images)})}


# ---------------------------------------------------------------------------------------------------------------
# The same workloads on concurrent.futures.ProcessPoolExecutor.
# ---------------------------------------------------------------------------------------------------------------

class PPE(Workloads):
    def __init__(self, executor, num_cpus, sizes, repeat, budget_s):
        super().__init__(sizes, repeat, budget_s)
        self.ex, self.num_cpus = executor, num_cpus

    def tasks_serial(self):
        ex, n = self.ex, self.sizes.serial
        ex.submit(noop).result()

        def run():
            for i in range(n):
                ex.submit(noop, i).result()
        value, samples = self.median(lambda: n / timed(run))
        return {"tasks_serial": (value, samples, {"tasks": n})}

    def tasks_pipelined(self):
        ex, n = self.ex, self.sizes.pipelined

        def run():
            futures = [ex.submit(noop, i) for i in range(n)]
            [f.result() for f in futures]
        value, samples = self.median(lambda: n / timed(run))
        return {"tasks_pipelined": (value, samples, {"tasks": n})}

    def actors(self):
        note = "n/a: ProcessPoolExecutor has no actors"
        return {"actor_serial": (note, [], {}), "actor_pipelined": (note, [], {})}

    def driver_memory(self):
        ex, n = self.ex, self.sizes.memory_tasks
        [f.result() for f in [ex.submit(noop, i) for i in range(1000)]]
        gc.collect()
        before = rss_mb()
        for _ in range(n // 1000):
            futures = [ex.submit(noop, i) for i in range(1000)]
            [f.result() for f in futures]
        del futures
        gc.collect()
        growth = rss_mb() - before
        return {"driver_memory": (growth, [growth], {"tasks": n, "rss_before_mb": round(before, 1)})}

    def wait_10k(self):
        from concurrent.futures import FIRST_COMPLETED, wait

        ex, n = self.ex, self.sizes.wait

        def run():
            pending = {ex.submit(noop, i) for i in range(n)}
            while pending:
                # concurrent.futures.wait has no num_returns: it hands back every finished future at once.
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()
        value, samples = self.median(lambda: timed(run))
        return {"wait_10k": (value, samples, {"tasks": n})}

    def stream_10k(self):
        return {"stream_10k": ("n/a: a pool's tasks return once, they do not stream", [], {})}

    def qsort_2m(self):
        return {"qsort_2m": ("n/a: a task cannot submit tasks to its own pool", [], {})}

    def qsort_4m(self):
        return {"qsort_4m": ("n/a: a task cannot submit tasks to its own pool", [], {})}

    def put_100mb(self, array):
        return {"put_100mb": ("n/a: no object store", [], {})}

    def get_stored_100mb(self, array):
        return {"get_stored_100mb": ("n/a: no object store", [], {})}

    def read_shared_8(self, array):
        import numpy as np

        ex = self.ex
        [f.result() for f in [ex.submit(array_sum, np.ones(10)) for _ in range(self.num_cpus)]]  # warm-up

        def once():
            # No object store: the array is pickled and sent to each of the 8 tasks (by value).
            return timed(lambda: [f.result() for f in [ex.submit(array_sum, array) for _ in range(8)]])
        value, samples = self.median(once)
        return {"read_shared_8": (value, samples, {"by": "value (pickled to each task)"})}

    def images_8(self, images):
        ex = self.ex
        value, samples = self.median(
            lambda: timed(lambda: [f.result() for f in [ex.submit(image_filter, i) for i in images]]))
        return {"images_8": (value, samples, {"images": len(images)})}


# ---------------------------------------------------------------------------------------------------------------
# Start-up: measured in a fresh process per repetition (--probe-startup), so the import is really paid.
# ---------------------------------------------------------------------------------------------------------------

def probe_startup(backend, num_cpus):
    """Runs in its own process: time import + init + first trivial result, then shutdown. Prints JSON."""
    start = time.perf_counter()
    if backend == "ppe":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ex = ProcessPoolExecutor(max_workers=num_cpus, mp_context=multiprocessing.get_context("forkserver"))
        ex.submit(noop, 1).result()
        started = time.perf_counter()
        ex.shutdown(wait=True)
    else:
        rt = import_backend(backend)
        rt.init(num_cpus=num_cpus)
        rt.get(rt.remote(noop).remote(1))
        started = time.perf_counter()
        rt.shutdown()
    stopped = time.perf_counter()
    print(MARK + json.dumps({"startup": started - start, "shutdown": stopped - started}), flush=True)


def measure_startup(backend, num_cpus, repeat, timeout):
    startups, shutdowns = [], []
    for _ in range(repeat):
        lines, rc, err = run_subprocess(
            [sys.executable, __file__, "--probe-startup", backend, "--num-cpus", str(num_cpus)], timeout,
            cwd=os.getcwd())  # --compare runs a commit's runtime from its own folder: its workers start there
        if not lines:
            raise RuntimeError(f"start-up probe failed (exit {rc}): {last_line(err)}")
        startups.append(lines[-1]["startup"])
        shutdowns.append(lines[-1]["shutdown"])
    return {"startup": (statistics.median(startups), startups, {}),
            "shutdown": (statistics.median(shutdowns), shutdowns, {})}


# ---------------------------------------------------------------------------------------------------------------
# Worker mode: one backend, many workloads, one "@@bench" JSON line per figure on stdout.
# ---------------------------------------------------------------------------------------------------------------

def import_backend(backend):
    if backend == "course":
        runtime_dir = os.environ.get("COURSE_BENCH_RUNTIME_DIR", REPO)  # --compare: another commit's runtime
        if runtime_dir not in sys.path:
            sys.path.insert(0, runtime_dir)  # works from a checkout without `pip install -e .`
        import course_runtime as rt
    else:
        import ray as rt
    return rt


def emit(key, value, samples=(), details=None):
    if isinstance(value, float):
        value = round(value, 6)
    record = {"figure": key, "value": value, "samples": [round(s, 6) for s in samples], "details": details or {}}
    print(MARK + json.dumps(record), flush=True)


def run_worker(args):
    sizes = Sizes(args.quick)
    workloads = args.workloads.split(",")
    backend, repeat = args.worker, args.repeat
    per_workload_s = 60 if args.quick else 300  # a workload still running after this is an error (a hang)
    budget_s = 10 if args.quick else 60  # no new repetition starts after this (see median_of)

    info = {"python": platform.python_version()}
    if "startup" in workloads:  # first, before this process imports anything heavy
        try:
            figures = measure_startup(backend, args.num_cpus, repeat, per_workload_s)
        except Exception as e:
            figures = {"startup": (f"error: {e}", [], {}), "shutdown": (f"error: {e}", [], {})}
        for key, (value, samples, details) in figures.items():
            emit(key, value, samples, details)

    import numpy as np

    info["numpy"] = np.__version__
    array = np.random.default_rng(0).random(sizes.array_bytes // 8)  # 100 MB of float64
    images = [np.random.randint(0, 255, (10, 10, 3), dtype=np.uint8) for _ in range(8)]

    if backend == "ppe":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(max_workers=args.num_cpus, mp_context=multiprocessing.get_context("forkserver"))
        bench, close = PPE(executor, args.num_cpus, sizes, repeat, budget_s), executor.shutdown
    else:
        rt = import_backend(backend)
        info["version"] = getattr(rt, "__version__", "?")
        rt.init(num_cpus=args.num_cpus)
        bench, close = RayAPI(rt, sizes, repeat, budget_s), rt.shutdown
    print(MARK + json.dumps({"info": info}), flush=True)

    # The parent sends SIGTERM when this worker runs out of time: stop measuring but still shut the backend down,
    # so that its processes and shared memory are cleaned up.
    def on_sigterm(signum, frame):
        raise Terminated()
    signal.signal(signal.SIGTERM, on_sigterm)

    takes_array = {"put_100mb", "get_stored_100mb", "read_shared_8"}
    shutdown_limit_s = 60
    try:
        for name in workloads:
            if name == "startup":
                continue
            keys = ["actor_serial", "actor_pipelined"] if name == "actors" else [name]
            try:
                with time_limit(per_workload_s):
                    if name in takes_array:
                        figures = getattr(bench, name)(array)
                    elif name == "images_8":
                        figures = bench.images_8(images)
                    else:
                        figures = getattr(bench, name)()
            except Exception as e:  # an error or a timeout is a result too; the run goes on
                figures = {k: (f"error: {type(e).__name__}: {e}".strip(), [], {}) for k in keys}
            for key, (value, samples, details) in figures.items():
                emit(key, value, samples, details)
    except Terminated:
        shutdown_limit_s = 5
    finally:
        try:
            with time_limit(shutdown_limit_s):
                close()
        except BaseException as e:  # noqa: B036 - report, whatever went wrong
            print(MARK + json.dumps({"warning": f"shutdown failed: {type(e).__name__}: {e}"}), flush=True)


def last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def run_subprocess(command, timeout, env=None, cwd=REPO):
    """Run `command` in its own process group; return (parsed @@bench lines, exit code, stderr).

    Output is read by threads as it comes, so whatever was printed before a timeout is kept. On timeout the worker
    is stopped (SIGTERM, then SIGKILL), then the rest of its process group (any process it started).
    """
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            start_new_session=True, env=env)
    out_lines, err_lines = [], []

    def pump(stream, into):
        for line in stream:
            into.append(line)

    readers = [threading.Thread(target=pump, args=(proc.stdout, out_lines), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err_lines), daemon=True)]
    for r in readers:
        r.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Ask the worker to stop (it shuts its backend down, which cleans up processes and shared memory); kill it
        # if it does not within 10 s, then kill whatever is left of its process group.
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            time.sleep(2)  # let multiprocessing's resource tracker notice and unlink what the worker left
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        rc = f"killed after {timeout} s"
    for r in readers:
        r.join(timeout=5)  # a leftover grandchild may hold the pipe open: don't wait for it forever
    parsed = [json.loads(line[len(MARK):]) for line in list(out_lines) if line.startswith(MARK)]
    return parsed, rc, "".join(err_lines)


def run_backend(backend, args, workloads, env=None, cwd=REPO):
    """Measure one backend in a fresh worker process; return {"status", "figures", "info", "note"}."""
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            return {"status": "skipped", "note": "skipped: `import ray` does not work here (Ray not installed)",
                    "figures": {}}
    command = [sys.executable, __file__, "--worker", backend, "--workloads", ",".join(workloads),
               "--repeat", str(args.repeat), "--num-cpus", str(args.num_cpus)] + (["--quick"] if args.quick else [])
    timeout = args.worker_timeout or (120 if args.quick else 1800)
    started = time.perf_counter()
    lines, rc, err = run_subprocess(command, timeout, env, cwd)
    result = {"status": "ok", "figures": {}, "info": {}, "seconds": round(time.perf_counter() - started, 1)}
    for line in lines:
        if "figure" in line:
            result["figures"][line["figure"]] = {k: line[k] for k in ("value", "samples", "details")}
        elif "info" in line:
            result["info"] = line["info"]
        elif "warning" in line:
            result.setdefault("warnings", []).append(line["warning"])
    if rc != 0:
        result["status"] = f"worker exit {rc}"
        result["note"] = last_line(err)
    # Anything expected but not reported: the worker died or was killed while measuring it.
    expected = [k for w in workloads for k in
                (["startup", "shutdown"] if w == "startup" else
                 ["actor_serial", "actor_pipelined"] if w == "actors" else [w])]
    for key in expected:
        if key not in result["figures"]:
            why = f"worker {rc}: {last_line(err)}" if rc != 0 else "the worker stopped before measuring it"
            result["figures"][key] = {"value": f"error: not measured ({why})",
                                      "samples": [], "details": {}}
    return result


def machine_info():
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        info["numpy"] = None
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        pass
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


# ---------------------------------------------------------------------------------------------------------------
# Report: table, JSON, chart
# ---------------------------------------------------------------------------------------------------------------

def number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fmt(value):
    v = number(value)
    if value is None:
        return "-"
    if v is None:
        return str(value).split(":")[0]  # "n/a", "error" or "skipped"; the table's notes give the reason
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.01:
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.2f}"
    return f"{v:.2g}"


def summarise(results, backends):
    """One row per figure: values per backend, ratios course/peer, goal and whether course meets it."""
    rows = []
    for fig in FIGURES:
        values = {b: results["backends"].get(b, {}).get("figures", {}).get(fig.key, {}).get("value")
                  for b in backends}
        if all(v is None for v in values.values()):
            continue
        course = number(values.get("course"))
        peer_values = {b: results["backends"].get(b, {}).get("figures", {}).get(fig.peers_of, {}).get("value")
                       for b in backends}
        ratios = {}
        for peer in ("ppe", "ray"):
            p = number(peer_values.get(peer))
            ratios[f"course/{peer}"] = round(course / p, 4) if fig.ratio and course is not None and p else None
        met = None
        if fig.check and course is not None:
            met = fig.check(course, {b: number(peer_values.get(b)) for b in ("ppe", "ray")})
        rows.append({"figure": fig.key, "title": fig.title, "unit": fig.unit,
                     "better": "higher" if fig.higher_is_better else "lower",
                     "values": values, "ratios": ratios, "goal": fig.goal, "goal_met": met})
    return rows


def print_report(results, rows, backends):
    m = results["machine"]
    print(f"\nMachine: {m['cores']} cores ({m.get('cores_available')} available), {m.get('cpu') or '?'}, "
          f"{m.get('memory_gb', '?')} GB; Python {m['python']}; numpy {m['numpy']}; {m['platform']}")
    s = results["settings"]
    print(f"Date: {m['date']}; num_cpus={s['num_cpus']}; median of {s['repeat']} repetition(s)"
          f"{'; QUICK mode (reduced sizes)' if s['quick'] else ''}")
    for b in backends:
        r = results["backends"][b]
        extra = f" ({r['note']})" if r.get("note") else ""
        version = r.get("info", {}).get("version")
        print(f"  {BACKEND_TITLES[b]}: {r['status']}{extra}" + (f", version {version}" if version else "")
              + (f", {r['seconds']} s" if "seconds" in r else ""))

    columns = [("figure", 36), ("unit", 8)] + [(b, 14) for b in backends]
    columns += [(f"course/{p}", 10) for p in ("ppe", "ray") if p in backends and "course" in backends]
    columns += [("goal (issue 6)", 34), ("met", 3)]
    header = "  ".join(name.ljust(width) for name, width in columns)
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        arrow = "↑" if row["better"] == "higher" else "↓"
        cells = [f"{row['title']} {arrow}", row["unit"]]
        cells += ["skipped" if results["backends"][b]["status"] == "skipped" else fmt(row["values"].get(b))
                  for b in backends]
        cells += [fmt(row["ratios"][name]) if row["ratios"][name] is not None else "-"
                  for name, _ in columns if name.startswith("course/")]
        cells += [row["goal"] or "", {True: "✓", False: "✗", None: ""}[row["goal_met"]]]
        print("  ".join(str(c).ljust(width) for c, (_, width) in zip(cells, columns)))
    print("↑ higher is better, ↓ lower is better; ratios are course/peer of the figures as shown.")
    notes = {}  # (backend, message) -> figures it explains
    for row in rows:
        for b in backends:
            if isinstance(row["values"].get(b), str):
                notes.setdefault((b, row["values"][b]), []).append(row["figure"])
    if notes:
        print("Notes:")
    for (b, message), keys in notes.items():
        print(f"  {BACKEND_TITLES[b]}, {', '.join(keys)}: {message}")
    if results["settings"]["quick"]:
        print("Quick mode: fewer tasks and repetitions than the goals assume; run without --quick for real figures.")


def save_chart(rows, backends, path):
    """A small bar chart per figure (each has its own unit and scale), one bar per backend, goal as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"course": "#4C72B0", "ppe": "#DD8452", "ray": "#55A868"}
    cols = 4
    rows_count = max(1, -(-len(rows) // cols))
    fig, axes = plt.subplots(rows_count, cols, figsize=(4 * cols, 2.8 * rows_count), squeeze=False)
    goal_lines = {"put_100mb": 2, "get_stored_100mb": 1, "read_shared_8": 0.2, "startup": 0.5,
                  "actor_serial": 3000, "actor_pipelined": 8000, "driver_memory": 50}
    for ax, row in zip(axes.flat, rows):
        names = [b for b in backends if row["values"].get(b) is not None]  # skipped backends get no bar
        heights = [number(row["values"][b]) for b in names]
        ax.bar(range(len(names)), [h or 0 for h in heights], color=[colours[b] for b in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([BACKEND_TITLES[b].replace("ProcessPoolExecutor", "PPE") for b in names])
        for i, (b, h) in enumerate(zip(names, heights)):
            text = fmt(h) if h is not None else str(row["values"][b]).split(":")[0]  # "n/a" or "error"
            ax.text(i, h or 0, text, ha="center", va="bottom", fontsize=8)
        numbers = [h for h in heights if h is not None]
        if numbers and all(h > 0 for h in numbers) and max(numbers) / min(numbers) > 50:
            ax.set_yscale("log")  # e.g. Ray's 12 s start-up next to 0.1 s: a linear scale would hide the rest
        if numbers and row["figure"] in goal_lines:
            ax.axhline(goal_lines[row["figure"]], color="crimson", linestyle="--", linewidth=1)
        arrow = "↑" if row["better"] == "higher" else "↓"
        ax.set_title(f"{row['title']} {arrow}", fontsize=9)
        ax.set_ylabel(row["unit"], fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle("course_runtime vs ProcessPoolExecutor vs Ray (dashed: goal of issue 6)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args):
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}; choose from {BACKENDS}")
    workloads = args.workloads.split(",") if args.workloads else (QUICK_WORKLOADS if args.quick else WORKLOADS)
    results = {"machine": machine_info(),
               "settings": {"quick": args.quick, "repeat": args.repeat, "num_cpus": args.num_cpus,
                            "backends": backends, "workloads": workloads, "sizes": vars(Sizes(args.quick))},
               "backends": {}}
    for backend in backends:
        print(f"measuring {BACKEND_TITLES[backend]} ...", flush=True)
        results["backends"][backend] = run_backend(backend, args, workloads)
    rows = summarise(results, backends)
    results["table"] = rows
    print_report(results, rows, backends)

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nsaved {args.output}")
    chart = os.path.splitext(args.output)[0] + ".png"
    try:
        save_chart(rows, backends, chart)
        print(f"saved {chart}")
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)")
    return results


# ---------------------------------------------------------------------------------------------------------------
# --compare COMMIT: this tree's runtime (fast paths on, and off) against the runtime of another commit
# ---------------------------------------------------------------------------------------------------------------

def compare(args):
    """Extract COMMIT's course_runtime into a temporary folder (git archive), then measure, round after round, that
    runtime, this tree's, and this tree's with COURSE_RUNTIME_FAST_PATHS=0 (and ProcessPoolExecutor once), each in
    a fresh worker. Alternating rounds spread the machine's ups and downs over all of them; each figure is the
    median over the rounds. Prints the figures side by side and saves them as JSON."""
    import tempfile

    workloads = args.workloads.split(",") if args.workloads else (QUICK_WORKLOADS if args.quick else WORKLOADS)
    with tempfile.TemporaryDirectory(prefix="course-bench-") as folder:
        archive = subprocess.run(["git", "archive", args.compare, "course_runtime"], cwd=REPO, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        variants = {args.compare: {"COURSE_BENCH_RUNTIME_DIR": folder}, "this tree": {},
                    "fast paths off": {"COURSE_RUNTIME_FAST_PATHS": "0"}}
        runs = {name: [] for name in variants}
        for round_number in range(args.rounds):
            for name, extra in variants.items():
                print(f"round {round_number + 1}/{args.rounds}: {name} ...", flush=True)
                env = {k: v for k, v in os.environ.items() if k not in ("COURSE_RUNTIME_FAST_PATHS",)}
                # Workers of the runtime start with the current folder first on sys.path: the commit's own folder
                # for its runtime, so that its workers never import this tree's.
                cwd = extra.get("COURSE_BENCH_RUNTIME_DIR", REPO)
                runs[name].append(run_backend("course", args, workloads, dict(env, **extra), cwd))
        print("ProcessPoolExecutor ...", flush=True)
        ppe = run_backend("ppe", args, workloads)
    table = []
    for fig in FIGURES:
        values = {name: [number(r["figures"].get(fig.key, {}).get("value")) for r in results]
                  for name, results in runs.items()}
        medians = {name: statistics.median([v for v in vs if v is not None]) if any(v is not None for v in vs)
                   else None for name, vs in values.items()}
        if all(m is None for m in medians.values()):
            continue
        medians["ppe"] = number(ppe["figures"].get(fig.key, {}).get("value"))
        base, new = medians[args.compare], medians["this tree"]
        change = (new / base - 1) * (1 if fig.higher_is_better else -1) if base and new else None
        table.append({"figure": fig.key, "title": fig.title, "unit": fig.unit, "medians": medians,
                      "rounds": values, "better_by": change})
    names = list(runs) + ["ppe"]
    header = f"{'figure':36}  {'unit':8}  " + "  ".join(f"{n[:14]:>14}" for n in names) + "  this tree vs " + \
        args.compare
    print("\n" + header + "\n" + "-" * len(header))
    for row in table:
        arrow = "↑" if FIGURE[row["figure"]].higher_is_better else "↓"
        cells = "  ".join(f"{fmt(row['medians'][n]):>14}" for n in names)
        better = f"{row['better_by']:+.1%}" if row["better_by"] is not None else "-"
        print(f"{row['title'] + ' ' + arrow:36}  {row['unit']:8}  {cells}  {better:>8}")
    print(f"Medians over {args.rounds} alternating round(s) of {args.repeat} repetition(s); the last column is how "
          f"much better (+) or worse (-) this tree is than {args.compare}, with the fast paths on.")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine_info(), "compare": args.compare, "rounds": args.rounds, "table": table}, f,
                  indent=1)
    print(f"\nsaved {args.output}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="reduced set and sizes, under a minute (for CI)")
    p.add_argument("--backends", default="course,ppe,ray", help="comma-separated: course, ppe, ray")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs for each runtime (default: all)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions per figure (median); default 5, quick 2")
    p.add_argument("--workloads", default=None, help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--output", default=os.path.join(RESULTS, "latest.json"), help="where to save the JSON")
    p.add_argument("--worker-timeout", type=int, default=None, help="seconds per backend (default 120, full 1800)")
    p.add_argument("--compare", metavar="COMMIT", help="measure this tree's runtime (fast paths on and off) against "
                                                       "COMMIT's, alternately in one run")
    p.add_argument("--rounds", type=int, default=3, help="--compare: alternating rounds (default 3)")
    p.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)  # internal: measure one backend
    p.add_argument("--probe-startup", choices=BACKENDS, help=argparse.SUPPRESS)  # internal: one start-up
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.probe_startup:
        probe_startup(arguments.probe_startup, arguments.num_cpus)
    elif arguments.worker:
        if not arguments.workloads:
            arguments.workloads = ",".join(QUICK_WORKLOADS if arguments.quick else WORKLOADS)
        run_worker(arguments)
    elif arguments.compare:
        if arguments.output == os.path.join(RESULTS, "latest.json"):
            arguments.output = os.path.join(RESULTS, "compare.json")
        compare(arguments)
    else:
        main(arguments)
