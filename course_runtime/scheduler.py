"""Resource accounting, the queues of tasks waiting to run, and noticing tasks that never can.

Mirrors the raylet's cluster resource scheduler and local task manager (`src/ray/raylet/scheduling/`), for one
machine. Amounts are kept as whole
numbers of 1/10,000 units (Ray's precision), so 0.1 + 0.2 CPUs add up exactly. GPUs are also tracked per device,
so a task gets concrete GPU ids; fractional requests are packed onto the fullest device that still fits them.
Ready tasks wait in one FIFO queue per "scheduling class" (the shape of their request), so a task that cannot fit
does not hold back smaller tasks behind it.
"""
import collections
import math
import os
import shutil
import socket
import subprocess

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
    """Totals and what is free right now, for the one node the course runtime has.

    >>> node = NodeResources({"CPU": to_units(2, "num_cpus"), "GPU": to_units(2, "num_gpus")}, gpu_ids=[0, 1])
    >>> half_gpu = node.try_acquire({"CPU": to_units(0.5, "num_cpus"), "GPU": to_units(0.5, "num_gpus")})
    >>> half_gpu.as_dict(), half_gpu.gpu_ids(), node.available_dict()
    ({'CPU': 0.5, 'GPU': 0.5}, [0], {'CPU': 1.5, 'GPU': 1.5})
    >>> node.try_acquire({"GPU": to_units(0.5, "num_gpus")}).gpu_ids()  # packed onto the same device
    [0]
    >>> node.try_acquire({"GPU": to_units(2, "num_gpus")}) is None  # device 0 is in use: no 2 whole GPUs free
    True
    >>> node.infeasible_reason({"CPU": to_units(3, "num_cpus")})
    "it asks for {'CPU': 3} but this machine has only {'CPU': 2} in total"
    """

    def __init__(self, total_units, gpu_ids):
        self.total = dict(total_units)
        self.available = dict(total_units)
        self.gpu_free = {gpu: UNITS for gpu in gpu_ids}  # device id -> free units on that device
        self.group_gpus = {}  # a placement group's GPU resource (GPU_group_...) -> the devices its bundles hold

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
        elif self.group_gpus:  # in a bundle: its devices (the bundle's reservation holds their units)
            gpu_shares = next(({g: 0 for g in self.group_gpus[k]} for k in demand if k in self.group_gpus), {})
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
            if name in self.total:  # else a removed placement group's: gone already
                self.available[name] += units
        for gpu, units in allocation.gpu_shares.items():
            self.gpu_free[gpu] += units

    def lend(self, allocation):
        """A task blocked in `get` gives its CPUs (its bundle's, in a placement group) back until it resumes, so
        nested tasks cannot deadlock. Returns what it lent."""
        lent = {k: v for k, v in allocation.units.items() if k == "CPU" or k.startswith("CPU_group_")}
        for name, units in lent.items():
            self.available[name] += units
        return lent

    def reclaim(self, lent):
        for name, units in lent.items():
            if name in self.total:  # may go below zero for a moment: the resumed task runs regardless
                self.available[name] -= units

    def available_dict(self):
        # A fully used resource disappears from the listing, as in Ray.
        return {k: from_units(v) for k, v in self.available.items() if v > 0}

    def total_dict(self):
        return {k: from_units(v) for k, v in self.total.items() if v > 0}


class ReadyQueues:
    """Tasks whose arguments are ready, one FIFO per request shape (Ray's "scheduling classes").

    >>> from types import SimpleNamespace as Task
    >>> big, small = {"CPU": to_units(2, "cpus")}, {"CPU": to_units(1, "cpus")}
    >>> queues = ReadyQueues()
    >>> for name, demand in [("big", big), ("small-1", small), ("small-2", small)]:
    ...     queues.push(Task(name=name, state="READY", spec=Task(demand=demand)))
    >>> started = []
    >>> def start(task, allocation):  # the raylet sends the task to a worker here
    ...     started.append(task.name)
    ...     return True
    >>> queues.schedule(NodeResources({"CPU": to_units(1, "cpus")}, []), start)
    >>> started, len(queues)   # the big one waits, but does not hold back the small ones behind it
    (['small-1'], 2)
    """

    def __init__(self):
        self.queues = collections.OrderedDict()

    def push(self, task):
        key = tuple(sorted(task.spec.demand.items()))
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
                allocation = resources.try_acquire(task.spec.demand)
                if allocation is None:
                    break
                if not take_worker(task, allocation):
                    resources.release(allocation)
                    return
                queue.popleft()
            if not queue:
                del self.queues[key]


def never_runs_here(resources, demand, placement, node_id):
    """Why work asking for `demand`, placed so, could never start on this node; None if it could."""
    if placement is not None and placement[0] == "node" and not placement[2] and placement[1] != node_id:
        return (f"is not schedulable: the node specified via NodeAffinitySchedulingStrategy doesn't exist any more "
                f"or is infeasible, and soft=False was specified. This machine is node {node_id} (see ray.nodes()).")
    in_group = placement is not None and placement[0] == "pg"  # placement_groups checked it against its bundles
    reason = None if in_group else resources.infeasible_reason(demand)
    return reason and (f"can never run on this machine: {reason}. Ask for less, or declare more with "
                       f"init(num_cpus=..., num_gpus=..., resources={{...}}).")


