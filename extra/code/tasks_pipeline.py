"""Download-then-process, three ways: `get` in a loop, `get` on the whole list, and a `wait` loop.

Each "download" is a task that takes a different time (seeded, 0.1-0.4 s); the driver then "processes" each
result, which takes 0.1 s of the driver's own time. The three strategies give the same results in very different
times:

- get in a loop:      submit one, wait for it, process it, submit the next: no parallelism at all;
- get all, then process: downloads overlap, but processing starts only after the slowest download;
- wait loop:          downloads overlap, and each result is processed as soon as it arrives, while the
                      other downloads are still running.

Run from the repository root:  python extra/code/tasks_pipeline.py [--num-cpus N] [--tasks N] [--timeline FILE]
Uses the course runtime by default; COURSE_BACKEND=ray runs it on real Ray, unchanged.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # run from anywhere
from course_runtime import ray  # noqa: E402  (the course runtime, or real Ray with COURSE_BACKEND=ray)

PROCESS_SECONDS = 0.1  # the driver's work per result


@ray.remote
def download(item, seconds):
    """A stand-in for fetching one file: it takes `seconds`, then returns the item's 'content'."""
    time.sleep(seconds)
    return item * 10


def process(content):
    """The driver's own work on one result."""
    time.sleep(PROCESS_SECONDS)
    return content + 1


def get_in_a_loop(durations):
    return [process(ray.get(download.remote(i, s))) for i, s in enumerate(durations)]


def get_all_then_process(durations):
    contents = ray.get([download.remote(i, s) for i, s in enumerate(durations)])
    return [process(c) for c in contents]


def wait_loop(durations):
    refs = [download.remote(i, s) for i, s in enumerate(durations)]
    index = {ref: i for i, ref in enumerate(refs)}
    results = [None] * len(refs)
    pending = list(refs)
    while pending:
        [done], pending = ray.wait(pending, num_returns=1)  # the next download to finish, whichever it is
        results[index[done]] = process(ray.get(done))
    return results


STRATEGIES = [("get in a loop", get_in_a_loop), ("get all, then process", get_all_then_process),
              ("wait loop", wait_loop)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs to give Ray (default: 2)")
    parser.add_argument("--tasks", type=int, default=6, help="number of downloads (default: 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the download durations (default: 0)")
    parser.add_argument("--timeline", metavar="FILE", help="also save where each task ran (Chrome-trace JSON)")
    args = parser.parse_args(argv)

    durations = [round(float(s), 2) for s in np.random.default_rng(args.seed).uniform(0.1, 0.4, args.tasks)]
    ray.init(num_cpus=args.num_cpus, ignore_reinit_error=True)
    cpus = f"{args.num_cpus} CPU" + ("s" if args.num_cpus != 1 else "")
    print(f"{args.tasks} downloads of {min(durations):.2f} to {max(durations):.2f} seconds on {cpus}, "
          f"then {PROCESS_SECONDS:.2f} seconds of processing each in the driver")
    expected = [i * 10 + 1 for i in range(args.tasks)]
    for label, strategy in STRATEGIES:
        start = time.perf_counter()
        results = strategy(durations)
        elapsed = time.perf_counter() - start
        assert results == expected, (label, results)
        print(f"{label + ':':<23}{elapsed:.2f} seconds")
    if args.timeline:
        ray.timeline(filename=args.timeline)
    ray.shutdown()


if __name__ == "__main__":
    main()
