"""What calling a generator task returns: ObjectRefGenerator (streaming, Ray's default) and DynamicObjectRefGenerator.

Mirrors `ObjectRefGenerator` in Ray's `_raylet.pyx`: each `next()` asks the owner for the task's next item and gives
its ObjectRef as soon as the task has yielded it, while the task goes on. The items live in the owner's Stream
(owner.py) until taken; dropping the generator frees those never taken.
"""
import time

from . import object_ref
from .exceptions import GetTimeoutError
from .object_ref import ObjectRef

POLL_S = 0.01  # ray.wait on generators looks again this often (items are not objects it can wait on)


class ObjectRefGenerator:
    """Iterate (`for`, `next()`, `async for`) to get each yielded item's ObjectRef, in order. An error in the
    task comes as the ref of the item where it happened (`ray.get` raises it); then the iteration stops."""

    def __init__(self, completion_ref):
        self._completion, self._index, self._finished = completion_ref, 0, False

    def __iter__(self):
        return self

    def __next__(self):
        return self._next(None)

    def _next(self, timeout):
        if self._finished:
            raise StopIteration
        item = object_ref.current_runtime().next_item(self._completion.hex()[:-8], self._index, timeout)
        if item is None or item == self._completion.hex():
            self._finished = True  # after the error's ref (if any), nothing more
        if item is None:
            raise StopIteration
        self._index += 1
        return ObjectRef(item)

    def __aiter__(self):
        return self

    async def __anext__(self):
        import asyncio  # only async consumers need it

        item = await asyncio.get_running_loop().run_in_executor(None, next, self, None)  # a thread waits
        if item is None:
            raise StopAsyncIteration
        return item

    def completed(self):
        """An ObjectRef that is ready once the task has ended (its value: None, or the task's error)."""
        return self._completion

    def is_finished(self):
        return self._finished

    def _has_next(self):
        """Is next() ready to return at once (an item, the error, or the end)? It takes nothing."""
        if self._finished:
            return True
        try:
            object_ref.current_runtime().next_item(self._completion.hex()[:-8], self._index, 0)
            return True
        except GetTimeoutError:
            return False

    def __reduce__(self):
        raise TypeError("You cannot return or pass a generator to other task. Serializing a ObjectRefGenerator is "
                        "not allowed: iterate it here, and pass the refs it gives.")

    def __repr__(self):
        return f"ObjectRefGenerator({self._completion.hex()[:-8]})"


class DynamicObjectRefGenerator:
    """What a `num_returns="dynamic"` task returns (inside one ObjectRef): the refs of every item it yielded, stored
    when it ended. Deprecated in Ray in favour of streaming, and still works."""

    def __init__(self, refs):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self):
        return len(self._refs)

    def __repr__(self):
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


def wait_with_generators(waitables, num_returns, timeout, wait_ids):
    """ray.wait on refs and generators: a generator is ready when its next() would return at once. Its next item
    has no object to wait on yet, so this waits on the pending refs and the generators' completions, and looks
    again every POLL_S."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        refs = [w for w in waitables if isinstance(w, ObjectRef)]
        ready_refs = {refs[p] for p in wait_ids([r.hex() for r in refs], len(refs), 0)} if refs else set()
        ready = [w for w in waitables if (w in ready_refs if isinstance(w, ObjectRef) else w._has_next())]
        remaining = None if deadline is None else deadline - time.monotonic()
        if len(ready) >= num_returns or (remaining is not None and remaining <= 0):
            chosen = ready[:num_returns]
            return chosen, [w for w in waitables if not any(w is c for c in chosen)]
        pending = [w if isinstance(w, ObjectRef) else w.completed() for w in waitables
                   if not any(w is r for r in ready)]
        wait_ids([r.hex() for r in pending], 1, POLL_S if remaining is None else min(POLL_S, remaining))
