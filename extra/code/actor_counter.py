"""Many tasks, one counter: why shared state belongs in an actor.

Run from the repository root:  python extra/code/actor_counter.py [--tasks N] [--increments K] [--num-cpus C]

N tasks each add 1 to a counter K times, in two ways:
1. a global variable: every worker process has its own copy of the module's globals, so the tasks change their
   worker's copy and the driver's copy never moves;
2. a Counter actor: one process owns the count, every task holds a handle to it, and the actor runs one call at a
   time, so every increment is counted and no lock is needed.
Uses the course runtime by default; COURSE_BACKEND=ray runs it on real Ray, unchanged.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # run from anywhere
from course_runtime import ray  # noqa: E402  (the course runtime, or real Ray with COURSE_BACKEND=ray)

count = 0  # the driver's global; each worker process gets a copy of its own


@ray.remote
def add_to_global(increments):
    """Add to this worker's copy of `count`; say which process did it and where its copy stands now."""
    global count
    for _ in range(increments):
        count += 1
    return os.getpid(), count


@ray.remote
class Counter:
    """The count lives in this actor's process; calls arrive one at a time, so `+=` is safe without a lock."""

    def __init__(self):
        self.value = 0

    def add(self, amount=1):
        self.value += amount
        return self.value

    def read(self):
        return self.value


@ray.remote
def add_to_counter(counter, increments):
    """Send `increments` calls to the actor (all at once), and wait until they have run."""
    ray.get([counter.add.remote() for _ in range(increments)])
    return increments


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8, help="how many tasks increment the counter (default 8)")
    parser.add_argument("--increments", type=int, default=100, help="increments per task (default 100)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs for the runtime (default 2)")
    args = parser.parse_args()
    expected = args.tasks * args.increments

    ray.init(num_cpus=args.num_cpus, ignore_reinit_error=True)
    print(f"{args.tasks} tasks each add 1 to a counter {args.increments} times: {expected} increments.")

    # 1. A global variable. Each task returns (its worker's pid, that worker's count after the task).
    seen = ray.get([add_to_global.remote(args.increments) for _ in range(args.tasks)])
    last_per_worker = {}
    for pid, value in seen:
        last_per_worker[pid] = max(value, last_per_worker.get(pid, 0))
    print(f"global variable: the driver still sees {count} "
          f"(the workers' own copies add up to {sum(last_per_worker.values())})")

    # 2. An actor. The handle is passed to every task; all of them talk to the same process.
    counter = Counter.remote()
    start = time.perf_counter()
    ray.get([add_to_counter.remote(counter, args.increments) for _ in range(args.tasks)])
    elapsed = time.perf_counter() - start
    total = ray.get(counter.read.remote())
    print(f"Counter actor:   {total} (every increment counted, no lock needed)")
    print(f"{expected} actor calls from {args.tasks} tasks took {elapsed:.2f} s")
    ray.shutdown()
    return 0 if total == expected else 1


if __name__ == "__main__":
    sys.exit(main())
