"""A first-in first-out queue shared between tasks and actors, kept in an actor. Mirrors `ray.util.queue`.

>>> import course_runtime as ray
>>> from course_runtime.util.queue import Queue, Empty
>>> q = Queue(maxsize=2)
>>> q.put("a"); q.put("b"); q.full()
True
>>> q.get(), q.get_nowait()
('a', 'b')
>>> try:
...     q.get(timeout=0.1)
... except Empty:
...     print("empty")
empty
"""
import asyncio
import queue

from .. import api


class Empty(queue.Empty):
    pass


class Full(queue.Full):
    pass


class Queue:
    def __init__(self, maxsize=0, actor_options=None):
        self.maxsize = maxsize
        self.actor = api.remote(_QueueActor).options(**(actor_options or {})).remote(maxsize)

    def __len__(self):
        return self.size()

    def size(self):
        return api.get(self.actor.qsize.remote())

    def qsize(self):
        return self.size()

    def empty(self):
        return api.get(self.actor.empty.remote())

    def full(self):
        return api.get(self.actor.full.remote())

    def put(self, item, block=True, timeout=None):
        """Add an item; if the queue is full, wait (up to `timeout` seconds, then Full), or raise Full at once
        with block=False."""
        if not block:
            return self.put_nowait(item)
        _check_timeout(timeout)
        api.get(self.actor.put.remote(item, timeout))

    async def put_async(self, item, block=True, timeout=None):
        if not block:
            return await self.actor.put_nowait.remote(item)
        _check_timeout(timeout)
        await self.actor.put.remote(item, timeout)

    def get(self, block=True, timeout=None):
        """Remove and return the oldest item; if there is none, wait (up to `timeout` seconds, then Empty), or
        raise Empty at once with block=False."""
        if not block:
            return self.get_nowait()
        _check_timeout(timeout)
        return api.get(self.actor.get.remote(timeout))

    async def get_async(self, block=True, timeout=None):
        if not block:
            return await self.actor.get_nowait.remote()
        _check_timeout(timeout)
        return await self.actor.get.remote(timeout)

    def put_nowait(self, item):
        api.get(self.actor.put_nowait.remote(item))

    def put_nowait_batch(self, items):
        """Add all items, or none of them (Full) if they do not fit."""
        if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
            raise TypeError("Argument 'items' must be an Iterable")
        api.get(self.actor.put_nowait_batch.remote(list(items)))

    def get_nowait(self):
        return api.get(self.actor.get_nowait.remote())

    def get_nowait_batch(self, num_items):
        """Remove and return `num_items` items, or none of them (Empty) if there are fewer."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return api.get(self.actor.get_nowait_batch.remote(num_items))

    def shutdown(self, force=False, grace_period_s=5):
        """End the queue's actor."""
        if self.actor is not None:
            api.kill(self.actor)
        self.actor = None


def _check_timeout(timeout):
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class _QueueActor:
    """The actor behind a Queue: an asyncio.Queue, so blocked `get`s and `put`s wait without holding a thread."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.queue = asyncio.Queue(maxsize)

    def qsize(self):
        return self.queue.qsize()

    def empty(self):
        return self.queue.empty()

    def full(self):
        return self.queue.full()

    async def put(self, item, timeout=None):
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            raise Full from None

    async def get(self, timeout=None):
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty from None

    def put_nowait(self, item):
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise Full from None

    def put_nowait_batch(self, items):
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            raise Full(f"Cannot add {len(items)} items to queue of size {self.qsize()} and maxsize {self.maxsize}.")
        for item in items:
            self.queue.put_nowait(item)

    def get_nowait(self):
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            raise Empty from None

    def get_nowait_batch(self, num_items):
        if num_items > self.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]
