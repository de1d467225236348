"""Resources and scheduling: CPU/GPU/custom and fractional requests, logical GPU ids and CUDA_VISIBLE_DEVICES,
the runtime context, resource limits, and infeasible requests."""

import re
import time

import pytest


def _max_overlap(intervals):
    """Largest number of (start, end) intervals running at the same moment."""
    return max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)


# ------------------------------------------------------------------------------------------ option checks


@pytest.mark.parametrize(
    "options",
    [{"num_cpus": 0.00001}, {"num_gpus": 0.00005}, {"resources": {"TPUish": 0.000001}}],
    ids=["num_cpus", "num_gpus", "custom"],
)
def test_precision_finer_than_0_0001_is_rejected(ray_start, options):
    """Fractional amounts finer than 0.0001 raise ValueError, in @remote(...) and in .options(...)."""
    ray = ray_start

    def f():
        return 1

    with pytest.raises(ValueError, match="0.0001"):
        ray.remote(**options)(f)
    with pytest.raises(ValueError, match="0.0001"):
        ray.remote(f).options(**options)


def test_precision_of_0_0001_and_one_and_a_half_cpus_are_accepted(ray_start):
    """num_cpus=0.0001 and num_cpus=1.5 are valid requests (Ray 2.60 accepts 1.5)."""
    ray = ray_start

    @ray.remote(num_cpus=0.0001)
    def tiny():
        return "tiny"

    assert ray.get(tiny.remote(), timeout=30) == "tiny"
    assert ray.get(tiny.options(num_cpus=1.5).remote(), timeout=30) == "tiny"


@pytest.mark.parametrize("key", ["CPU", "GPU"])
def test_cpu_and_gpu_keys_in_resources_are_rejected(ray_start, key):
    """resources={"CPU": 1} (or "GPU") raises ValueError: use num_cpus/num_gpus."""
    ray = ray_start

    def f():
        return 1

    with pytest.raises(ValueError, match="num_cpus"):
        ray.remote(resources={key: 1})(f)
    with pytest.raises(ValueError, match="num_cpus"):
        ray.remote(f).options(resources={key: 1})


# ------------------------------------------------------------------------------------------- CPU and custom


def test_resource_limit_respected_for_cpus(ray_start):
    """Four num_cpus=1 tasks on 2 CPUs: never more than 2 run at once, and 2 do run together."""
    ray = ray_start

    @ray.remote(num_cpus=1)
    def timed():
        start = time.time()
        time.sleep(0.5)
        return start, time.time()

    intervals = ray.get([timed.remote() for _ in range(4)], timeout=60)
    assert _max_overlap(intervals) == 2, intervals


def test_resource_limit_respected_for_custom_resources(ray_gpus):
    """Four tasks each needing one of 2 "TPUish" units (and half a CPU) never run more than 2 at once."""
    ray = ray_gpus

    @ray.remote(num_cpus=0.5, resources={"TPUish": 1})
    def timed():
        start = time.time()
        time.sleep(0.5)
        return start, time.time()

    intervals = ray.get([timed.remote() for _ in range(4)], timeout=60)
    assert _max_overlap(intervals) == 2, intervals


def test_custom_resource_task_sees_its_assignment(ray_gpus):
    """A task asking for a custom resource runs and sees it in get_assigned_resources()."""
    ray = ray_gpus

    @ray.remote(resources={"TPUish": 1.5})
    def assigned():
        return ray.get_runtime_context().get_assigned_resources()

    assert ray.get(assigned.remote(), timeout=30) == {"CPU": 1.0, "TPUish": 1.5}


def test_fractional_cpus_pack_four_tasks_on_two_cpus(ray_start, sync, tmp_path):
    """Four num_cpus=0.5 tasks on 2 CPUs all run at the same time (each waits until all four have started)."""
    ray = ray_start
    marks = [str(tmp_path / f"started{i}") for i in range(4)]

    @ray.remote(num_cpus=0.5)
    def meet(i):
        sync.touch(marks[i])
        return sync.wait_for_all(marks, 30), ray.get_runtime_context().get_assigned_resources()

    results = ray.get([meet.remote(i) for i in range(4)], timeout=60)
    assert results == [(True, {"CPU": 0.5})] * 4


# ---------------------------------------------------------------------------------------------------- GPUs


