"""Workers' requests that block until objects are ready: get(), wait(), and the next item of a generator.

Mirrors the raylet's wait manager (`src/ray/raylet/wait_manager.cc`) and the core worker's blocked gets: a task that
blocks lends its CPUs back while it waits, so the tasks it waits for can run (nested tasks cannot deadlock).
"""
import collections
import time

from .protocol import Get, Reply, Wait

Waiter = collections.namedtuple("Waiter", "worker request_id ids num_returns deadline kind")  # kind: the message type


def deadline_after(timeout):
    return None if timeout is None else time.monotonic() + timeout


class WaitManager:
    def __init__(self, owner, resources, pool):
        self.owner, self.resources, self.pool, self.waiters = owner, resources, pool, []

    def add(self, worker, message):
        """A Get, a Wait, or a generator's NextItem or Consumed (ids: the generator task's; num_returns: the
        item's index)."""
        kind = type(message)
        ids = message.ids if kind is Get or kind is Wait else (message.task_id,)
        number = len(ids) if kind is Get else message.num_returns if kind is Wait else message.index
        waiter = Waiter(worker, message.request_id, ids, number, deadline_after(message.timeout), kind)
        if not self.answer(waiter):
            self.waiters.append(waiter)
            task = worker.task
            if task is not None and not worker.lent_cpus:  # lend its CPUs while it waits
                worker.lent_cpus = self.resources.lend(task.allocation)

    def answer_all(self):
        if self.waiters:
            self.waiters = [w for w in self.waiters if not self.answer(w)]

    def answer(self, waiter):
        """Reply to a blocked worker if its request is satisfied (or timed out). True if answered."""
        worker = waiter.worker
        timed_out = waiter.deadline is not None and time.monotonic() >= waiter.deadline
        cancelled = worker.task is not None and worker.task.cancel_requested
        if waiter.kind is Get or waiter.kind is Wait:
            answer = self.owner.answer(waiter.ids, waiter.num_returns, waiter.kind is Get, timed_out, cancelled)
        else:
            answer = self.owner.stream_answer(waiter.ids[0], waiter.num_returns, waiter.kind, timed_out, cancelled)
        if answer is None:
            return False
        if worker.lent_cpus:
            worker.lent_cpus = self.resources.reclaim(worker.lent_cpus)
        self.pool.send(worker, Reply(waiter.request_id, answer))
        return True

    def forget(self, worker):
        self.waiters = [w for w in self.waiters if w.worker is not worker]

    def blocked(self, worker):
        return any(w.worker is worker for w in self.waiters)

    def blocked_tasks(self):
        """How many pool workers (not actors) are blocked: the pool may grow by that many."""
        return len({id(w.worker) for w in self.waiters if w.worker.actor is None})

    def next_deadline(self):
        deadlines = [w.deadline for w in self.waiters if w.deadline is not None]
        return max(0.0, min(min(deadlines) - time.monotonic(), 0.5)) if deadlines else 0.5  # 0.5: apply dropped refs
