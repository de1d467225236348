"""ray.util.state: tasks, actors, objects, nodes and workers as records with Ray's field names (shared tests; on
real Ray the state API needs the dashboard, so these start a session of their own with it)."""
import importlib

import pytest
from conftest import wait_until


@pytest.fixture
def with_state(ray_module, backend):
    ray = ray_module
    ray.init(num_cpus=2, **({"include_dashboard": True} if backend == "ray" else {}))
    yield ray, importlib.import_module(f"{ray.__name__}.util.state")
    ray.shutdown()


def test_tasks_and_their_states(with_state, sync, tmp_path):
    ray, state = with_state

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def hold(path):
        return sync.wait_for(path, 60)

    assert ray.get([square.remote(i) for i in range(3)], timeout=60) == [0, 1, 4]
    release = str(tmp_path / "release")
    held = hold.remote(release)

    def running():
        return [t for t in state.list_tasks(filters=[("state", "=", "RUNNING")]) if t.name == "hold"]
    assert wait_until(running, timeout=60), state.list_tasks()
    task = running()[0]
    assert task.type == "NORMAL_TASK" and task.func_or_class_name == "hold"
    assert state.get_task(task.task_id).state == "RUNNING"
    finished = lambda: [t for t in state.list_tasks(filters=[("name", "=", "square")]) if t.state == "FINISHED"]
    assert wait_until(lambda: len(finished()) == 3, timeout=60), state.list_tasks()
    assert len(state.list_tasks(limit=2)) == 2
    assert all(t.name != "square" for t in state.list_tasks(filters=[("name", "!=", "square")]))
    sync.touch(release)
    assert ray.get(held, timeout=60) is True
    summary = lambda: state.summarize_tasks()["cluster"]["summary"]
    assert wait_until(lambda: summary().get("hold", {}).get("state_counts") == {"FINISHED": 1}, timeout=60)
    assert summary()["square"] == {"func_or_class_name": "square", "type": "NORMAL_TASK",
                                   "state_counts": {"FINISHED": 3}}


def test_actors_nodes_workers_and_objects(with_state):
    ray, state = with_state

    @ray.remote
    class Keeper:
        def pid(self):
            import os
            return os.getpid()

    keeper = Keeper.options(name="keeper").remote()
    pid = ray.get(keeper.pid.remote(), timeout=60)
    actors = wait_until(lambda: [a for a in state.list_actors() if a.name == "keeper" and a.state == "ALIVE"],
                        timeout=60)
    assert actors and actors[0].class_name.endswith("Keeper") and actors[0].pid == pid
    assert state.get_actor(actors[0].actor_id).name == "keeper"
    nodes = state.list_nodes()
    assert len(nodes) == 1 and nodes[0].state == "ALIVE" and nodes[0].is_head_node
    assert nodes[0].node_id == ray.get_runtime_context().get_node_id() and nodes[0].resources_total["CPU"] == 2
    workers = state.list_workers()
    assert [w for w in workers if w.worker_type == "DRIVER"] and pid in [w.pid for w in workers]
    stored = ray.put(b"x" * 300_000)
    objects = wait_until(lambda: [o for o in state.list_objects() if o.object_id == stored.hex()], timeout=60)
    assert objects and objects[0].object_size >= 300_000


def test_bad_filters_are_refused(with_state):
    ray, state = with_state
    with pytest.raises(ValueError, match="Unsupported filter predicate"):
        state.list_tasks(filters=[("state", "~", "RUNNING")])


@pytest.mark.course_only
def test_the_state_api_needs_a_running_session_and_known_fields(ray_module):
    state = importlib.import_module("course_runtime.util.state")
    with pytest.raises(state.RayStateApiException, match="ray.init"):
        state.list_tasks()
    ray_module.init(num_cpus=1)
    with pytest.raises(state.RayStateApiException, match="filter column nonsense is not supported"):
        state.list_tasks(filters=[("nonsense", "=", 1)])