def test_gpu_task_sees_its_gpu_id_and_cuda_visible_devices(ray_gpus):
    """A num_gpus=1 task gets one id (0 or 1) from get_gpu_ids(), and CUDA_VISIBLE_DEVICES names the same one."""
    ray = ray_gpus

    @ray.remote(num_gpus=1)
    def gpu_info():
        import os

        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_runtime_context().get_assigned_resources()

    ids, visible, assigned = ray.get(gpu_info.remote(), timeout=30)
    assert len(ids) == 1 and int(ids[0]) in (0, 1)
    assert visible == str(ids[0])
    assert assigned == {"CPU": 1.0, "GPU": 1.0}


def test_two_gpu_task_sees_both_ids(ray_gpus):
    """A num_gpus=2 task sees ids 0 and 1, and CUDA_VISIBLE_DEVICES lists both."""
    ray = ray_gpus

    @ray.remote(num_gpus=2)
    def gpu_info():
        import os

        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    ids, visible = ray.get(gpu_info.remote(), timeout=30)
    assert sorted(int(i) for i in ids) == [0, 1]
    assert sorted(visible.split(",")) == ["0", "1"]


def test_concurrent_gpu_tasks_get_different_gpus(ray_gpus, sync, tmp_path):
    """Two num_gpus=1 tasks running at the same time get different GPU ids."""
    ray = ray_gpus
    marks = [str(tmp_path / f"started{i}") for i in range(2)]

    @ray.remote(num_gpus=1)
    def meet(i):
        import os

        sync.touch(marks[i])
        together = sync.wait_for_all(marks, 30)
        return together, ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    (t0, ids0, env0), (t1, ids1, env1) = ray.get([meet.remote(0), meet.remote(1)], timeout=60)
    assert t0 and t1
    assert sorted([int(ids0[0]), int(ids1[0])]) == [0, 1]
    assert {env0, env1} == {"0", "1"}


def test_fractional_gpu_tasks_pack_on_one_device(ray_gpus, sync, tmp_path):
    """Two concurrent num_gpus=0.5 tasks share one device: both see the same single id."""
    ray = ray_gpus
    marks = [str(tmp_path / f"started{i}") for i in range(2)]

    @ray.remote(num_gpus=0.5)
    def meet(i):
        import os

        sync.touch(marks[i])
        together = sync.wait_for_all(marks, 30)
        return together, ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    (t0, ids0, env0), (t1, ids1, env1) = ray.get([meet.remote(0), meet.remote(1)], timeout=60)
    assert t0 and t1
    assert len(ids0) == 1 and ids0 == ids1
    assert env0 == env1 == str(ids0[0])


def test_cpu_tasks_and_driver_see_no_gpu(ray_gpus):
    """CPU-only tasks (even after GPU tasks ran) and the driver: get_gpu_ids() == [] and no CUDA_VISIBLE_DEVICES."""
    ray = ray_gpus

    @ray.remote(num_gpus=1)
    def gpu_task():
        return ray.get_gpu_ids()

    @ray.remote
    def cpu_task():
        import os

        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    ray.get([gpu_task.remote() for _ in range(4)], timeout=30)
    for ids, visible in ray.get([cpu_task.remote() for _ in range(6)], timeout=30):
        assert ids == []
        assert visible is None
    assert ray.get_gpu_ids() == []


def test_available_gpus_while_gpu_tasks_run(ray_gpus, sync, tmp_path, poll):
    """One busy GPU of two leaves GPU 1.0 available; with both busy, "GPU" disappears from available_resources()."""
    ray = ray_gpus
    go = str(tmp_path / "go")

    @ray.remote(num_gpus=1, num_cpus=0)
    def hold(i):
        sync.touch(str(tmp_path / f"started{i}"))
        return sync.wait_for(go, 30)

    refs = []
    try:
        refs.append(hold.remote(0))
        assert sync.wait_for(str(tmp_path / "started0"), 30)
        assert poll(lambda: ray.available_resources().get("GPU") == 1.0), ray.available_resources()
        refs.append(hold.remote(1))
        assert sync.wait_for(str(tmp_path / "started1"), 30)
        assert poll(lambda: "GPU" not in ray.available_resources()), ray.available_resources()
        assert ray.available_resources().get("CPU") == 2.0
    finally:
        sync.touch(go)
    assert ray.get(refs, timeout=30) == [True, True]
    assert poll(lambda: ray.available_resources().get("GPU") == 2.0), ray.available_resources()


