"""The raylet, one per node: the IO thread, the table of message handlers, and a task's way from submission to
its result (submit -> schedule -> dispatch -> done), plus what happens when a worker dies.

Mirrors Ray's node manager (`src/ray/raylet/node_manager.cc`), which leases workers to tasks, with the owner's
tables (owner.py), the scheduler (scheduler.py), the worker pool (worker_pool.py), the actors' directory (gcs.py)
and the object store (plasma.py) composed into it. Everything runs under one lock: the user's thread (driver.py)
submits and dispatches directly, and the IO thread handles what the workers send.
"""
import collections
import os
import pickle
import select
import sys
import threading
import time
import traceback

from . import fast_paths
from .exceptions import (ActorUnschedulableError, RaySystemError, TaskCancelledError, TaskPlacementGroupRemoved,
                         TaskUnschedulableError, WorkerCrashedError)
from .gcs import ActorDirectory
from .object_ref import LocalRefCounts, random_hex
from .owner import Error, Owner, Stored, load_error
from .placement_groups import PlacementGroups
from .plasma import ObjectStore
from .protocol import (Abandon, Allocate, Answer, Cancel, CancelTask, Consumed, CreateActor, Exit, Exiting, Failed,
                       Get, GetActor, HandBack, KillActor, Log, NextItem, PlacementGroupOp, Put, Query, Ready, Reply,
                       RunTask, Sealed, Setup, SubmitTask, TaskDone, Wait)
from .scheduler import (ReadyQueues, StallWatch, machine_resources, never_runs_here, node_table, stuck_tasks,
                        why_stuck)
from .task_spec import return_ids
from .wait_manager import WaitManager
from .worker_pool import WorkerOutput, WorkerPool, receive_all

JOB_ID = "01000000"
EVENT_LOG_LENGTH = 200_000
# Tasks that can never start (scheduler.stuck_tasks) fail once stuck for STALL_S; the IO thread looks every
# POOL_CHECK_S.
STALL_S = 2.0
POOL_CHECK_S = 0.25


