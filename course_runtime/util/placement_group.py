"""Placement groups: reserve bundles of resources together, then run tasks and actors inside them.

Mirrors `ray/util/placement_group.py`. The runtime keeps the groups (placement_groups.py); this module checks the
arguments, as Ray does, and gives the PlacementGroup handle. `ready()` is, as in Ray, a tiny task that can only run
once the group is placed.
"""
from .. import session
from ..api import cluster_resources, get_runtime_context, wait
from ..object_ref import random_hex
from ..remote_function import RemoteFunction
from ..scheduler import describe, from_units, to_units
from .scheduling_strategies import PlacementGroupSchedulingStrategy

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    def __init__(self, hex_id):
        self._hex = hex_id

    def hex(self):
        return self._hex

    def __eq__(self, other):
        return isinstance(other, PlacementGroupID) and other._hex == self._hex

    def __hash__(self):
        return hash(self._hex)

    def __repr__(self):
        return f"PlacementGroupID({self._hex})"


class PlacementGroup:
    """A handle to a placement group: pass it to PlacementGroupSchedulingStrategy, wait for it, remove it."""

    def __init__(self, id, bundle_cache=None):
        self.id, self._bundle_cache = id, bundle_cache

    def ready(self):
        """An ObjectRef that resolves to this group once all its bundles are reserved."""
        strategy = PlacementGroupSchedulingStrategy(self, placement_group_bundle_index=0)
        return _bundle_reservation_check.options(scheduling_strategy=strategy).remote(self)

    def wait(self, timeout_seconds=30):
        """True once the group is placed; False if it is not within `timeout_seconds`."""
        if placement_group_table(self).get("state") in (None, "REMOVED"):
            raise Exception(f"Placement group {self.id!r} does not exist.")  # Ray's type and words
        return bool(wait([self.ready()], timeout=timeout_seconds)[0])

    @property
    def bundle_specs(self):
        if self._bundle_cache is None:
            self._bundle_cache = list(placement_group_table(self)["bundles"].values())
        return self._bundle_cache

    @property
    def bundle_count(self):
        return len(self.bundle_specs)

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __reduce__(self):
        return PlacementGroup, (self.id, self._bundle_cache)


def _check_bundles(bundles):
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if not bundles:
        raise ValueError('Bundles must be a non-empty list of resource dictionaries. For example: '
                         '`[{"CPU": 1.0}, {"GPU": 1.0}]`. Got empty list instead.')
    checked = []
    for bundle in bundles:
        if not isinstance(bundle, dict) or not all(isinstance(k, str) for k in bundle):
            raise ValueError(f"Bundles must be dictionaries of resource name -> amount, not {bundle!r}.")
        units = {name: to_units(amount, f"bundle resource {name!r}") for name, amount in bundle.items()}
        if not any(units.values()):
            raise ValueError(f"Bundles cannot be an empty dictionary or resources with only 0 values. "
                             f"Bundles: {bundles}")
        checked.append({k: v for k, v in units.items() if v})
    return checked


def placement_group(bundles, strategy="PACK", name="", lifetime=None, _soft_target_node_id=None,
                    bundle_label_selector=None):
    """Reserve `bundles` (e.g. [{"CPU": 1}] * 2) together; returns a PlacementGroup at once (see ready())."""
    checked = _check_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies are: "
                         f"{set(STRATEGIES)}.")
    _check_placeable(checked, strategy, name)
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` argument must be either `None` or 'detached'. Got {lifetime}.")
    if bundle_label_selector is not None or _soft_target_node_id is not None:
        raise NotImplementedError("bundle_label_selector and _soft_target_node_id choose among a cluster's "
                                  "nodes; the course runtime has one. Use real Ray (COURSE_BACKEND=ray).")
    group_id = session.current().placement_group_op("create", random_hex(18), checked, strategy, name, lifetime)
    return PlacementGroup(PlacementGroupID(group_id), [{k: float(v) for k, v in b.items() if v} for b in bundles])


def _check_placeable(bundles, strategy, name):
    """Ray would keep a group no node can hold PENDING forever; on one machine that is a ValueError at once."""
    total = {k: to_units(v, k) for k, v in cluster_resources().items()}
    together = {k: sum(b.get(k, 0) for b in bundles) for b in bundles for k in b}
    why = None
    if any(v > total.get(k, 0) for k, v in together.items()):
        why = (f"its bundles ask for {describe(together)} together but this machine has only "
               f"{describe({k: total.get(k, 0) for k in together})} in total")
    if strategy == "STRICT_SPREAD" and len(bundles) > 1:
        why = f"STRICT_SPREAD puts each of its {len(bundles)} bundles on a different node, and this is one node"
    if why:
        raise ValueError(f"The placement group {name or ''} can never be placed: {why}. Use PACK, SPREAD or "
                         f"STRICT_PACK, ask for less, or use a Ray cluster (COURSE_BACKEND=ray).")


def remove_placement_group(placement_group):
    """Free the group's reservation. Tasks and actors running in it are killed, as in Ray."""
    _check_group(placement_group)
    session.current().placement_group_op("remove", placement_group.id.hex())


def get_placement_group(placement_group_name):
    row = next((r for r in _table().values() if r["name"] == placement_group_name and r["state"] != "REMOVED"),
               None)
    if row is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return PlacementGroup(PlacementGroupID(row["placement_group_id"]), list(row["bundles"].values()))


def placement_group_table(placement_group=None):
    """Ray's table: a dict of fields for one group, or for every group by id."""
    if placement_group is None:
        return _table()
    _check_group(placement_group)
    return _table().get(placement_group.id.hex(), {})


def _table():
    node_id, table = get_runtime_context().get_node_id(), {}
    for group_id, name, bundles, strategy, state in session.current().placement_group_op("rows"):
        placed = state == "CREATED"
        table[group_id] = {
            "placement_group_id": group_id, "name": name,
            "bundles": {i: {k: from_units(v) for k, v in b.items()} for i, b in enumerate(bundles)},
            "bundles_to_node_id": {i: node_id for i in range(len(bundles))} if placed else {},
            "strategy": strategy, "state": state, "stats": {"scheduling_state": "FINISHED" if placed else state}}
    return table


def get_current_placement_group():
    """The group this task or actor runs in; None in the driver, or outside any group."""
    group_id = session.current().runtime_context()._placement_group_id()
    return PlacementGroup(PlacementGroupID(group_id)) if group_id else None


def _check_group(placement_group):
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"Expected a PlacementGroup (from placement_group()), not {type(placement_group).__name__}.")


def _reservation_check(placement_group):
    return placement_group


_bundle_reservation_check = RemoteFunction(_reservation_check, {"num_cpus": 0, "max_retries": 0})
