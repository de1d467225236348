"""The actors' directory: their records and names, the queue of calls to each, restarts and deaths.

Mirrors Ray's GCS actor manager (`gcs/gcs_server/gcs_actor_manager.cc`: create, restart, named actors, death) and
the core worker's actor task submitter (calls delivered in order). In Ray a call goes from the caller's core worker
straight to the actor's; here every call goes through the driver, which sends it on the actor's pipe.

    Counter.remote()  -> an "actor_create" task, scheduled like any task (1 CPU to place it, 0 while it lives),
                         started on a *dedicated* worker process that builds the instance (StartActor)
    c.incr.remote()   -> an "actor_call" task in the actor's queue; calls are sent (CallActor) as soon as their
                         arguments are ready, in order: the worker runs them one after another (or several at once
                         for threaded and async actors)
    worker dies       -> restart (max_restarts) and resend the calls it had (max_task_retries), or ActorDiedError
"""
import collections
import os
import signal

from .exceptions import (ActorAlreadyExistsError, ActorDiedError, ActorUnavailableError, PendingCallsLimitExceeded,
                         TaskCancelledError)
from .protocol import CallActor, CancelCall, Exit, StartActor
from .object_ref import random_task_id
from .task_spec import TaskSpec, call_spec


class ActorRecord:
    """One actor's life: its spec, state (PENDING, ALIVE, RESTARTING, DEAD), worker and calls."""

    __slots__ = ("spec", "class_name", "state", "worker", "allocation", "queue", "in_flight", "death", "restarts",
                 "max_restarts", "kill_requested", "terminating", "creation")

    def __init__(self, spec):
        self.spec, self.class_name = spec, spec.qualname.rsplit(".", 1)[-1]  # short, for messages and timelines
        self.state, self.worker, self.allocation, self.death, self.creation = "PENDING", None, None, None, None
        self.queue, self.in_flight = collections.deque(), {}  # calls not sent yet; sent, by task id
        self.restarts, self.max_restarts = 0, spec.max_restarts
        self.kill_requested = self.terminating = False

    @property
    def ordered(self):
        return not self.spec.is_async and self.spec.max_concurrency == 1

    def handle_fields(self):
        """What an ActorHandle is built from (actor.py makes the handle: this module stays below it)."""
        return self.spec.actor_id, self.spec.qualname, self.spec.methods, self.spec.is_async