class Raylet:
    """One running session of the course runtime's node (what `init()` starts and `shutdown()` stops)."""

    def __init__(self, num_cpus, num_gpus, resources, object_store_memory, namespace):
        self.node_id, self.namespace, self.num_cpus = random_hex(28), namespace or random_hex(16), num_cpus
        self.resources, capacity, memory = machine_resources(num_cpus, num_gpus, resources, object_store_memory)
        self.store, self.groups = ObjectStore(capacity), PlacementGroups(self.resources, self.node_id)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified whenever objects complete or output arrives
        self.events = collections.deque(maxlen=EVENT_LOG_LENGTH)  # (time, kind, details...): what happened
        self.owner = Owner(self.store.free, self.log)
        self.ready_queue, self.local_refs = ReadyQueues(), LocalRefCounts()
        self.wakeup_r, self.wakeup_w = os.pipe()
        self.pool = WorkerPool(num_cpus, memory, self._setup, self.wake)
        self.waits = WaitManager(self.owner, self.resources, self.pool)  # workers blocked in get, wait, next
        self.gcs = ActorDirectory(self.owner, self.pool, self.resources, self.log)
        self.output = WorkerOutput(self.changed)
        self.tiny_runs = {}  # function id -> its short runs in a row (fast_paths: pipelining)
        self.pool_checked, self.stalls, self.alive, self.started_at = 0.0, StallWatch(STALL_S), True, time.time()
        for _ in range(max(1, int(num_cpus + 0.9999))):
            self.pool.start_worker()
        self.io_thread = threading.Thread(target=self._io_loop, name="course_runtime-io", daemon=True)
        self.io_thread.start()

    def _setup(self):
        return Setup(sys.path, os.getcwd(), os.getpid(), JOB_ID, self.node_id, self.namespace)

    def wake(self, why=b"w"):
        """Make the IO thread look again (a new pipe, a full pipe, a claim that ended, futures to resolve)."""
        os.write(self.wakeup_w, why)

    def log(self, kind, *details):
        self.events.append((time.time(), kind) + details)

    # ---- a task's path: submit -> schedule -> dispatch -> done ----------------------------------------------
    def submit(self, spec, parent=None, actor=None):
        self.log("submit", spec.task_id, spec.name)
        if spec.kind == "actor_call":
            return self.gcs.submit_call(spec, parent)
        parent_spec = parent and (parent.actor.creation.spec if parent.actor else parent.spec)
        placement = actor.spec.placement if actor else spec.placement
        spec, error = self.groups.spec_in_group(spec, placement, parent_spec and parent_spec.placement, actor)
        why = error is None and never_runs_here(self.resources, actor.spec.schedule_demand if actor else spec.demand,
                                                spec.placement or placement, self.node_id)
        if why:  # Ray would wait forever for a machine that has it; we say so at once (see README)
            error = (ActorUnschedulableError if actor else TaskUnschedulableError)(
                f"The {f'actor {actor.class_name}' if actor else f'task {spec.name!r}'} {why}")
        return self.owner.add_task(spec, parent, actor, error)

    def schedule(self):
        """Route what became ready (or failed, or unreferenced) where it belongs, then start every task that fits."""
        owner = self.owner
        while owner.ready or owner.failed_creations or owner.out_of_scope:
            ready, owner.ready = owner.ready, []
            for task in ready:
                if task.spec.kind == "actor_call":
                    self.gcs.pump(task.actor)
                elif task.state == "READY":
                    self.ready_queue.push(task)
            for task, error in owner.failed_creations:
                self.gcs.creation_failed(task, error)
            for actor_id in owner.out_of_scope:
                self.gcs.out_of_scope(actor_id)
            owner.failed_creations, owner.out_of_scope = [], []
        if owner.callbacks_due:
            self.wake(b"c")
        self.groups.place_pending()
        self.ready_queue.schedule(self.resources, self._dispatch)
        fast_paths.after_schedule(self)

    def _dispatch(self, task, allocation):
        """Start a task the scheduler found resources for; False if no worker can take it now."""
        if task.spec.kind == "actor_create":
            self.gcs.start(task, allocation, self.pool.start_worker())
            return True
        worker = self.pool.idle_worker(blocked=self.waits.blocked_tasks())
        if worker is None:
            return False
        task.state, task.worker, task.allocation = "RUNNING", worker, allocation
        task.attempts += 1
        worker.task, worker.task_since = task, time.monotonic()
        self.log("dispatch", task.spec.task_id, worker.pid)
        self.send_task(worker, task, allocation)
        return True

    def send_task(self, worker, task, allocation):
        spec, locate, function = task.spec, self.owner.locate, None
        if spec.function_id not in worker.functions:  # ship each function to each worker once
            function = self.owner.function_table[spec.function_id]
            worker.functions.add(spec.function_id)
        self.pool.send(worker, RunTask(spec.task_id, spec.name, spec.function_id, function,
                                       [locate(a) for a in spec.args], {k: locate(v) for k, v in spec.kwargs.items()},
                                       spec.num_returns, allocation.gpu_ids(), allocation.as_dict(), spec.runtime_env))

    def _on_done(self, worker, done):
        task = self.owner.tasks.get(done.task_id)
        if task is None or task.worker is not worker:
            return self._discard(done.returns)
        self.owner.finished.append((task.spec.name, done.task_id, worker.pid, done.started, done.ended,
                                    "FAILED" if done.error else "FINISHED", task.spec.kind, task.spec.actor_id))
        fast_paths.note_run(self, task, done.ended - done.started)
        error = load_error(done.error, task.spec.name) if done.error else None
        if task.spec.kind == "actor_create":
            return self.gcs.created(task, error)
        if task.spec.kind == "actor_call":
            task.actor.in_flight.pop(done.task_id, None)
        if task.cancel_requested:
            self._discard(done.returns)
            self.fail(task, cancelled_error(task))
        elif error is not None and self.owner.should_retry(task, error):
            self.retry(task)
        elif error is not None:
            self.fail(task, error)
        else:
            for object_id, (value, contained, size) in zip(return_ids(task.spec), done.returns):
                if type(value) is Sealed:
                    value = Stored(self.store.seal(value.segment_id), value.layout)
                entry = self.owner.objects[object_id]
                entry.size = size
                self.owner.complete(entry, value, contained)
            self.release(task)
            self.owner.finish(task, "FINISHED")

    def release(self, task):
        """A task stops running: its worker and resources go back (or to the next task queued in its pipe)."""
        worker, task.worker = task.worker, None
        if worker is None or task.spec.kind != "task":  # actors hold their resources for life, not per call
            return
        if worker.lent_cpus:  # it was blocked in get: take back what it lent before releasing everything
            worker.lent_cpus = self.resources.reclaim(worker.lent_cpus)
        if fast_paths.start_queued(self, worker, task):
            return
        self.resources.release(task.allocation)
        worker.task, task.allocation, worker.idle_since = None, None, time.monotonic()

    def fail(self, task, error):
        self.release(task)
        self.owner.fail(task, error)

    def retry(self, task):
        self.release(task)
        task.state = "READY"
        self.ready_queue.push(task)
        self.log("retry", task.spec.task_id, task.attempts)

    def _discard(self, returns):
        for value, _, _ in returns or ():  # results nobody will read: their segments were never sealed
            if type(value) is Sealed:
                self.store.abandon(value.segment_id)

    def restart(self, actor):
        actor.creation = self.submit(self.gcs.creation_spec(actor), actor=actor)

    def _on_worker_exit(self, worker):
        if worker.sock is None:
            return
        code = self.pool.remove(worker)
        self.log("worker_exited", worker.pid, code)
        for object_id in worker.holding:
            self.owner.release(object_id)
        self.store.abandon(writer=worker)  # half-written objects are never seen by anyone
        self.waits.forget(worker)
        fast_paths.requeue(self, worker)
        if worker.actor is not None:
            return self.restart(worker.actor) if self.gcs.worker_exited(worker, code) else None
        task = worker.task
        if task is not None and task.cancel_requested:
            self.fail(task, cancelled_error(task))
        elif task is not None and self.owner.retries_left(task):
            self.retry(task)
        elif task is not None:
            self.fail(task, WorkerCrashedError(
                f"The worker running '{task.spec.name}' (pid {worker.pid}) died unexpectedly (exit code {code}) "
                f"after {task.attempts} attempt(s); max_retries={task.spec.max_retries}."))
        if self.alive and self.pool.needs_replacing():
            self.pool.start_worker()
        if self.pool.startup_failures >= 3:
            error = RaySystemError("Worker processes fail to start; see the errors printed above.")
            for task in [t for t in self.owner.tasks.values() if t.state in ("WAITING", "READY")]:
                self.fail(task, error)

    # ---- the IO thread, and the handlers of what workers send -------------------------------------------------
    def _io_loop(self):
        poller, watched = select.poll(), {}  # watched: fd -> the events registered for it
        poller.register(self.wakeup_r, select.POLLIN)
        while self.alive:
            recheck = self.pool.watch(poller, watched, fast_paths.recheck_after)
            ready = poller.poll(min(self.waits.next_deadline(), recheck) * 1000)
            with self.lock:  # reading under the lock too: a getter may take over a pipe (fast_paths)
                if not self.alive:
                    break
                now, inbox = time.monotonic(), []
                for fd, event in ready:
                    worker = self.pool.by_fd.get(fd)
                    if fd == self.wakeup_r:
                        os.read(fd, 4096)
                    if worker is None or worker.sock is None:
                        continue
                    if event & select.POLLOUT:
                        self.pool.flush(worker)
                    if event & (select.POLLIN | select.POLLHUP | select.POLLERR) and worker.claimed_until < now:
                        inbox.append((worker,) + receive_all(worker))
                self.process(inbox)
                if now - self.pool_checked > POOL_CHECK_S:
                    self._check_pool(now)
                callbacks, self.owner.callbacks_due = self.owner.callbacks_due, []
            for callback in callbacks:
                callback()
            if self.output.pending and not self.output.in_main_thread:
                self.output.flush()

    receive = staticmethod(receive_all)

    def process(self, inbox):
        """Handle messages read from workers' pipes, then everything they made possible (under the lock)."""
        self.apply_local_refs()
        for worker, envelopes, closed in inbox:
            try:
                for envelope in envelopes:
                    for object_id in envelope.held:  # "now holds" applies before the message, "no longer" after
                        self.owner.hold(object_id)
                        worker.holding.add(object_id)
                    HANDLERS[type(envelope.message)](self, worker, envelope.message)
                    for object_id in envelope.released:
                        worker.holding.discard(object_id)
                        self.owner.release(object_id)
                if closed:
                    self._on_worker_exit(worker)
            except Exception:  # a bug here must not stop the loop that every get() relies on
                traceback.print_exc()
        self.step()

    def step(self):
        """After any change: answer blocked get/wait calls, schedule, wake the driver's waiting threads."""
        self.waits.answer_all()
        self.schedule()
        self.changed.notify_all()

    def apply_local_refs(self):
        self.owner.apply_ref_news(*self.local_refs.drain())

    def _on_ready(self, worker, _):
        worker.ready, self.pool.startup_failures = True, 0
        if worker.signal_after_flush:  # a cancel arrived while it was starting (see WorkerPool.flush)
            self.pool.flush(worker)

    def _on_submit(self, worker, message):
        spec = message.spec
        if message.function is not None:
            self.owner.function_table[spec.function_id] = message.function
        try:
            self.submit(spec, parent=worker.task)
        except Exception as error:  # an unknown argument, or the actor's max_pending_calls: its results say so
            for object_id in return_ids(spec):
                self.owner.add_object(object_id, Error(error), (), 0, spec.name)
        if spec.kind == "actor_call" and spec.actor_id in self.gcs.actors:
            self.gcs.pump(self.gcs.actors[spec.actor_id])

    def _serve(self, worker, request_id, answer):
        """Answer a worker's request with Answer(answer()), or with the error that raised."""
        try:
            reply = Reply(request_id, Answer(answer()))
        except Exception as error:
            reply = Reply(request_id, Failed(pickle.dumps(error)))
        self.pool.send(worker, reply)

    def create_actor(self, spec, cls=None):
        if cls is not None:
            self.owner.function_table[spec.class_id] = cls
        actor = self.gcs.existing(spec)
        if actor is None:
            actor = self.gcs.register(spec)
            self.restart(actor)
        return actor.handle_fields()

    def _on_put(self, worker, put):
        value = put.value
        if type(value) is Sealed:
            value = Stored(self.store.seal(value.segment_id), value.layout)
        self.owner.add_object(put.object_id, value, put.contained, put.size, put.description)

    def _allocate(self, worker, size, description):
        segment = self.store.allocate(size, description, writer=worker)  # or ObjectStoreFullError, for the worker
        return segment.seg_id, segment.path

    def _on_cancel(self, worker, message):
        try:
            self.cancel(message.object_id, message.force, message.recursive)
        except ValueError:
            pass  # force=True on an actor call: the worker's cancel() already said so

    def cancel(self, object_id, force, recursive):
        entry = self.owner.objects.get(object_id)
        if entry is not None and entry.task is not None:
            self._cancel_task(entry.task, force, recursive)

    def _cancel_task(self, task, force, recursive, error=None):
        """cancel(); or (with `error`) end a task whose placement group was removed."""
        if task.spec.task_id not in self.owner.tasks:
            return  # finished already: nothing to cancel
        if recursive:
            for child in task.children:
                self._cancel_task(child, force, recursive)
        self.log("cancel", task.spec.task_id, force)
        if task.spec.kind == "actor_call":
            self.gcs.cancel_call(task, force)
        elif task.state in ("WAITING", "READY", "QUEUED"):
            if task.state == "QUEUED":
                fast_paths.cancel_queued(self, task)
            self.fail(task, error or TaskCancelledError(task.spec.task_id))
        elif task.state == "RUNNING" and not task.cancel_requested:
            task.cancel_requested, worker = error or True, task.worker
            if force:
                worker.process.kill()
            elif self.waits.blocked(worker):
                self.step()  # it is blocked in get/wait: answer "cancelled"
            else:  # the signal raises KeyboardInterrupt inside the task, if it is still the one named
                worker.signal_after_flush = True  # sent by WorkerPool.flush, once the message is in the pipe
                self.pool.send(worker, CancelTask(task.spec.task_id))

    def placement_group_op(self, op, *args):
        """util.placement_group's create, remove, table and lookup. Ray kills what runs in a removed group; what
        waits for it fails here, where Ray would wait forever (see README)."""
        if op != "remove":
            return getattr(self.groups, op)(*args)
        actors, tasks = self.groups.remove(args[0], self.gcs.actors.values(), self.owner.tasks.values())
        for actor in actors:
            self.kill_actor(actor.spec.actor_id, True, f"was killed: its placement group {args[0]} was removed")
        for task in tasks:
            self._cancel_task(task, True, False, TaskPlacementGroupRemoved(
                f"The placement group {args[0]} of '{task.spec.name}' was removed."))

    def kill_actor(self, actor_id, no_restart, *why):
        actor = self.gcs.actors.get(actor_id)
        if self.gcs.kill(actor_id, no_restart, *why):
            self.restart(actor)

    def _on_exiting(self, worker, _):
        if worker.actor is not None:
            worker.actor.terminating = True  # a graceful exit: no restart

    def _query(self, what):
        return {"cluster_resources": self.resources.total_dict, "available_resources": self.resources.available_dict,
                "nodes": lambda: node_table(self.node_id, self.resources), "timeline": self.owner.timeline}[what]()

    def _check_pool(self, now):
        """Retire idle workers beyond num_cpus; fail the tasks that can never start once stuck for STALL_S."""
        self.pool_checked = now
        pool_size = sum(1 for w in self.pool.workers if w.actor is None and not w.retiring and w.sock is not None)
        for worker in self.pool.retire_idle(now):
            self.log("worker_retired", worker.pid)
        waiters = self.waits.waiters
        stuck = stuck_tasks(waiters, self.pool.workers, self.owner.objects, self.gcs.actors.values(),
                            self.resources.available) if waiters and self.ready_queue else []
        if self.stalls.for_too_long(now, stuck, self.owner.tasks_finished):
            blocked = sorted({w.worker.task.spec.name for w in waiters if w.worker.task is not None})
            for task in stuck:
                self.fail(task, TaskUnschedulableError(why_stuck(task, blocked, pool_size, self.resources)))
            self.step()

    # ---- what the node can tell, and the end -----------------------------------------------------------------
    def shutdown(self):
        with self.lock:
            if not self.alive:
                return
            self.alive = False
            for worker in self.pool.workers:
                self.pool.send(worker, Exit())
        self.wake(b"x")
        if self.io_thread is not threading.current_thread():
            self.io_thread.join(timeout=5)
        self.pool.stop()
        self.output.flush()
        self.owner.objects, self.owner.tasks = {}, {}
        self.store.close()
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)