def stuck_tasks(waiters, workers, objects, actors, available):
    """Ready tasks that can never start: every task that has started is blocked in get()/wait() without a timeout,
    waiting (directly, or through a task's arguments) for these; and these found no worker or not enough resources,
    which only those blocked tasks could give back. Ray waits forever here; the raylet fails them, saying why."""
    forever = {id(w.worker) for w in waiters if w.deadline is None}
    if any((w.task is not None or w.queued) and id(w) not in forever for w in workers):
        return []  # something still runs, or will wake up by itself
    if any(a.in_flight or a.state not in ("ALIVE", "DEAD") for a in actors):
        return []
    awaited = [objects.get(i) for w in waiters for i in w.ids]
    producers = {e.task for e in awaited if e is not None and e.value is None and e.task is not None}
    held = collections.Counter()  # what the blocked tasks hold (they have lent their CPUs already)
    for worker in workers:
        if worker.task is not None and worker.actor is None:
            held.update({k: v for k, v in worker.task.allocation.units.items() if k != "CPU"})
    stuck, todo = [], list(producers)
    while todo:
        task = todo.pop()
        if task.state == "READY" and all(v <= available.get(k, 0) + held[k] for k, v in task.spec.demand.items()):
            stuck.append(task)  # (if something else holds what it needs, e.g. an actor, that may still end)
        elif task.state == "WAITING":
            for object_id in task.waiting_on:
                entry = objects.get(object_id)
                if entry is not None and entry.task is not None and entry.task not in producers:
                    producers.add(entry.task)
                    todo.append(entry.task)
    return stuck


class StallWatch:
    """Says when the same tasks have been stuck, with no task finishing meanwhile, for longer than `limit_s`."""

    def __init__(self, limit_s):
        self.limit_s, self.since, self.signature = limit_s, None, None

    def for_too_long(self, now, stuck, tasks_finished):
        signature = (frozenset(id(t) for t in stuck), tasks_finished)
        if not stuck or signature != self.signature:
            self.since, self.signature = (now if stuck else None), signature
            return False
        if now - self.since > self.limit_s:
            self.since = self.signature = None
            return True
        return False


def why_stuck(task, blocked_names, pool_size, resources):
    waiting = ", ".join(blocked_names)
    allocation = resources.try_acquire(task.spec.demand)
    if allocation is not None:  # its resources are free: what it lacks is a worker
        resources.release(allocation)
        return (f"No worker process could be started for task '{task.spec.name}': all {pool_size} worker processes "
                f"are inside tasks blocked in ray.get()/ray.wait() ({waiting}), waiting for other tasks, and "
                f"{pool_size} is as many as this machine allows at once (one process per blocked task; the bound "
                f"comes from its memory and open-file limit, or COURSE_RUNTIME_MAX_WORKERS). A tree of nested tasks "
                f"this wide or deep needs more processes than that: give each task more work (fewer, larger "
                f"leaves), or have parents return their children's refs instead of blocking on them.")
    short = {k: v for k, v in task.spec.demand.items() if v > max(0, resources.available.get(k, 0))}
    return (f"Task '{task.spec.name}' can never start: it needs {describe(short or task.spec.demand)}, and that is "
            f"held by tasks blocked in ray.get()/ray.wait() waiting for it ({waiting}). A task blocked in get() "
            f"gives back its CPUs, but not its GPUs or custom resources. Ask for those only in the tasks that use "
            f"them (e.g. the leaves, not the parent that waits), or have the parent return its children's refs "
            f"instead of waiting for them. (Ray waits forever here.)")


def node_table(node_id, resources):
    """What `ray.nodes()` says about the one node."""
    return [{"NodeID": node_id, "Alive": True, "alive": True, "NodeManagerAddress": "127.0.0.1",
             "NodeManagerHostname": socket.gethostname(), "NodeName": "127.0.0.1",
             "Resources": resources.total_dict(), "IsHeadNode": True}]


def machine_resources(num_cpus, num_gpus, resources, object_store_memory):
    """This machine's NodeResources (what init() declares, and what it finds), the store's capacity, its memory."""
    gpu_ids, memory = detect_gpu_ids(num_gpus), total_memory()
    capacity = object_store_memory or max(75 * 2**20, int(memory * 0.3))
    totals = {"CPU": to_units(num_cpus, "num_cpus"), "GPU": to_units(len(gpu_ids), "num_gpus"),
              "memory": to_units(max(memory - capacity, 0), "memory"),
              "object_store_memory": to_units(capacity, "object_store_memory"), "node:127.0.0.1": UNITS}
    for name, amount in (resources or {}).items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"Use the 'num_cpus' and 'num_gpus' arguments of init() instead of '{name}' in "
                             f"'resources'.")
        totals[name] = to_units(amount, f"resources[{name!r}]")
    return NodeResources(totals, gpu_ids), capacity, memory


def detect_gpu_ids(num_gpus):
    """GPU ids: the first `num_gpus` visible devices, or logical ones (0..n-1) if the machine has fewer."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = [int(x) for x in visible.split(",") if x.strip().isdigit()]
    elif shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
            found = [i for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]
        except (OSError, subprocess.SubprocessError):
            found = []
    else:
        found = []
    if num_gpus is None:
        return found
    to_units(num_gpus, "num_gpus")
    if num_gpus != int(num_gpus):
        raise ValueError(f"init(num_gpus={num_gpus}): the number of GPUs must be a whole number.")
    return found[:int(num_gpus)] if len(found) >= num_gpus else list(range(int(num_gpus)))


CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # v2, v1


def total_memory(limit_files=CGROUP_MEMORY_LIMITS):
    """The machine's memory, or a container's memory limit if that is smaller (the store is sized from it: sized
    from the host's memory, a large put in a small container would meet the out-of-memory killer, not a clear
    ObjectStoreFullError)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 8 * 2**30
    for path in limit_files:
        try:
            with open(path) as f:
                limit = f.read().strip()
        except OSError:
            continue
        if limit.isdigit():
            memory = min(memory, int(limit))
    return memory
