"""Ray's small utilities built on actors: ActorPool here, Queue in util.queue. Mirrors `ray.util`."""
from .actor_pool import ActorPool

__all__ = ["ActorPool"]
