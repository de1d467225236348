"""Ray's small utilities built on actors: ActorPool here, Queue in util.queue, multiprocessing.Pool in
util.multiprocessing. Mirrors `ray.util`."""
from . import multiprocessing, placement_group, scheduling_strategies, state
from .actor_pool import ActorPool

__all__ = ["ActorPool", "multiprocessing", "placement_group", "scheduling_strategies", "state"]