# ------------------------------------------------------------------------------------------ runtime context


def test_runtime_context_on_driver_and_in_tasks(ray_start):
    """Job and node ids are hex strings shared by driver and tasks; the task id is None on the driver and a
    distinct hex string in each task; a default task is assigned {'CPU': 1.0}."""
    ray = ray_start
    ctx = ray.get_runtime_context()
    job_id, node_id = ctx.get_job_id(), ctx.get_node_id()
    assert isinstance(job_id, str) and re.fullmatch(r"[0-9a-f]+", job_id)
    assert isinstance(node_id, str) and re.fullmatch(r"[0-9a-f]+", node_id)
    assert ctx.get_task_id() is None

    @ray.remote
    def inside():
        c = ray.get_runtime_context()
        return c.get_job_id(), c.get_node_id(), c.get_task_id(), c.get_assigned_resources()

    results = ray.get([inside.remote() for _ in range(3)], timeout=30)
    task_ids = set()
    for task_job, task_node, task_id, assigned in results:
        assert task_job == job_id
        assert task_node == node_id
        assert isinstance(task_id, str) and re.fullmatch(r"[0-9a-f]+", task_id)
        task_ids.add(task_id)
        assert assigned == {"CPU": 1.0}
    assert len(task_ids) == 3


def test_assigned_resources_follow_options(ray_start):
    """get_assigned_resources() reports the task's own request (num_cpus=0.5 -> {'CPU': 0.5})."""
    ray = ray_start

    @ray.remote
    def assigned():
        return ray.get_runtime_context().get_assigned_resources()

    assert ray.get(assigned.options(num_cpus=0.5).remote(), timeout=30) == {"CPU": 0.5}
    assert ray.get(assigned.options(num_cpus=2).remote(), timeout=30) == {"CPU": 2.0}


# ----------------------------------------------------------------------------------------- infeasible tasks


def _check_infeasible(ray, backend, exceptions, ref, must_mention):
    if backend == "course":
        # Difference from Ray: course_runtime fails an infeasible request at once with TaskUnschedulableError,
        # naming what was asked and what exists; Ray leaves it pending forever (get hangs or times out).
        start = time.monotonic()
        with pytest.raises(exceptions.TaskUnschedulableError) as info:
            ray.get(ref, timeout=30)
        assert time.monotonic() - start < 5
        message = str(info.value)
        for text in must_mention:
            assert text in message, f"{text!r} not in {message!r}"
    else:
        with pytest.raises(exceptions.GetTimeoutError):
            ray.get(ref, timeout=2)
        ray.cancel(ref)


def test_infeasible_cpu_request(ray_start, backend, exceptions):
    """num_cpus=4 on a 2-CPU runtime: course fails fast naming CPU 4 vs 2; Ray stays pending (get times out)."""
    ray = ray_start

    @ray.remote(num_cpus=4)
    def too_big():
        return 1

    _check_infeasible(ray, backend, exceptions, too_big.remote(), ["CPU", "4", "2"])

    @ray.remote
    def fine():
        return "still works"

    assert ray.get(fine.remote(), timeout=30) == "still works"


def test_infeasible_custom_resource_request(ray_start, backend, exceptions):
    """A custom resource that does not exist: course fails fast naming it; Ray stays pending."""
    ray = ray_start

    @ray.remote(resources={"unicorn": 1})
    def needs_unicorn():
        return 1

    _check_infeasible(ray, backend, exceptions, needs_unicorn.remote(), ["unicorn"])
    assert ray.get(ray.put("ok")) == "ok"


def test_infeasible_gpu_request(ray_gpus, backend, exceptions):
    """num_gpus=3 with 2 declared GPUs: course fails fast naming GPU 3 vs 2; Ray stays pending."""
    ray = ray_gpus

    @ray.remote(num_gpus=3)
    def too_many_gpus():
        return 1

    _check_infeasible(ray, backend, exceptions, too_many_gpus.remote(), ["GPU", "3", "2"])

    @ray.remote(num_gpus=1)
    def one_gpu():
        return len(ray.get_gpu_ids())

    assert ray.get(one_gpu.remote(), timeout=30) == 1
