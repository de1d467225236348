"""Resource accounting and the queue of tasks waiting to run: the scheduling half of Ray's raylet.

Mirrors the raylet's cluster resource scheduler and local task manager, for one machine. Amounts are kept as whole
numbers of 1/10,000 units (Ray's precision), so 0.1 + 0.2 CPUs add up exactly. GPUs are also tracked per device,
so a task gets concrete GPU ids; fractional requests are packed onto the fullest device that still fits them.
Ready tasks wait in one FIFO queue per "scheduling class" (the shape of their request), so a task that cannot fit
does not hold back smaller tasks behind it.
"""
import collections
import math

UNITS = 10_000


def to_units(amount, what):
    """0.25 -> 2500. Refuses negative amounts and precision finer than 0.0001, as Ray does."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        raise ValueError(f"{what} must be a number, not {amount!r}.")
    if amount < 0:
        raise ValueError(f"{what} must be >= 0, not {amount}.")
    units = round(amount * UNITS)
    if abs(units - amount * UNITS) > 1e-6 * max(1, amount * UNITS):
        raise ValueError(f"{what}={amount} is too precise: resource amounts may have at most 4 decimal places "
                         f"(the smallest amount is 0.0001).")
    return units


def from_units(units):
    return units / UNITS


def describe(units_by_name):
    return "{" + ", ".join(f"'{k}': {from_units(v):g}" for k, v in sorted(units_by_name.items())) + "}"


class Allocation:
    """What one running task holds: resource units, and for GPUs, which devices and how much of each."""

    __slots__ = ("units", "gpu_shares")

    def __init__(self, units, gpu_shares):
        self.units, self.gpu_shares = units, gpu_shares

    def gpu_ids(self):
        return sorted(self.gpu_shares)

    def as_dict(self):
        return {k: from_units(v) for k, v in self.units.items() if v}


class NodeResources:
    """Totals and what is free right now, for the one node the course runtime has."""

    def __init__(self, total_units, gpu_ids):
        self.total = dict(total_units)
        self.available = dict(total_units)
        self.gpu_free = {gpu: UNITS for gpu in gpu_ids}  # device id -> free units on that device

    def infeasible_reason(self, demand):
        """Why `demand` could never run here (None if it could, once other tasks finish)."""
        missing = {k: v for k, v in demand.items() if v > self.total.get(k, 0)}
        if not missing:
            gpus = demand.get("GPU", 0)
            if gpus > UNITS and gpus % UNITS:
                return f"{from_units(gpus)} GPUs: requests above 1 GPU must be whole numbers"
            return None
        asked = describe(missing)
        have = describe({k: self.total.get(k, 0) for k in missing})
        return f"it asks for {asked} but this machine has only {have} in total"

    def try_acquire(self, demand):
        """Take `demand` if it fits now; return the Allocation, or None."""
        available = self.available
        for name, units in demand.items():
            if units > available.get(name, 0):
                return None
        gpu_shares = {}
        gpus = demand.get("GPU", 0)
        if gpus:
            gpu_shares = self._pick_gpus(gpus)
            if gpu_shares is None:
                return None
        for name, units in demand.items():
            available[name] -= units
        for gpu, units in gpu_shares.items():
            self.gpu_free[gpu] -= units
        return Allocation(demand, gpu_shares)

    def _pick_gpus(self, units):
        if units >= UNITS:  # whole devices
            whole = [g for g, free in self.gpu_free.items() if free == UNITS][: units // UNITS]
            return {g: UNITS for g in whole} if len(whole) == units // UNITS else None
        fitting = [g for g, free in self.gpu_free.items() if free >= units]
        if not fitting:
            return None
        fullest = min(fitting, key=lambda g: (self.gpu_free[g], g))  # pack fractions together
        return {fullest: units}

    def release(self, allocation):
        for name, units in allocation.units.items():
            self.available[name] += units
        for gpu, units in allocation.gpu_shares.items():
            self.gpu_free[gpu] += units

    def lend(self, name, units):
        """A task blocked in `get` gives its CPUs back until it resumes (so nested tasks cannot deadlock)."""
        self.available[name] = self.available.get(name, 0) + units

    def reclaim(self, name, units):
        self.available[name] -= units  # may go below zero for a moment: the resumed task runs regardless

    def available_dict(self):
        # A fully used resource disappears from the listing, as in Ray.
        return {k: from_units(v) for k, v in self.available.items() if v > 0}

    def total_dict(self):
        return {k: from_units(v) for k, v in self.total.items() if v > 0}


class ReadyQueues:
    """Tasks whose arguments are ready, one FIFO per request shape."""

    def __init__(self):
        self.queues = collections.OrderedDict()

    def push(self, task):
        key = tuple(sorted(task.demand.items()))
        self.queues.setdefault(key, collections.deque()).append(task)

    def __len__(self):
        return sum(len(q) for q in self.queues.values())

    def __bool__(self):  # checked after every scheduling round: no need to count
        return bool(self.queues)

    def __iter__(self):
        for queue in self.queues.values():
            yield from queue

    def pop_first(self, demand, accept):
        """Remove and return the oldest ready task of this request shape if `accept(task)`, else None."""
        key = tuple(sorted(demand.items()))
        queue = self.queues.get(key)
        while queue and queue[0].state != "READY":  # cancelled while queued
            queue.popleft()
        if not queue or not accept(queue[0]):
            return None
        task = queue.popleft()
        if not queue:
            del self.queues[key]
        return task

    def schedule(self, resources, take_worker):
        """Start every queued task that fits, oldest first within each shape. `take_worker(task, allocation)`
        runs it and returns False when no worker can take more work."""
        for key in list(self.queues):
            queue = self.queues[key]
            while queue:
                task = queue[0]
                if task.state != "READY":  # cancelled while queued
                    queue.popleft()
                    continue
                allocation = resources.try_acquire(task.demand)
                if allocation is None:
                    break
                if not take_worker(task, allocation):
                    resources.release(allocation)
                    return
                queue.popleft()
            if not queue:
                del self.queues[key]
