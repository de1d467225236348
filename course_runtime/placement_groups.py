"""Placement groups: bundles of resources reserved all together, for the tasks and actors that then run in them.

Mirrors Ray's GCS placement group manager (`gcs_placement_group_manager.cc`) and the raylet's bundle resources
(`placement_group_resource_manager.cc`): a placed bundle's resources leave the node's free pool and come back under
the names Ray gives them, `CPU_group_<id>` (any bundle of the group) and `CPU_group_<index>_<id>` (that bundle).
"""
import time

from .exceptions import ActorPlacementGroupRemoved, TaskPlacementGroupRemoved
from .scheduler import UNITS, describe, from_units

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
BUNDLE_UNITS = 1000 * UNITS  # a placed bundle also gets `bundle_group_...` = 1000, of which each task takes 0.001
WORK_UNITS = 10


class Group:
    def __init__(self, group_id, name, bundles, strategy, lifetime):
        self.group_id, self.name, self.bundles, self.strategy = group_id, name, bundles, strategy
        self.lifetime, self.state, self.reserved, self.created_at = lifetime, "PENDING", [], time.time()

    def key(self, name, index):
        """Ray's name for resource `name` of bundle `index` (-1: of any bundle)."""
        return f"{name}_group_{self.group_id}" if index < 0 else f"{name}_group_{index}_{self.group_id}"


class PlacementGroups:
    """Every group of this session, placed in creation order as the node's free resources allow."""

    def __init__(self, node, node_id):
        self.node, self.node_id, self.groups = node, node_id, {}

    def create(self, group_id, bundles, strategy, name, lifetime):
        """`bundles`: [{resource: units}], checked (and found placeable here) by util.placement_group."""
        self.groups[group_id] = Group(group_id, name, bundles, strategy, lifetime)
        return group_id

    def place_pending(self):
        """Reserve every pending group that fits now, whole or not at all, oldest first."""
        for group in [g for g in self.groups.values() if g.state == "PENDING"]:
            reserved = []
            for bundle in group.bundles:
                allocation = self.node.try_acquire(bundle)
                if allocation is None:
                    break
                reserved.append(allocation)
            if len(reserved) < len(group.bundles):
                for allocation in reserved:
                    self.node.release(allocation)
                return  # later groups wait behind it, as in Ray's queue of pending groups
            group.state, group.reserved = "CREATED", reserved
            for index, allocation in enumerate(reserved):
                for i in (index, -1) if allocation.gpu_shares else ():
                    self.node.group_gpus.setdefault(group.key("GPU", i), []).extend(allocation.gpu_ids())
            for index, bundle in enumerate(group.bundles):
                for name, units in [*bundle.items(), ("bundle", BUNDLE_UNITS)]:
                    for key in (group.key(name, index), group.key(name, -1)):
                        self.node.total[key] = self.node.total.get(key, 0) + units
                        self.node.available[key] = self.node.available.get(key, 0) + units

    def remove(self, group_id, actors, tasks):
        """Free the group's reservation. Returns the actors and the other tasks that run (or wait to run) in it."""
        group = self.groups.get(group_id)
        if group is None or group.state == "REMOVED":
            return [], []
        for index, bundle in enumerate(group.bundles):
            for key in [group.key(name, i) for name in [*bundle, "bundle"] for i in (index, -1)]:
                self.node.total.pop(key, None)
                self.node.available.pop(key, None)
                self.node.group_gpus.pop(key, None)
        for allocation in group.reserved:
            self.node.release(allocation)
        group.state, group.reserved = "REMOVED", []
        return ([a for a in actors if group_of(a.creation.spec.placement) == group_id],
                [t for t in tasks if t.actor is None and group_of(t.spec.placement) == group_id])

    def spec_in_group(self, spec, placement, parent_placement, for_actor):
        """(spec, error): the spec as it runs in its group (or in its parent's, if that one captures child tasks),
        asking for the group's resources; the error if its group was removed. Raises as Ray does for a request
        that no bundle could hold."""
        if placement is None and group_of(parent_placement) and parent_placement[3]:
            placement = parent_placement[:2] + (-1, True)
        if group_of(placement) is None:
            return spec, None
        group = self.groups.get(placement[1])
        if group is None or group.state == "REMOVED":
            return spec, (ActorPlacementGroupRemoved if for_actor else TaskPlacementGroupRemoved)(
                f"The placement group {placement[1]} of '{spec.name}' was removed.")
        return spec._replace(demand=self._demand_in(group, placement[2], spec.demand, spec.name),
                             placement=placement), None

    def _demand_in(self, group, index, demand, name):
        if not -1 <= index < len(group.bundles):
            raise ValueError(f"placement group bundle index {index} is invalid. Valid placement group indexes: "
                             f"0-{len(group.bundles)}")
        bundles = group.bundles if index < 0 else [group.bundles[index]]
        if not any(all(v <= b.get(k, 0) for k, v in demand.items()) for b in bundles):
            raise ValueError(f"Cannot schedule {name} with the placement group because the resource request "
                             f"{describe(demand)} cannot fit into any bundles for the placement group, "
                             f"{[{k: from_units(v) for k, v in b.items()} for b in group.bundles]}.")
        within = {}
        for i in {index, -1}:  # a task in one bundle also counts against the group's total
            within.update({group.key(k, i): v for k, v in [*demand.items(), ("bundle", WORK_UNITS)]})
        return within

    def rows(self):
        """Every group as (id, name, bundles in units, strategy, state): util.placement_group's table."""
        return [(g.group_id, g.name, g.bundles, g.strategy, g.state) for g in self.groups.values()]


def group_of(placement):
    """The group id a task's placement names, if any."""
    return placement[1] if placement is not None and placement[0] == "pg" else None
