"""Placement groups on one node, as in Ray 2.60 (shared public-API tests, then the course runtime's fast failures)."""
import importlib
import os
import time

import pytest
from conftest import wait_until


def _cpus_free(ray, n):
    """True once `n` CPUs are free (Ray gives a removed group's back a moment later)."""
    return wait_until(lambda: ray.available_resources().get("CPU") == n, timeout=30)


def _pg(ray):
    return (importlib.import_module(f"{ray.__name__}.util.placement_group"),
            importlib.import_module(f"{ray.__name__}.util.scheduling_strategies").PlacementGroupSchedulingStrategy)


def test_a_group_reserves_its_bundles_and_says_so(ray_start):
    ray = ray_start
    pgs, _ = _pg(ray)
    pg = pgs.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK", name="course-two")
    try:
        assert ray.get(pg.ready(), timeout=60) == pg
        assert pg.wait(10) is True
        assert pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}] and pg.bundle_count == 2
        row = pgs.placement_group_table(pg)
        assert row["placement_group_id"] == pg.id.hex() and row["name"] == "course-two"
        assert row["state"] == "CREATED" and row["strategy"] == "PACK"
        assert row["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 1.0}}
        here = ray.get_runtime_context().get_node_id()
        assert row["bundles_to_node_id"] == {0: here, 1: here}
        assert pgs.get_placement_group("course-two") == pg
        assert pg.id.hex() in pgs.placement_group_table()
        # Reserved: the node's CPUs are gone from the free pool, and come back under the group's names (Ray's
        # resource view catches up a moment after the group is placed).
        def group_cpus():
            total = ray.cluster_resources()
            return total.get(f"CPU_group_{pg.id.hex()}"), total.get(f"CPU_group_0_{pg.id.hex()}")

        assert wait_until(lambda: group_cpus() == (2, 1), timeout=30), ray.cluster_resources()
        assert wait_until(lambda: ray.available_resources().get("CPU", 0) == 0, timeout=30)
    finally:
        pgs.remove_placement_group(pg)
    assert _cpus_free(ray, 2)  # given back
    assert pgs.placement_group_table(pg)["state"] == "REMOVED"


def test_tasks_and_actors_run_in_their_bundles_and_children_can_be_captured(ray_start):
    ray = ray_start
    pgs, in_group = _pg(ray)
    pg = pgs.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert pg.wait(60)

    @ray.remote
    def where():
        current = pgs.get_current_placement_group()
        return (current.id.hex() if current else None), ray.get_runtime_context().get_assigned_resources()

    @ray.remote
    def parent():
        return ray.get(where.remote())  # in the group only if the parent captures its children

    @ray.remote
    class Member:
        def group(self):
            return pgs.get_current_placement_group().id.hex()

    try:
        assert pgs.get_current_placement_group() is None  # the driver runs in no group
        for index in (-1, 0, 1):
            strategy = in_group(pg, placement_group_bundle_index=index)
            assert ray.get(where.options(scheduling_strategy=strategy).remote(), timeout=60) == \
                (pg.id.hex(), {"CPU": 1.0})
        captured = in_group(pg, placement_group_capture_child_tasks=True)
        assert ray.get(parent.options(scheduling_strategy=captured).remote(), timeout=60) == \
            (pg.id.hex(), {"CPU": 1.0})
        member = Member.options(scheduling_strategy=in_group(pg)).remote()
        assert ray.get(member.group.remote(), timeout=60) == pg.id.hex()
    finally:
        pgs.remove_placement_group(pg)


def test_a_group_waits_until_its_bundles_fit_and_work_outside_waits_for_what_is_left(ray_start, sync, tmp_path):
    ray = ray_start
    pgs, in_group = _pg(ray)

    @ray.remote
    def hold(path):
        return sync.wait_for(path, 60)

    @ray.remote
    def one():
        return 1

    release = str(tmp_path / "release")
    holder = hold.remote(release)
    time.sleep(0.5)
    pg = pgs.placement_group([{"CPU": 2}])  # needs both CPUs; one is busy
    try:
        assert pg.wait(1) is False and pgs.placement_group_table(pg)["state"] == "PENDING"
        sync.touch(release)
        assert ray.get(holder, timeout=60) is True
        assert pg.wait(60) is True
        outside = one.remote()  # every CPU is reserved now: plain work waits
        assert ray.wait([outside], timeout=1)[0] == []
        assert ray.get(one.options(scheduling_strategy=in_group(pg)).remote(), timeout=60) == 1
    finally:
        pgs.remove_placement_group(pg)
    assert ray.get(outside, timeout=60) == 1


def test_removing_a_group_ends_its_actors_and_its_pending_readiness(ray_start, exceptions):
    ray = ray_start
    pgs, in_group = _pg(ray)

    @ray.remote
    class Member:
        def ping(self):
            return "pong"

    pg = pgs.placement_group([{"CPU": 1}])
    assert pg.wait(60)
    member = Member.options(scheduling_strategy=in_group(pg)).remote()
    assert ray.get(member.ping.remote(), timeout=60) == "pong"
    pgs.remove_placement_group(pg)
    with pytest.raises(exceptions.RayActorError):
        ray.get(member.ping.remote(), timeout=60)
    with pytest.raises(Exception, match="does not exist"):
        pg.wait(1)
    everything = pgs.placement_group([{"CPU": 2}])
    assert everything.wait(60)
    waiting = pgs.placement_group([{"CPU": 1}])  # pending while the first holds every CPU
    ready = waiting.ready()
    pgs.remove_placement_group(waiting)
    with pytest.raises(exceptions.TaskPlacementGroupRemoved):
        ray.get(ready, timeout=60)
    pgs.remove_placement_group(everything)


def test_requests_a_group_could_never_hold_are_refused_as_ray_refuses_them(ray_start):
    ray = ray_start
    pgs, in_group = _pg(ray)

    @ray.remote
    def f():
        return 1

    pg = pgs.placement_group([{"CPU": 1}, {"CPU": 1}])
    try:
        with pytest.raises(ValueError, match="cannot fit into any bundles"):
            f.options(num_cpus=2, scheduling_strategy=in_group(pg)).remote()
        with pytest.raises(ValueError, match="bundle index 5 is invalid"):
            f.options(scheduling_strategy=in_group(pg, placement_group_bundle_index=5)).remote()
    finally:
        pgs.remove_placement_group(pg)
    for bundles, message in [([], "non-empty list"), ([{}], "empty dictionary"), ("CPU", "must be a list")]:
        with pytest.raises(ValueError, match=message):
            pgs.placement_group(bundles)
    with pytest.raises(ValueError, match="Invalid placement group strategy"):
        pgs.placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="Failed to look up placement group with name: nowhere"):
        pgs.get_placement_group("nowhere")


