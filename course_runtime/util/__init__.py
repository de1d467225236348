"""Ray's utilities: ActorPool here, Queue in util.queue, multiprocessing.Pool in util.multiprocessing, placement
groups, scheduling strategies and the state API. Mirrors `ray.util` (which also names the placement group
functions directly, as here)."""
from . import multiprocessing, scheduling_strategies, state
from .actor_pool import ActorPool
from .placement_group import (get_current_placement_group, get_placement_group, placement_group,
                              placement_group_table, remove_placement_group)

__all__ = ["ActorPool", "get_current_placement_group", "get_placement_group", "multiprocessing", "placement_group",
           "placement_group_table", "remove_placement_group", "scheduling_strategies", "state"]
