"""The driver's bookkeeping for actors: creation, the queue of calls, names, restarts, deaths.

Mirrors Ray's GCS actor manager (create, restart, name registry, death) and the core worker's actor task submitter
(calls delivered in order). A mixin of Node (node.py): it uses the node's lock, object table and workers.

    Counter.remote()  -> an "actor_create" task, scheduled like any task (1 CPU to place it, 0 while it lives),
                         started on a *dedicated* worker process that builds the instance
    c.incr.remote()   -> an "actor_call" task appended to the actor's queue; calls are sent to the actor's pipe as
                         soon as their arguments are ready, in order: the worker runs them one after another
                         (or several at once for threaded and async actors)
    worker dies       -> restart (max_restarts) and resend the calls it had (max_task_retries), or ActorDiedError
"""
import collections
import os
import pickle
import signal

from .actor import ActorHandle
from .exceptions import (ActorAlreadyExistsError, ActorDiedError, ActorUnavailableError,
                         PendingCallsLimitExceeded, TaskCancelledError)
from .object_ref import ObjectRef, new_id, random_hex, random_task_id
from .options import resource_demand
from .remote_function import pack_arguments


class ActorRecord:
    __slots__ = ("actor_id", "class_name", "qualname", "class_id", "methods", "is_async", "name", "namespace", "detached",
                 "schedule_demand", "life_demand", "max_restarts", "restarts", "max_task_retries", "max_concurrency",
                 "max_pending_calls", "state", "worker", "allocation", "queue", "in_flight", "refs", "death",
                 "init_args", "init_kwargs", "pins", "kill_requested", "terminating", "creation")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @property
    def ordered(self):
        return not self.is_async and self.max_concurrency == 1

    def handle(self):
        return ActorHandle(self.actor_id, self.qualname, self.methods, self.is_async)


