"""Actor concurrency groups, as in Ray 2.60: each group runs at most its own number of calls at once (shared
public-API tests, then the course runtime's clear errors where Ray's actor crashes)."""
import asyncio
import threading
import time

import pytest


def _tracker(ray):
    @ray.remote(concurrency_groups={"io": 2, "compute": 1})
    class Tracker:
        def __init__(self):
            self.active, self.peak, self.lock = {}, {}, threading.Lock()

        def _run(self, label):
            with self.lock:
                self.active[label] = self.active.get(label, 0) + 1
                self.peak[label] = max(self.peak.get(label, 0), self.active[label])
            time.sleep(0.3)
            with self.lock:
                self.active[label] -= 1

        @ray.method(concurrency_group="io")
        def io(self):
            self._run("io")

        @ray.method(concurrency_group="compute")
        def compute(self):
            self._run("compute")

        def plain(self):
            self._run("plain")

        def peaks(self):
            return self.peak

    return Tracker


def test_each_group_runs_its_own_number_of_calls_at_once(ray_start):
    ray = ray_start
    tracker = _tracker(ray).remote()
    calls = [tracker.io.remote() for _ in range(4)] + [tracker.compute.remote() for _ in range(2)] + \
        [tracker.plain.remote() for _ in range(2)]
    ray.get(calls, timeout=60)
    assert ray.get(tracker.peaks.remote(), timeout=60) == {"io": 2, "compute": 1, "plain": 1}
    ray.get([tracker.plain.options(concurrency_group="io").remote() for _ in range(2)], timeout=60)
    assert ray.get(tracker.peaks.remote(), timeout=60)["plain"] == 2  # it ran in "io" this time


def test_groups_on_an_async_actor(ray_start):
    ray = ray_start

    @ray.remote(concurrency_groups={"io": 2})
    class Waiter:
        def __init__(self):
            self.active = self.peak = 0

        @ray.method(concurrency_group="io")
        async def io(self):
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.3)
            self.active -= 1

        async def peak_seen(self):
            return self.peak

    waiter = Waiter.remote()
    ray.get([waiter.io.remote() for _ in range(6)], timeout=60)
    assert ray.get(waiter.peak_seen.remote(), timeout=60) == 2


@pytest.mark.course_only
def test_unknown_or_empty_groups_are_clear_errors(ray_start):
    """Ray crashes the actor for an unknown or empty group, and asserts for an undeclared one."""
    ray = ray_start
    tracker = _tracker(ray).remote()
    with pytest.raises(ValueError, match="no concurrency group 'nope'"):
        ray.get(tracker.io.options(concurrency_group="nope").remote(), timeout=60)
    with pytest.raises(ValueError, match=r"concurrency_groups\['io'\] must be a whole number >= 1"):
        @ray.remote(concurrency_groups={"io": 0})
        class Empty:
            def f(self):
                return 1

    @ray.remote
    class Undeclared:
        @ray.method(concurrency_group="io")
        def f(self):
            return 1

    with pytest.raises(ValueError, match="does not declare"):
        Undeclared.remote()
    assert ray.get(tracker.compute.remote(), timeout=60) is None  # the actor lives on
