"""Trees of nested tasks, where parents block in get() on their children: they must always finish (issue 16).

Every parent that waits for its children holds a worker process while it waits, so a tree with more waiting
parents than CPUs needs more processes than CPUs. These shapes each keep more than 34 parents waiting at once (34
was the pool size at which the course runtime used to stop starting workers, and hang). They run on both backends;
the timeouts are wide enough for real Ray, which starts each extra worker in about a second on 2 cores.
"""

import numpy as np
import pytest

# Arguments passed by value: small ones travel inline with the task, large ones (over 100 KiB) are stored first.
SMALL = 8
LARGE = 40_000  # float64: 320 KB


def qsort_remote(ray, threshold):
    @ray.remote
    def qsort(xs):
        if len(xs) <= threshold:
            return sorted(xs)
        pivot = xs.pop()
        lesser = [x for x in xs if x <= pivot]
        greater = [x for x in xs if x > pivot]
        left, right = qsort.remote(lesser), qsort.remote(greater)
        return ray.get(left) + [pivot] + ray.get(right)

    return qsort


def tree_remote(ray):
    @ray.remote
    def node(depth, width, payload, gather):
        """Sum of payload.sum() over the leaves of a `width`-ary tree of `depth` levels below this node."""
        if depth == 0:
            return float(payload.sum())
        children = [node.remote(depth - 1, width, payload + 1, gather) for _ in range(width)]
        if gather == "list":
            return sum(ray.get(children))
        if gather == "one by one":
            return sum(ray.get(child) for child in children)
        total, pending = 0.0, children
        while pending:  # gather == "wait"
            ready, pending = ray.wait(pending, num_returns=1)
            total += ray.get(ready[0])
        return total

    return node


def expected_tree_sum(depth, width, payload):
    return float(width ** depth * (payload.sum() + depth * payload.size))


@pytest.mark.parametrize("depth, width, size, gather", [
    (40, 1, LARGE, "list"),  # a chain: 40 parents waiting at once, each passing 320 KB on by value
    (3, 4, SMALL, "one by one"),  # 21 parents, 64 leaves
    (5, 2, LARGE, "wait"),  # 31 parents, 32 leaves
    (36, 1, SMALL, "wait"),
])
def test_trees_of_tasks_that_get_their_children_finish(ray_start, depth, width, size, gather):
    ray = ray_start
    payload = np.arange(size, dtype=np.float64)
    result = ray.get(tree_remote(ray).remote(depth, width, payload, gather), timeout=110)
    assert result == expected_tree_sum(depth, width, payload)


def test_recursive_quicksort_with_large_by_value_arguments(ray_start):
    """The issue's program, scaled down: each level passes lists of up to 300,000 ints (stored, not inlined)."""
    ray = ray_start
    data = np.random.default_rng(1).integers(0, 1_000_000, 300_000).tolist()
    assert ray.get(qsort_remote(ray, 8_000).remote(data), timeout=110) == sorted(data)


def test_several_trees_at_once_from_the_driver(ray_start):
    """Independent trees submitted together compete for CPUs and workers; all of them finish."""
    ray = ray_start
    node = tree_remote(ray)
    payloads = [np.full(SMALL, float(i)) for i in range(4)]
    refs = [node.remote(3, 2, p, "list") for p in payloads]
    assert ray.get(refs, timeout=110) == [expected_tree_sum(3, 2, p) for p in payloads]