# THE HANDLER TABLE: each message a worker sends (protocol.py), and the Raylet method that handles it.
# Requests (those with a request_id) are answered with a Reply; the rest need no answer.
HANDLERS = {
    Ready: Raylet._on_ready, TaskDone: Raylet._on_done, SubmitTask: Raylet._on_submit,
    Log: lambda raylet, worker, m: raylet.output.add(m),
    Put: Raylet._on_put, Get: lambda raylet, worker, m: raylet.waits.add(worker, m),
    Wait: lambda raylet, worker, m: raylet.waits.add(worker, m),
    NextItem: lambda raylet, worker, m: raylet.waits.add(worker, m),
    Consumed: lambda raylet, worker, m: raylet.waits.add(worker, m), Cancel: Raylet._on_cancel,
    Exiting: Raylet._on_exiting, HandBack: fast_paths.hand_back,
    Abandon: lambda raylet, worker, m: raylet.store.abandon(m.segment_id),
    KillActor: lambda raylet, worker, m: raylet.kill_actor(m.actor_id, m.no_restart),
    CreateActor: lambda raylet, worker, m: raylet._serve(worker, m.request_id,
                                                         lambda: raylet.create_actor(m.spec, m.cls)),
    Allocate: lambda raylet, worker, m: raylet._serve(worker, m.request_id,
                                                      lambda: raylet._allocate(worker, m.size, m.description)),
    GetActor: lambda raylet, worker, m: raylet._serve(worker, m.request_id, lambda: raylet.gcs.lookup(
        m.name, m.namespace or raylet.namespace)),
    Query: lambda raylet, worker, m: raylet._serve(worker, m.request_id, lambda: raylet._query(m.what)),
    PlacementGroupOp: lambda raylet, worker, m: raylet._serve(worker, m.request_id, lambda: raylet.placement_group_op(
        m.op, *m.args)),
}


def cancelled_error(task):
    return task.cancel_requested if isinstance(task.cancel_requested, Exception) else \
        TaskCancelledError(task.spec.task_id)