class ActorDirectory:
    def __init__(self, owner, pool, resources, log):
        self.owner, self.pool, self.resources, self.log = owner, pool, resources, log
        self.actors = {}  # actor id -> ActorRecord
        self.named = {}  # (namespace, name) -> actor id

    # ---- creating -----------------------------------------------------------------------------------------
    def existing(self, spec):
        """The live actor for `get_if_exists=True`; ActorAlreadyExistsError if the name is taken otherwise."""
        actor = self.actors.get(self.named.get((spec.namespace, spec.name))) if spec.name else None
        if actor is None or spec.get_if_exists:
            return actor
        raise ActorAlreadyExistsError(f"The name {spec.name} (namespace={spec.namespace}) is already taken by "
                                      f"another actor. Pick another name, or pass get_if_exists=True to get the "
                                      f"existing one.")

    def register(self, spec):
        self.owner.pin(spec.pins)  # the constructor's arguments live as long as the actor
        actor = self.actors[spec.actor_id] = ActorRecord(spec)
        self.owner.actor_handles[spec.actor_id] = 0
        if spec.name:
            self.named[(spec.namespace, spec.name)] = spec.actor_id
        self.log("actor_created", spec.actor_id, actor.class_name)
        return actor

    def creation_spec(self, actor):
        """The task that builds the instance; it holds what the actor holds for life (life_demand)."""
        spec = actor.spec
        return TaskSpec(random_task_id(), f"{actor.class_name}.__init__",
                        spec.class_id, spec.args, spec.kwargs, 0, spec.life_demand, 0, False, "actor_create",
                        spec.actor_id, None, [])

    def start(self, task, allocation, worker):
        """Scheduled: the actor gets its own worker process, and keeps the allocation for life."""
        actor = task.actor
        worker.actor, actor.allocation, actor.worker = actor, allocation, worker
        task.state, task.worker = "RUNNING", worker
        task.attempts += 1
        worker.functions.add(actor.spec.class_id)
        spec, locate = actor.spec, self.owner.locate
        self.pool.send(worker, StartActor(task.spec.task_id, spec.actor_id, spec.qualname,
                                          self.owner.function_table[spec.class_id], [locate(a) for a in spec.args],
                                          {k: locate(v) for k, v in spec.kwargs.items()}, allocation.gpu_ids(),
                                          allocation.as_dict(), spec.max_concurrency, spec.is_async, spec.name,
                                          spec.namespace, spec.runtime_env, spec.concurrency_groups))
        self.log("dispatch", task.spec.task_id, worker.pid)

    def created(self, task, error):
        actor = task.actor
        task.worker = None
        self.owner.finish(task, "FAILED" if error else "FINISHED")
        if actor.state == "DEAD":
            return False
        if error is not None:  # the constructor raised: the actor is dead, and every call says why
            return self.died(actor, ActorDiedError(
                f"The actor {actor.class_name} ({actor.spec.actor_id}) died because of an error raised in its "
                f"creation task, {actor.class_name}.__init__():\n{error}"), restartable=False)
        actor.state = "ALIVE"
        self.pump(actor)
        return False

    def creation_failed(self, task, error):
        if task.actor.state not in ("DEAD", "ALIVE"):
            self.died(task.actor, error if "Unschedulable" in type(error).__name__ else ActorDiedError(
                f"The actor {task.actor.class_name} could not be created: {error}"), restartable=False)

    # ---- calling ------------------------------------------------------------------------------------------
    def submit_call(self, spec, parent=None):
        actor = self.actors[spec.actor_id]
        limit = actor.spec.max_pending_calls
        if limit > 0 and len(actor.queue) + len(actor.in_flight) >= limit:
            raise PendingCallsLimitExceeded(
                f"The actor {actor.class_name} already has {limit} calls pending (max_pending_calls); wait for "
                f"some results before submitting more.")
        spec = spec._replace(max_retries=actor.spec.max_task_retries)
        task = self.owner.add_task(spec, parent, actor)
        if task.state in ("WAITING", "READY"):
            if actor.state == "DEAD":
                self.owner.fail(task, actor.death)
            else:
                actor.queue.append(task)
        return task

    def pump(self, actor):
        """Send the actor every queued call whose arguments are ready; a sync actor's calls keep their order, so
        a call still waiting for an argument holds back the calls behind it."""
        if actor.state != "ALIVE" or actor.worker is None:
            return
        waiting = collections.deque()
        while actor.queue and not actor.terminating:  # nothing is sent after __ray_terminate__
            task = actor.queue.popleft()
            if task.state not in ("WAITING", "READY"):
                continue  # cancelled or failed while queued
            if task.waiting_on:
                waiting.append(task)
                if actor.ordered:
                    break
                continue
            task.state, task.worker = "RUNNING", actor.worker
            task.attempts += 1
            actor.in_flight[task.spec.task_id] = task
            actor.terminating = task.spec.method == "__ray_terminate__"
            self.log("dispatch", task.spec.task_id, actor.worker.pid)
            spec, locate = task.spec, self.owner.locate
            self.pool.send(actor.worker, CallActor(spec.task_id, spec.name, spec.method, [locate(a) for a in spec.args],
                                                   {k: locate(v) for k, v in spec.kwargs.items()}, spec.num_returns,
                                                   spec.concurrency_group))
        waiting.extend(actor.queue)
        actor.queue = waiting

    def cancel_call(self, task, force):
        if force:
            raise ValueError("force=True is not supported for actor tasks: use kill(actor) to stop the actor.")
        if task.state in ("WAITING", "READY"):
            self.owner.fail(task, TaskCancelledError(task.spec.task_id))
        elif task.state == "RUNNING" and not task.cancel_requested:
            task.cancel_requested = True
            self.pool.send(task.worker, CancelCall(task.spec.task_id))
            if task.actor.ordered:  # its only thread runs the call: a signal makes it read the news
                os.kill(task.worker.pid, signal.SIGUSR1)

    def out_of_scope(self, actor_id):
        """The last handle is gone: end the actor after the calls already made (Ray's actor garbage collection)."""
        actor = self.actors.get(actor_id)
        if actor is not None and not actor.spec.detached and actor.state != "DEAD":
            self.submit_call(call_spec(actor_id, "__ray_terminate__", f"{actor.class_name}.__ray_terminate__",
                                       [], {}, [], 0))
            self.pump(actor)

    # ---- ending -------------------------------------------------------------------------------------------
    def kill(self, actor_id, no_restart, why="was killed by `ray.kill`"):
        """ray.kill: returns True if the actor must be restarted now (it had no worker to kill)."""
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == "DEAD":
            return False
        actor.kill_requested = why
        if no_restart:
            actor.max_restarts = actor.restarts
        if actor.worker is not None:
            actor.worker.process.kill()  # the IO thread sees the pipe close: worker_exited
            return False
        return self.died(actor, self._killed(actor), restartable=not no_restart)

    def _killed(self, actor):
        return ActorDiedError(f"The actor {actor.class_name} ({actor.spec.actor_id}) {actor.kill_requested}.")

    def worker_exited(self, worker, exit_code):
        """The actor's process is gone. Returns True if the actor restarts (the caller submits its creation)."""
        actor = worker.actor
        actor.worker = None
        if actor.allocation is not None:
            self.resources.release(actor.allocation)
            actor.allocation = None
        if actor.creation is not None and actor.creation.spec.task_id in self.owner.tasks:
            actor.creation.worker = None
            self.owner.finish(actor.creation, "FAILED")
        if actor.terminating:
            return self.died(actor, ActorDiedError(
                f"The actor {actor.class_name} ({actor.spec.actor_id}) exited: it was ended with __ray_terminate__ "
                f"or exit_actor(), or all handles to it went away."), restartable=False)
        if actor.kill_requested:
            return self.died(actor, self._killed(actor), restartable=True)
        return self.died(actor, ActorDiedError(
            f"The actor {actor.class_name} ({actor.spec.actor_id}) died unexpectedly: its process (pid "
            f"{worker.pid}) exited with code {exit_code}."), restartable=True)

    def died(self, actor, error, restartable):
        """Restart the actor if it may be, resending the calls it was running (returns True), or fail everything."""
        if actor.state == "DEAD":
            return False
        interrupted = sorted(actor.in_flight.values(), key=lambda t: t.submitted)
        actor.in_flight = {}
        if restartable and (actor.max_restarts == -1 or actor.restarts < actor.max_restarts):
            actor.restarts += 1
            actor.state, actor.kill_requested = "RESTARTING", False
            retried = []
            for task in interrupted:
                task.worker = None
                if task.cancel_requested:
                    self.owner.fail(task, TaskCancelledError(task.spec.task_id))
                elif self.owner.retries_left(task):
                    task.state = "READY"
                    retried.append(task)
                else:  # as in Ray: the actor lives on (restarting), but this call's reply is lost
                    self.owner.fail(task, ActorUnavailableError(
                        f"{error} The actor is restarting; this call ran out of retries "
                        f"(max_task_retries={actor.spec.max_task_retries})."))
            actor.queue.extendleft(reversed(retried))
            self.log("actor_restarting", actor.spec.actor_id, actor.restarts)
            return True
        actor.state, actor.death = "DEAD", error
        self.log("actor_died", actor.spec.actor_id)
        for task in interrupted + list(actor.queue):
            task.worker = None
            if task.state in ("WAITING", "READY", "RUNNING"):
                self.owner.fail(task, error)
        actor.queue.clear()
        key = (actor.spec.namespace, actor.spec.name)
        if actor.spec.name and self.named.get(key) == actor.spec.actor_id:
            del self.named[key]
        for object_id in actor.spec.pins:
            self.owner.release(object_id)
        if actor.worker is not None:
            self.pool.send(actor.worker, Exit())
        return False

    def lookup(self, name, namespace):
        actor = self.actors.get(self.named.get((namespace, name)))
        if actor is None or actor.state == "DEAD":
            raise ValueError(f"Failed to look up actor with name '{name}' in namespace '{namespace}'. This could be "
                             f"because 1. You are trying to look up a named actor you didn't create. 2. The named "
                             f"actor died. 3. You did not use a namespace matching the namespace of the actor.")
        return actor.handle_fields()
