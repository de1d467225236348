"""scheduling_strategy: "DEFAULT", "SPREAD" and node affinity, as in Ray 2.60 (shared public-API tests)."""
import pytest


def _strategies(ray):
    import importlib
    return importlib.import_module(f"{ray.__name__}.util.scheduling_strategies")


def test_default_spread_and_affinity_to_this_node_run_here(ray_start):
    ray = ray_start
    strategies = _strategies(ray)
    here = ray.get_runtime_context().get_node_id()
    assert here in [node["NodeID"] for node in ray.nodes()]

    @ray.remote
    def where():
        return ray.get_runtime_context().get_node_id()

    @ray.remote
    class Where:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    elsewhere = "ab" * 28  # a well-formed id that no node has
    choices = ["DEFAULT", "SPREAD", strategies.NodeAffinitySchedulingStrategy(here, soft=False),
               strategies.NodeAffinitySchedulingStrategy(elsewhere, soft=True)]
    assert ray.get([where.options(scheduling_strategy=s).remote() for s in choices], timeout=120) == [here] * 4
    actor = Where.options(scheduling_strategy=strategies.NodeAffinitySchedulingStrategy(here, soft=False)).remote()
    assert ray.get(actor.node.remote(), timeout=120) == here
    spread = [where.options(scheduling_strategy="SPREAD").remote() for _ in range(8)]
    assert ray.get(spread, timeout=120) == [here] * 8


def test_hard_affinity_to_a_node_that_does_not_exist_fails_at_once(ray_start, exceptions):
    ray = ray_start
    strategies = _strategies(ray)
    nowhere = strategies.NodeAffinitySchedulingStrategy("ab" * 28, soft=False)

    @ray.remote
    def f():
        return 1

    @ray.remote
    class A:
        def f(self):
            return 1

    with pytest.raises(exceptions.TaskUnschedulableError, match="NodeAffinitySchedulingStrategy"):
        ray.get(f.options(scheduling_strategy=nowhere).remote(), timeout=30)
    with pytest.raises(exceptions.ActorUnschedulableError, match="NodeAffinitySchedulingStrategy"):
        ray.get(A.options(scheduling_strategy=nowhere).remote().f.remote(), timeout=30)
    assert ray.get(f.remote(), timeout=60) == 1


def test_bad_strategies_are_refused_as_ray_refuses_them(ray_start):
    ray = ray_start
    strategies = _strategies(ray)

    @ray.remote
    def f():
        return 1

    for bad in ("spread", "PACK"):
        with pytest.raises(ValueError, match=f"Invalid scheduling_strategy value {bad}"):
            f.options(scheduling_strategy=bad).remote()
    with pytest.raises(TypeError, match="scheduling_strategy"):
        f.options(scheduling_strategy=3).remote()
    for node_id in ("zz", "f" * 56):  # not hex of 28 bytes; the nil id
        with pytest.raises(ValueError, match="Invalid node_id"):
            strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)
    with pytest.raises(ValueError, match="_spill_on_unavailable cannot be set"):
        strategies.NodeAffinitySchedulingStrategy("ab" * 28, soft=False, _spill_on_unavailable=True)
    with pytest.raises(ValueError, match="_fail_on_unavailable cannot be set"):
        strategies.NodeAffinitySchedulingStrategy("ab" * 28, soft=True, _fail_on_unavailable=True)
