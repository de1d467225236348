"""The same eight images, each filtered by a Ray task: as many at once as there are CPUs.

Run from the repository root:  python extra/code/parallel_process.py [--num-cpus N] [--timeline FILE]
Uses the course runtime by default; COURSE_BACKEND=ray runs it on real Ray, unchanged.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # run from anywhere
from course_runtime import ray  # noqa: E402  (the course runtime, or real Ray with COURSE_BACKEND=ray)


@ray.remote
def apply_filter(image):
    """The same one-second filter, now a task: each call can run on its own CPU."""
    time.sleep(1)
    return 255 - image


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs to use (default: all)")
    parser.add_argument("--timeline", metavar="FILE", help="also save where each task ran (Chrome-trace JSON)")
    args = parser.parse_args()

    ray.init(num_cpus=args.num_cpus, ignore_reinit_error=True)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(10, 10, 3), dtype=np.uint8) for _ in range(8)]

    start = time.perf_counter()
    refs = [apply_filter.remote(image) for image in images]  # eight tasks submitted at once
    filtered = ray.get(refs)  # wait for all of them
    elapsed = time.perf_counter() - start

    assert all((f == 255 - i).all() for f, i in zip(filtered, images))
    print(f"Processed {len(filtered)} images in {elapsed:.2f} seconds.")
    if args.timeline:
        ray.timeline(filename=args.timeline)
    ray.shutdown()
