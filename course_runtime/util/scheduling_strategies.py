"""Where a task or actor should run: the strategy objects of `scheduling_strategy=...`.

Mirrors `ray/util/scheduling_strategies.py`. On one machine "DEFAULT" and "SPREAD" place work the same way; node
affinity to this node, or soft affinity to any node, runs here; hard affinity to another node can never run.
"""
import string

NODE_ID_HEX_CHARS = 56  # a node id is 28 bytes, as in Ray


class PlacementGroupSchedulingStrategy:
    """Run in a placement group's reserved resources: in bundle `placement_group_bundle_index` (-1: any)."""

    def __init__(self, placement_group, placement_group_bundle_index=-1, placement_group_capture_child_tasks=None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def _placement(self):
        group = self.placement_group
        if group is None:
            return ("none",)  # outside any group, even under a parent that captures its child tasks
        if not hasattr(group, "id") or not hasattr(group.id, "hex"):
            raise TypeError(f"PlacementGroupSchedulingStrategy needs a PlacementGroup (from placement_group()), "
                            f"not {type(group).__name__}.")
        index = self.placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"placement_group_bundle_index must be an int, not {type(index).__name__}.")
        return ("pg", group.id.hex(), index, bool(self.placement_group_capture_child_tasks))


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` (from `ray.nodes()` or `get_runtime_context().get_node_id()`); with
    `soft=True`, anywhere else if that node is gone or full."""

    def __init__(self, node_id, soft, _spill_on_unavailable=False, _fail_on_unavailable=False):
        if not isinstance(node_id, str) and hasattr(node_id, "hex"):
            node_id = node_id.hex()
        self.node_id, self.soft = node_id, soft
        self._spill_on_unavailable, self._fail_on_unavailable = _spill_on_unavailable, _fail_on_unavailable
        if (not isinstance(node_id, str) or len(node_id) != NODE_ID_HEX_CHARS
                or set(node_id) - set(string.hexdigits) or set(node_id) == {"f"}):
            raise ValueError(f"Invalid node_id '{node_id}'. Node ID must be a valid hex string. To get a list of "
                             f"all nodes and their IDs in your cluster, use ray.nodes().")
        if _spill_on_unavailable and not soft:
            raise ValueError("_spill_on_unavailable cannot be set when soft is False. Please set soft to True to "
                             "use _spill_on_unavailable.")
        if _fail_on_unavailable and soft:
            raise ValueError("_fail_on_unavailable cannot be set when soft is True. Please set soft to False to "
                             "use _fail_on_unavailable.")

    def _placement(self):
        return ("node", self.node_id, bool(self.soft))

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"
