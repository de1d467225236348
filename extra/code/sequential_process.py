"""Eight images through a slow filter, one after another: the baseline the parallel version beats.

Run from the repository root:  python extra/code/sequential_process.py
"""
import time

import numpy as np


def apply_filter(image):
    """A stand-in for real image work: one second per image, then invert the colours."""
    time.sleep(1)
    return 255 - image


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(10, 10, 3), dtype=np.uint8) for _ in range(8)]

    start = time.perf_counter()
    filtered = [apply_filter(image) for image in images]  # one core, one image at a time: about 8 s
    elapsed = time.perf_counter() - start

    print(f"Processed {len(filtered)} images in {elapsed:.2f} seconds.")
