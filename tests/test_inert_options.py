"""Options the course runtime accepts and that have no effect here (README, Differences from Ray): each one is
accepted where Ray accepts it, and the work still runs. The options that act are tested where they act."""
import pytest

pytestmark = pytest.mark.course_only

TASK_AND_ACTOR = {"accelerator_type": "A100", "label_selector": {"zone": "a"}, "fallback_strategy": [],
                  "enable_task_events": False, "_metadata": {}, "_labels": {"team": "x"}, "object_store_memory": 10}
TASK_ONLY = {"max_calls": 2}
ACTOR_ONLY = {"allow_out_of_order_execution": False}
INIT = {"include_dashboard": False, "dashboard_host": "127.0.0.1", "dashboard_port": 8265, "configure_logging": False,
        "logging_level": "info", "log_to_driver": True, "labels": {"zone": "a"}, "_temp_dir": "/tmp"}


@pytest.mark.parametrize("option", sorted({**TASK_AND_ACTOR, **TASK_ONLY}))
def test_task_options_without_effect_are_accepted(ray_start, option):
    ray = ray_start
    value = {**TASK_AND_ACTOR, **TASK_ONLY}[option]

    @ray.remote(**{option: value})
    def f():
        return 1

    assert ray.get(f.remote(), timeout=60) == 1
    if option != "max_calls":  # Ray allows max_calls only in @remote
        assert ray.get(f.options(**{option: value}).remote(), timeout=60) == 1


@pytest.mark.parametrize("option", sorted({**TASK_AND_ACTOR, **ACTOR_ONLY}))
def test_actor_options_without_effect_are_accepted(ray_start, option):
    ray = ray_start

    @ray.remote
    class A:
        def f(self):
            return 1

    actor = A.options(**{option: {**TASK_AND_ACTOR, **ACTOR_ONLY}[option]}).remote()
    assert ray.get(actor.f.remote(), timeout=60) == 1


def test_init_options_without_effect_are_accepted(ray_module):
    ray = ray_module
    ray.init(num_cpus=1, **INIT)
    assert ray.get(ray.put(1)) == 1
