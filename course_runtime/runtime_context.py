"""What code can ask about where it runs: job, node, task and actor ids, and the resources it was given.

Mirrors `ray.runtime_context`. The driver and each worker fill in a RuntimeContext for the code running there.
"""


class RuntimeContext:
    def __init__(self, job_id, node_id, namespace, task_id=None, task_name=None, assigned_resources=None,
                 worker_id=None, actor_id=None, actor_name=None, current_actor=None, canceled=None, runtime_env=None):
        self._job_id, self._node_id, self._namespace = job_id, node_id, namespace
        self._task_id, self._task_name, self._worker_id = task_id, task_name, worker_id
        self._assigned = assigned_resources or {}
        self._actor_id, self._actor_name, self._current_actor = actor_id, actor_name, current_actor
        self._canceled = canceled or _not_in_a_worker
        self._runtime_env = runtime_env

    def get_job_id(self):
        return self._job_id

    def get_node_id(self):
        return self._node_id

    def get_worker_id(self):
        return self._worker_id

    def get_task_id(self):
        """The id of the running task, or None on the driver."""
        return self._task_id

    def get_task_name(self):
        return self._task_name

    def get_actor_id(self):
        return self._actor_id

    def get_actor_name(self):
        return self._actor_name

    def get_assigned_resources(self):
        """The resources this task or actor holds, e.g. {'CPU': 1.0}; {} on the driver. In a placement group it
        holds its bundle's (`CPU_group_<id>`): listed under the plain names, as Ray does."""
        return {name.split("_group_")[0]: amount for name, amount in self._assigned.items()
                if not name.startswith("bundle_group_")}

    def _placement_group_id(self):
        """The placement group this task or actor runs in (from the names of what it holds), or None."""
        return next((name.rsplit("_", 1)[1] for name in self._assigned if name.startswith("bundle_group_")), None)

    def is_canceled(self):
        return self._canceled()

    @property
    def runtime_env(self):
        """The runtime_env this code runs in (the job's on the driver), as a dict."""
        return dict(self._runtime_env or {})

    @property
    def namespace(self):
        return self._namespace

    @property
    def current_actor(self):
        if self._current_actor is None:
            raise RuntimeError("current_actor is only available inside an actor.")
        return self._current_actor

    @property
    def was_current_actor_reconstructed(self):
        return False

    def get(self):
        return {"job_id": self._job_id, "node_id": self._node_id, "namespace": self._namespace,
                "task_id": self._task_id, "actor_id": self._actor_id}

    def __repr__(self):
        return (f"RuntimeContext(job_id={self._job_id}, node_id={self._node_id[:8]}..., task_id={self._task_id}, "
                f"actor_id={self._actor_id})")


def _not_in_a_worker():
    raise RuntimeError("This method is only available when the process is a worker (in a task or an actor), "
                       "not in the driver.")
