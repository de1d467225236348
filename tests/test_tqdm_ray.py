"""ray.experimental.tqdm_ray: progress bars updated from tasks and actors, drawn in the driver."""
import importlib
import time

import pytest


def _tqdm(ray):
    return importlib.import_module(f"{ray.__name__}.experimental.tqdm_ray").tqdm


def test_bars_in_tasks_and_actors_run_and_count(ray_start):
    ray = ray_start
    tqdm = _tqdm(ray)

    @ray.remote
    def work(n):
        bar = tqdm(range(n), desc="work")
        for _ in bar:
            time.sleep(0.01)
        return bar.n

    @ray.remote
    class Worker:
        def run(self, n):
            bar = tqdm(total=n, desc="actor")
            for _ in range(n):
                bar.update(1)
            bar.close()
            return bar.n

    assert ray.get([work.remote(20), work.remote(10)], timeout=60) == [20, 10]
    assert ray.get(Worker.remote().run.remote(15), timeout=60) == 15


@pytest.mark.course_only
def test_the_driver_redraws_each_bar_in_place(ray_start, capfd):
    ray = ray_start
    tqdm = _tqdm(ray)

    @ray.remote
    def work(n):
        for _ in tqdm(range(n), desc="squares", flush_interval_s=0):
            time.sleep(0.01)

    ray.get(work.remote(30), timeout=60)
    ray.get(ray.put(1))  # a get: the driver prints what arrived
    err = capfd.readouterr().err
    assert "squares: 100%|" in err and "| 30/30 [" in err, err[-500:]
    assert "\r" in err and err.count("\n") <= 2, err[-500:]  # redrawn on one line, not a line per update


@pytest.mark.course_only
def test_a_bar_outside_a_session_is_a_clear_error(ray_module):
    tqdm = _tqdm(ray_module)
    with pytest.raises(RuntimeError, match="ray.init"):
        tqdm(range(3))
