"""ObjectRef: a future for a value in the object store, and the reference counting that decides its lifetime.

Mirrors `ray.ObjectRef` and the reference counter in Ray's core worker. Every process counts its live ObjectRef
instances per object id. Creating or deleting a ref only appends to a deque (cheap, thread-safe, and safe inside
`__del__`, which can run at any moment); the runtime drains the deque at its next step. A worker tells the driver
when it starts or stops holding an id; the driver frees an object once nobody holds it: no ref in the driver, none
in any worker, no queued task that needs it, and no stored value that contains it.
"""
import collections
import itertools
import os
import random

from . import serialization

_events = collections.deque()  # (object id, +1 or -1), in the order refs were created and deleted
current_runtime = None  # session.current, set by session.py (this module sits below it, and never imports it)


class ObjectRef:
    """The receipt for a value that is (or will be) in the object store. Pass it around; `get` it when needed."""

    __slots__ = ("_id", "__weakref__")

    def __init__(self, id_hex):
        self._id = id_hex
        _events.append((id_hex, 1))

    def __del__(self):
        try:
            _events.append((self._id, -1))
        except Exception:  # interpreter shutdown
            pass

    def hex(self):
        return self._id

    def binary(self):
        return bytes.fromhex(self._id)

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other._id == self._id

    def __hash__(self):
        return hash(self._id)

    def __repr__(self):
        return f"ObjectRef({self._id})"

    def __reduce__(self):
        # Pickling a ref (inside a task argument or a stored value) records it, so the runtime keeps the object
        # alive for as long as the message or value that carries it.
        serialization.note_contained_ref(self._id)
        return (ObjectRef, (self._id,))

    def future(self):
        """A concurrent.futures.Future that completes with the value (or the error) of this ref."""
        return current_runtime().future_for(self)

    def __await__(self):
        import asyncio
        return asyncio.wrap_future(self.future()).__await__()


def future_resolver(runtime, ref):
    """A Future for `ref`, and the function that completes it with the value (or error) once `get` won't block."""
    import concurrent.futures
    future = concurrent.futures.Future()

    def resolve():
        try:
            future.set_result(runtime.get_values([ref.hex()], None)[0])
        except BaseException as error:
            future.set_exception(error)

    return future, resolve


def new_id(task_id_hex, index):
    """Object ids are the creating task's id plus a 4-byte index (as in Ray): 56 hex characters."""
    return task_id_hex + index.to_bytes(4, "little").hex()


_random = random.Random(os.urandom(32))  # private: a notebook's random.seed() must not repeat our ids


def random_hex(nbytes):
    return f"{_random.getrandbits(8 * nbytes):0{2 * nbytes}x}"


_task_counter = itertools.count(1)
_task_prefix = random_hex(16)


def random_task_id():
    """24 bytes, as in Ray: a random prefix drawn once per process, then a counter (cheaper than 24 random bytes
    for every task, and still never repeated across processes or sessions)."""
    return f"{_task_prefix}{next(_task_counter):016x}"


def _after_fork_in_child():
    """A forked child must not repeat its parent's ids: fresh randomness, a fresh prefix."""
    global _task_prefix
    _random.seed(os.urandom(32))
    _task_prefix = random_hex(16)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LocalRefCounts:
    """This process's count of live ObjectRef instances per id, turned into 'now held' / 'no longer held' news."""

    def __init__(self):
        self.counts = {}

    def drain(self):
        """Apply the pending events; return (ids that became held, ids that stopped being held).

        An id both created and dropped since the last drain is in both lists (its object may be waiting for that
        release to be freed); one dropped and re-created is in neither (it was never really let go)."""
        if not _events:  # nothing happened since the last drain (this runs with every message)
            return (), ()
        counts = self.counts
        held_at_start = {}
        held_meanwhile = set()
        popleft = _events.popleft
        while True:
            try:
                ref_id, delta = popleft()
            except IndexError:
                break
            before = counts.get(ref_id, 0)
            held_at_start.setdefault(ref_id, before > 0)
            after = before + delta
            if after > 0:
                counts[ref_id] = after
                held_meanwhile.add(ref_id)
            else:
                counts.pop(ref_id, None)
        held, released = [], []
        for ref_id, was_held in held_at_start.items():
            now = ref_id in counts
            if not was_held and (now or ref_id in held_meanwhile):
                held.append(ref_id)
            if (was_held or ref_id in held_meanwhile) and not now:
                released.append(ref_id)
        return held, released


def clear_pending_events():
    _events.clear()