@pytest.mark.course_only
def test_groups_that_could_never_be_placed_fail_at_once(ray_start, exceptions):
    """Ray keeps these PENDING forever; the course runtime says why at once (README, Differences)."""
    ray = ray_start
    pgs, _ = _pg(ray)
    with pytest.raises(ValueError, match="STRICT_SPREAD"):
        pgs.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    with pytest.raises(ValueError, match="can never be placed.*this machine has only"):
        pgs.placement_group([{"CPU": 8}])
    with pytest.raises(ValueError, match="together"):
        pgs.placement_group([{"CPU": 1}] * 3, strategy="SPREAD")
    with pytest.raises(ValueError, match="can never be placed"):
        pgs.placement_group([{"GPU": 1}])
    with pytest.raises(ValueError, match=">= 0"):  # Ray accepts it, and its raylet crashes when it is freed
        pgs.placement_group([{"CPU": -1}])
    assert pgs.placement_group([{"CPU": 1}], strategy="STRICT_SPREAD").wait(30)  # one bundle: one node is enough


@pytest.mark.course_only
def test_a_running_task_in_a_removed_group_fails_with_the_reason(ray_start, exceptions):
    """Ray kills it, retries it, and the retry waits forever for the gone group; here it fails, saying why."""
    ray = ray_start
    pgs, in_group = _pg(ray)

    @ray.remote
    def sleeper():
        time.sleep(60)

    pg = pgs.placement_group([{"CPU": 1}])
    running = sleeper.options(scheduling_strategy=in_group(pg)).remote()
    time.sleep(1)
    started = time.monotonic()
    pgs.remove_placement_group(pg)
    with pytest.raises(exceptions.TaskPlacementGroupRemoved, match="was removed"):
        ray.get(running, timeout=30)
    assert time.monotonic() - started < 10
    with pytest.raises(exceptions.TaskPlacementGroupRemoved):
        ray.get(sleeper.options(scheduling_strategy=in_group(pg)).remote(), timeout=30)
    assert _cpus_free(ray, 2)


def test_work_in_a_gpu_bundle_sees_that_bundles_gpu(ray_gpus):
    ray = ray_gpus
    pgs, in_group = _pg(ray)

    @ray.remote(num_gpus=1)
    def visible():
        return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_gpu_ids()

    pg = pgs.placement_group([{"CPU": 1, "GPU": 1}, {"CPU": 1, "GPU": 1}])
    try:
        assert pg.wait(60)
        seen = ray.get([visible.options(scheduling_strategy=in_group(pg, placement_group_bundle_index=i)).remote()
                        for i in (0, 1)], timeout=60)
        assert sorted(devices for devices, _ in seen) == ["0", "1"], seen
        assert sorted(tuple(ids) for _, ids in seen) == [(0,), (1,)], seen
    finally:
        pgs.remove_placement_group(pg)
