"""Starting and stopping the runtime: init/shutdown/is_initialized, auto-init, and the cluster-wide views
(cluster_resources, available_resources, nodes), with Ray 2.60's behaviour."""

import inspect
import os
import warnings

import pytest


def _usable_cores():
    return {os.cpu_count(), len(os.sched_getaffinity(0))}


def test_init_signature_has_rays_parameters_and_defaults(ray_module):
    """init() takes Ray's keyword parameters with Ray's defaults, plus **kwargs for Ray-only options."""
    params = inspect.signature(ray_module.init).parameters
    expected = {
        "num_cpus": None,
        "num_gpus": None,
        "resources": None,
        "object_store_memory": None,
        "local_mode": False,
        "ignore_reinit_error": False,
        "namespace": None,
    }
    for name, default in expected.items():
        assert name in params, f"init() has no parameter {name!r}"
        assert params[name].default == default, f"init({name}=...) default is {params[name].default!r}"
        assert params[name].kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()), "init() must accept **kwargs"


def test_init_accepts_ray_only_options_silently(ray_module, backend, capfd):
    """Ray-only init options (dashboard, logging, runtime_env, ...) are accepted without warnings."""
    ray = ray_module
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            dashboard_port=None,
            logging_level="info",
            log_to_driver=True,
            runtime_env={},
            configure_logging=True,
            _system_config={},
            namespace="lifecycle-test",
        )
    assert [str(w.message) for w in caught] == []
    assert ray.is_initialized()
    if backend == "course":
        # The course runtime ignores them "without noise" (Ray itself logs "Started a local Ray instance.").
        assert capfd.readouterr().err == ""

    @ray.remote
    def add(a, b):
        return a + b

    assert ray.get(add.remote(1, 2)) == 3


def test_init_rejects_unknown_keyword(ray_module):
    """An unknown init keyword raises RuntimeError naming it (as Ray does) and starts nothing."""
    ray = ray_module
    with pytest.raises(RuntimeError, match="bogus_option"):
        ray.init(num_cpus=2, bogus_option=1)
    assert not ray.is_initialized()


def test_local_mode_is_no_longer_supported(ray_module):
    """init(local_mode=True) raises RuntimeError, as in Ray 2.60."""
    with pytest.raises(RuntimeError, match="no longer supported"):
        ray_module.init(local_mode=True)
    assert not ray_module.is_initialized()


def test_second_init_raises_unless_ignore_reinit_error(ray_module):
    """A second init() raises Ray's 'init twice' RuntimeError; ignore_reinit_error=True keeps the running runtime."""
    ray = ray_module
    ray.init(num_cpus=2)
    kept = ray.put("still here")
    with pytest.raises(RuntimeError, match="init twice"):
        ray.init(num_cpus=2)
    ray.init(num_cpus=2, ignore_reinit_error=True)
    assert ray.is_initialized()
    assert ray.get(kept) == "still here"


def test_shutdown_is_safe_twice_and_without_init(ray_module):
    """shutdown() with nothing running, and a second shutdown(), are no-ops."""
    ray = ray_module
    ray.shutdown()
    ray.init(num_cpus=2)
    ray.shutdown()
    ray.shutdown()
    assert not ray.is_initialized()


def test_is_initialized_follows_init_and_shutdown_and_init_works_again(ray_module):
    """is_initialized() is False/True/False around init/shutdown, and init() after shutdown() gives a working runtime."""
    ray = ray_module
    assert ray.is_initialized() is False
    ray.init(num_cpus=2)
    assert ray.is_initialized() is True

    @ray.remote
    def square(x):
        return x * x

    assert ray.get(square.remote(3)) == 9
    ray.shutdown()
    assert ray.is_initialized() is False
    ray.init(num_cpus=1)
    assert ray.is_initialized() is True
    assert ray.cluster_resources()["CPU"] == 1.0
    assert ray.get(square.remote(4)) == 16


def test_auto_init_on_first_remote_call(ray_module):
    """The first .remote() without init() starts the runtime with all the machine's cores."""
    ray = ray_module
    assert not ray.is_initialized()

    @ray.remote
    def hello():
        return "hi"

    ref = hello.remote()
    assert ray.is_initialized()
    assert ray.get(ref) == "hi"
    assert ray.cluster_resources()["CPU"] in _usable_cores()


def test_auto_init_on_first_put(ray_module):
    """The first put() without init() starts the runtime."""
    ray = ray_module
    assert not ray.is_initialized()
    ref = ray.put([1, 2, 3])
    assert ray.is_initialized()
    assert ray.get(ref) == [1, 2, 3]


def test_cluster_resources_report_cpus(ray_start, poll):
    """cluster_resources() and (when idle) available_resources() report the CPUs given to init, as floats."""
    ray = ray_start
    total = ray.cluster_resources()
    assert isinstance(total, dict)
    assert total["CPU"] == 2.0 and isinstance(total["CPU"], float)
    assert poll(lambda: ray.available_resources().get("CPU") == 2.0), ray.available_resources()


def test_cluster_resources_report_gpus_and_custom(ray_gpus, poll):
    """Declared GPUs and custom resources appear in cluster_resources() and available_resources()."""
    ray = ray_gpus
    total = ray.cluster_resources()
    assert total["CPU"] == 2.0
    assert total["GPU"] == 2.0
    assert total["TPUish"] == 2.0

    def idle():
        free = ray.available_resources()
        return free.get("CPU") == 2.0 and free.get("GPU") == 2.0 and free.get("TPUish") == 2.0

    assert poll(idle), ray.available_resources()


def test_fully_used_resource_disappears_from_available_resources(ray_start, sync, tmp_path, poll):
    """While both CPUs are busy, "CPU" is absent from available_resources() (not 0); it comes back afterwards."""
    ray = ray_start
    go = str(tmp_path / "go")

    @ray.remote(num_cpus=1)
    def hold(i):
        sync.touch(str(tmp_path / f"started{i}"))
        return sync.wait_for(go, 30)

    refs = [hold.remote(i) for i in range(2)]
    try:
        assert sync.wait_for_all([str(tmp_path / f"started{i}") for i in range(2)], 30)
        assert poll(lambda: "CPU" not in ray.available_resources()), ray.available_resources()
        assert ray.cluster_resources()["CPU"] == 2.0
    finally:
        sync.touch(go)
    assert ray.get(refs, timeout=30) == [True, True]
    assert poll(lambda: ray.available_resources().get("CPU") == 2.0), ray.available_resources()


def test_partly_used_resource_shows_what_is_left(ray_start, sync, tmp_path, poll):
    """With one of two CPUs busy, available_resources()["CPU"] is 1.0."""
    ray = ray_start
    go = str(tmp_path / "go")

    @ray.remote
    def hold():
        sync.touch(str(tmp_path / "started"))
        return sync.wait_for(go, 30)

    ref = hold.remote()
    try:
        assert sync.wait_for(str(tmp_path / "started"), 30)
        assert poll(lambda: ray.available_resources().get("CPU") == 1.0), ray.available_resources()
    finally:
        sync.touch(go)
    assert ray.get(ref, timeout=30) is True


def test_nodes_lists_the_one_local_node(ray_start):
    """nodes() is a list with one alive node dict carrying NodeID and Resources."""
    ray = ray_start
    nodes = ray.nodes()
    assert isinstance(nodes, list) and len(nodes) == 1
    node = nodes[0]
    assert node["Alive"] is True
    assert isinstance(node["NodeID"], str) and node["NodeID"]
    assert node["Resources"]["CPU"] == 2.0
    assert node["NodeID"] == ray.get_runtime_context().get_node_id()
