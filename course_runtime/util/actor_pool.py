"""ActorPool: share work among a fixed set of actors, one item per actor at a time. Mirrors `ray.util.ActorPool`.

>>> import course_runtime as ray
>>> from course_runtime.util import ActorPool
>>> @ray.remote
... class Doubler:
...     def double(self, x):
...         return 2 * x
>>> pool = ActorPool([Doubler.remote(), Doubler.remote()])
>>> list(pool.map(lambda actor, x: actor.double.remote(x), [1, 2, 3, 4]))
[2, 4, 6, 8]
"""
from .. import api


class ActorPool:
    def __init__(self, actors):
        self._idle = list(actors)
        self._busy = {}  # ObjectRef -> (submission index, actor)
        self._by_index = {}  # submission index -> ObjectRef, for results in order
        self._next_submit = 0
        self._next_return = 0
        self._waiting = []  # (fn, value) submitted while every actor was busy

    def map(self, fn, values):
        """Apply `fn(actor, value)` to every value; yield the results in the order of `values`."""
        return self._map(fn, values, self.get_next)

    def map_unordered(self, fn, values):
        """Like map, but yield each result as soon as it is ready."""
        return self._map(fn, values, self.get_next_unordered)

    def _map(self, fn, values, next_result):
        self._drain()
        for value in values:
            self.submit(fn, value)
        while self.has_next():
            yield next_result()

    def submit(self, fn, value):
        """Run `fn(actor, value)` on an idle actor now, or on the next one that becomes free."""
        if self._idle:
            actor = self._idle.pop()
            ref = fn(actor, value)
            self._busy[ref] = (self._next_submit, actor)
            self._by_index[self._next_submit] = ref
            self._next_submit += 1
        else:
            self._waiting.append((fn, value))

    def has_next(self):
        return bool(self._busy) or bool(self._waiting)

    def get_next(self, timeout=None, ignore_if_timedout=False):
        """The next result in submission order. TimeoutError if it is not ready within `timeout` seconds."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return >= self._next_submit:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        ref = self._by_index[self._next_return]
        ready, _ = api.wait([ref], timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                self._next_return += 1
                del self._by_index[self._next_return - 1]
            raise TimeoutError("Timed out waiting for result")
        del self._by_index[self._next_return]
        self._next_return += 1
        _, actor = self._busy.pop(ref)
        self._return_actor(actor)
        return api.get(ref)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        """Whichever result is ready first. TimeoutError if none is ready within `timeout` seconds."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = api.wait(list(self._busy), num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError("Timed out waiting for result")
        ref = ready[0]
        index, actor = self._busy.pop(ref)
        self._by_index.pop(index, None)
        self._return_actor(actor)
        return api.get(ref)

    def has_free(self):
        return bool(self._idle) and not self._waiting

    def pop_idle(self):
        """Take an idle actor out of the pool (None if there is none)."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor):
        """Add an actor to the pool (it starts taking waiting work at once)."""
        if actor in self._idle or any(actor == a for _, a in self._busy.values()):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    def _return_actor(self, actor):
        self._idle.append(actor)
        if self._waiting:
            self.submit(*self._waiting.pop(0))

    def _drain(self):
        while self.has_next():
            try:
                self.get_next_unordered()
            except Exception:
                pass