class ActorManager:
    # ---- creating -----------------------------------------------------------------------------------------
    def create_actor(self, actor_class, args, kwargs, options):
        """Driver side of `Cls.remote(...)`: returns a handle at once; the actor starts when resources allow."""
        with self.lock:
            existing = self._named_actor_for(options)
            if existing is not None:
                return existing.handle()
        args, kwargs, pins = pack_arguments(args, kwargs, actor_class.__name__, self.store_argument)
        with self.lock:
            self.function_table.setdefault(actor_class._class_id, actor_class.pickled())
            actor = self._new_actor(random_hex(16), actor_class._class_name, actor_class._class_id, actor_class._methods,
                                    actor_class._is_async, args, kwargs, pins, options)
            handle = actor.handle()
            self._schedule()
        return handle

    def _named_actor_for(self, options):
        """The existing actor for `get_if_exists=True`; ActorAlreadyExistsError if the name is taken otherwise."""
        name = options.get("name")
        if not name:
            return None
        namespace = options.get("namespace") or self.namespace
        actor = self.actors.get(self.named_actors.get((namespace, name)))
        if actor is None:
            return None
        if options.get("get_if_exists"):
            return actor
        raise ActorAlreadyExistsError(f"The name {name} (namespace={namespace}) is already taken by another actor. "
                                      f"Pick another name, or pass get_if_exists=True to get the existing one.")

    def _new_actor(self, actor_id, qualname, class_id, methods, is_async, args, kwargs, pins, options):
        for object_id in pins:
            self._entry(object_id).refs += 1  # the constructor's arguments live as long as the actor (restarts)
        # Ray's defaults: a plain actor needs a machine with 1 CPU but takes none; an actor that asks for other
        # resources (GPUs, custom, memory) and not for CPUs holds 1 CPU for its whole life.
        asks_other = any(options.get(k) for k in ("num_gpus", "resources", "memory"))
        life_cpus = options["num_cpus"] if options.get("num_cpus") is not None else (1 if asks_other else 0)
        class_name = qualname.rsplit(".", 1)[-1]  # short, for messages and the timeline; repr uses the qualname
        actor = ActorRecord(
            actor_id=actor_id, class_name=class_name, qualname=qualname, class_id=class_id, methods=methods, is_async=is_async,
            name=options.get("name"), namespace=options.get("namespace") or self.namespace,
            detached=options.get("lifetime") == "detached",
            schedule_demand=resource_demand(options, 1),  # Ray: the machine must have 1 CPU to host an actor...
            life_demand=resource_demand({**options, "num_cpus": life_cpus}, 0),  # ...and holds this while alive
            max_restarts=options.get("max_restarts") or 0, restarts=0,
            max_task_retries=options.get("max_task_retries") or 0,
            max_concurrency=options.get("max_concurrency") or (1000 if is_async else 1),
            max_pending_calls=options.get("max_pending_calls") or -1, state="PENDING", queue=collections.deque(),
            in_flight={}, refs=0, init_args=args, init_kwargs=kwargs, pins=pins, kill_requested=False,
            terminating=False)
        self.actors[actor_id] = actor
        if actor.name:
            self.named_actors[(actor.namespace, actor.name)] = actor_id
        self._log("actor_created", actor_id, class_name)
        self._submit_creation(actor)
        return actor

    def _submit_creation(self, actor):
        actor.creation = self._new_task(random_task_id(), f"{actor.class_name}.__init__", actor.class_id,
                                        actor.init_args, actor.init_kwargs, [],
                                        {"num_returns": 0, "max_retries": 0, "retry_exceptions": False,
                                         "_demand": actor.life_demand, "_placement": actor.schedule_demand},
                                        parent=None, kind="actor_create", actor=actor)

    def _start_actor(self, task, allocation):
        """Scheduled: give the actor its own worker process, and keep only what it holds for life."""
        actor = task.actor
        worker = self._start_worker()
        worker.actor = actor
        actor.allocation = allocation  # what it holds for life (its creation task asked for exactly that)
        actor.worker = worker
        task.state, task.worker = "RUNNING", worker
        task.attempts += 1
        worker.functions.add(actor.class_id)
        self._send(worker, ("actor_init", task.task_id, actor.actor_id, actor.qualname,
                            self.function_table[actor.class_id], [self._locate(a) for a in task.args],
                            {k: self._locate(v) for k, v in task.kwargs.items()}, actor.allocation.gpu_ids(),
                            actor.allocation.as_dict(), actor.max_concurrency, actor.is_async, actor.name,
                            actor.namespace))
        self._log("dispatch", task.task_id, worker.pid)
        return True

    def _on_actor_created(self, task, error):
        actor = task.actor
        task.worker = None
        self._finish(task, "FAILED" if error else "FINISHED")
        if actor.state == "DEAD":
            return
        if error is not None:  # the constructor raised: the actor is dead, and every call says why
            self._actor_died(actor, ActorDiedError(
                f"The actor {actor.class_name} ({actor.actor_id}) died because of an error raised in its creation "
                f"task, {actor.class_name}.__init__():\n{error}"), restartable=False)
            return
        actor.state = "ALIVE"
        self._pump_actor(actor)

    # ---- calling ------------------------------------------------------------------------------------------
    def call_actor(self, handle, method, args, kwargs, options):
        with self.lock:
            self._drain_local_refs()
        name = options.get("name") or f"{handle._class_name.rsplit('.', 1)[-1]}.{method}"
        args, kwargs, pins = pack_arguments(args, kwargs, name, self.store_argument)
        with self.lock:
            task = self._submit_call(handle._actor_id, method, random_task_id(), name, args, kwargs, pins, options)
            refs = [ObjectRef(i) for i in task.return_ids]
            self._pump_actor(task.actor)
        if options["num_returns"] == 1:
            return refs[0]
        return refs or None

    def _submit_call(self, actor_id, method, task_id, name, args, kwargs, pins, options, parent=None):
        actor = self.actors[actor_id]
        if actor.max_pending_calls > 0 and len(actor.queue) + len(actor.in_flight) >= actor.max_pending_calls:
            raise PendingCallsLimitExceeded(
                f"The actor {actor.class_name} already has {actor.max_pending_calls} calls pending "
                f"(max_pending_calls); wait for some results before submitting more.")
        task = self._new_task(task_id, name, actor.class_id, args, kwargs, pins,
                              {"num_returns": options["num_returns"], "max_retries": actor.max_task_retries,
                               "retry_exceptions": False, "_demand": {}},
                              parent=parent, kind="actor_call", actor=actor, method=method)
        if task.state in ("WAITING", "READY"):
            if actor.state == "DEAD":
                self._fail(task, actor.death)
            else:
                actor.queue.append(task)
        return task

    def _pump_actor(self, actor):
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
            actor.in_flight[task.task_id] = task
            if task.method == "__ray_terminate__":
                actor.terminating = True
            self._log("dispatch", task.task_id, actor.worker.pid)
            self._send(actor.worker, ("actor_call", task.task_id, task.name, task.method,
                                      [self._locate(a) for a in task.args],
                                      {k: self._locate(v) for k, v in task.kwargs.items()}, task.num_returns))
        waiting.extend(actor.queue)
        actor.queue = waiting

    def _cancel_call(self, task, force):
        if force:
            raise ValueError("force=True is not supported for actor tasks: use kill(actor) to stop the actor.")
        if task.state in ("WAITING", "READY"):
            self._fail(task, TaskCancelledError(task.task_id))
        elif task.state == "RUNNING" and not task.cancel_requested:
            task.cancel_requested = True
            self._send(task.worker, ("cancel_call", task.task_id))
            if task.actor.ordered:  # its only thread runs the call: a signal makes it read the news
                os.kill(task.worker.pid, signal.SIGUSR1)

    # ---- ending -------------------------------------------------------------------------------------------
    def kill_actor(self, actor_id, no_restart):
        with self.lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor.state == "DEAD":
                return
            actor.kill_requested = True
            if no_restart:
                actor.max_restarts = actor.restarts
            if actor.worker is not None:
                actor.worker.process.kill()  # the IO thread sees the pipe close and calls _on_actor_worker_exit
            else:
                self._actor_died(actor, self._killed_error(actor), restartable=not no_restart)

    def _killed_error(self, actor):
        return ActorDiedError(f"The actor {actor.class_name} ({actor.actor_id}) was killed by `ray.kill`.")

    def _on_actor_worker_exit(self, worker, exit_code):
        actor = worker.actor
        actor.worker = None
        if actor.allocation is not None:
            self.resources.release(actor.allocation)
            actor.allocation = None
        creation = actor.creation
        if creation is not None and creation.task_id in self.tasks:
            creation.worker = None
            self._finish(creation, "FAILED")
        if actor.terminating:
            error = ActorDiedError(f"The actor {actor.class_name} ({actor.actor_id}) exited: it was ended with "
                                   f"__ray_terminate__ or exit_actor(), or all handles to it went away.")
            self._actor_died(actor, error, restartable=False)
        elif actor.kill_requested:
            self._actor_died(actor, self._killed_error(actor), restartable=True)
        else:
            self._actor_died(actor, ActorDiedError(
                f"The actor {actor.class_name} ({actor.actor_id}) died unexpectedly: its process (pid "
                f"{worker.pid}) exited with code {exit_code}."), restartable=True)

    def _actor_died(self, actor, error, restartable):
        """Restart the actor if it may be, resending the calls it was running; otherwise fail everything."""
        if actor.state == "DEAD":
            return
        restart = restartable and actor.state != "DEAD" and (actor.max_restarts == -1 or
                                                             actor.restarts < actor.max_restarts)
        interrupted = sorted(actor.in_flight.values(), key=lambda t: t.submitted)
        actor.in_flight = {}
        if restart:
            actor.restarts += 1
            actor.state, actor.kill_requested = "RESTARTING", False
            retried = []
            for task in interrupted:
                task.worker = None
                if task.cancel_requested:
                    self._fail(task, TaskCancelledError(task.task_id))
                elif actor.max_task_retries == -1 or task.attempts <= actor.max_task_retries:
                    task.state = "READY"
                    retried.append(task)
                else:  # as in Ray: the actor lives on (restarting), but this call's reply is lost
                    self._fail(task, ActorUnavailableError(f"{error} The actor is restarting; this call ran out of "
                                                           f"retries (max_task_retries={actor.max_task_retries})."))
            actor.queue.extendleft(reversed(retried))
            self._log("actor_restarting", actor.actor_id, actor.restarts)
            self._submit_creation(actor)
            return
        actor.state, actor.death = "DEAD", error
        self._log("actor_died", actor.actor_id)
        for task in interrupted + list(actor.queue):
            task.worker = None
            if task.state in ("WAITING", "READY", "RUNNING"):
                self._fail(task, error)
        actor.queue.clear()
        if actor.name and self.named_actors.get((actor.namespace, actor.name)) == actor.actor_id:
            del self.named_actors[(actor.namespace, actor.name)]
        for object_id in actor.pins:
            self._decref(object_id)
        actor.pins = ()
        if actor.worker is not None:
            self._send(actor.worker, ("exit",))

    def _actor_out_of_scope(self, actor):
        """The last handle is gone: end the actor after the calls already made (Ray's actor garbage collection)."""
        if actor.detached or actor.state == "DEAD":
            return
        self._submit_call(actor.actor_id, "__ray_terminate__", random_task_id(), f"{actor.class_name}.__ray_terminate__",
                          [], {}, [], {"num_returns": 0})
        self._pump_actor(actor)

    # ---- names --------------------------------------------------------------------------------------------
    def get_actor(self, name, namespace=None):
        with self.lock:
            namespace = namespace or self.namespace
            actor = self.actors.get(self.named_actors.get((namespace, name)))
            if actor is None or actor.state == "DEAD":
                raise ValueError(f"Failed to look up actor with name '{name}' in namespace '{namespace}'. This "
                                 f"could be because 1. You are trying to look up a named actor you didn't create. "
                                 f"2. The named actor died. 3. You did not use a namespace matching the namespace "
                                 f"of the actor.")
            return actor.handle()

    # ---- the same, asked by a worker (a task or an actor creating or calling actors) -----------------------
    def _msg_create_actor(self, worker, req_id, class_id, class_bytes, class_name, methods, is_async, args, kwargs,
                          pins, options):
        options = pickle.loads(options)
        if class_bytes is not None:
            self.function_table[class_id] = class_bytes
        try:
            actor = self._named_actor_for(options)
            if actor is None:
                actor = self._new_actor(random_hex(16), class_name, class_id, methods, is_async, args, kwargs, pins,
                                        options)
            self._reply(worker, req_id, ("ok", actor.actor_id))
        except Exception as error:
            self._reply(worker, req_id, ("error", pickle.dumps(error)))

    def _msg_actor_call(self, worker, actor_id, method, task_id, name, args, kwargs, pins, options):
        try:
            self._submit_call(actor_id, method, task_id, name, args, kwargs, pins, pickle.loads(options),
                              parent=worker.task)
        except Exception as error:
            for i in range(pickle.loads(options)["num_returns"]):
                self._add_ready_object(new_id(task_id, i + 1), ("e", error), (), 0, name)
        if actor_id in self.actors:
            self._pump_actor(self.actors[actor_id])

    def _msg_exiting(self, worker):
        if worker.actor is not None:
            worker.actor.terminating = True  # a graceful exit: no restart

    def _msg_kill(self, worker, actor_id, no_restart):
        self.kill_actor(actor_id, no_restart)

    def _msg_get_actor(self, worker, req_id, name, namespace):
        try:
            handle = self.get_actor(name, namespace)
            self._reply(worker, req_id, ("ok", handle))
        except ValueError as error:
            self._reply(worker, req_id, ("error", pickle.dumps(error)))

    def _worker_pid_of(self, actor_id):
        actor = self.actors.get(actor_id)
        return actor.worker.pid if actor is not None and actor.worker is not None else os.getpid()
