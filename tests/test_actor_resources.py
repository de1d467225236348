"""What an actor holds while it lives, by Ray 2.60's defaults."""


def test_an_actor_asking_for_gpus_also_holds_one_cpu(ray_gpus):
    """No num_cpus but num_gpus=0.5: each actor holds {'CPU': 1, 'GPU': 0.5}, so only two fit on two CPUs."""
    ray = ray_gpus

    @ray.remote(num_gpus=0.5)
    class Holder:
        def held(self):
            return dict(sorted(ray.get_runtime_context().get_assigned_resources().items()))

    actors = [Holder.remote() for _ in range(4)]
    ready, not_ready = ray.wait([a.held.remote() for a in actors], num_returns=4, timeout=5)
    assert len(ready) == 2 and len(not_ready) == 2
    assert ray.get(ready[0]) == {"CPU": 1.0, "GPU": 0.5}
    for actor in actors:
        ray.kill(actor)


def test_a_plain_actor_holds_no_cpu(ray_start):
    """Without resource options an actor takes no CPU, so two tasks still run beside three actors."""
    ray = ray_start

    @ray.remote
    class Plain:
        def held(self):
            return ray.get_runtime_context().get_assigned_resources().get("CPU", 0)

    actors = [Plain.remote() for _ in range(3)]
    assert ray.get([a.held.remote() for a in actors], timeout=30) == [0, 0, 0]
    assert ray.available_resources().get("CPU") == 2
