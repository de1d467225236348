"""`multiprocessing.Pool`'s API on actors: each of the pool's "processes" is an actor that runs chunks of work, so code
written for `multiprocessing` runs on the runtime by changing one import. Mirrors Ray's
`python/ray/util/multiprocessing/pool.py` (`ray.util.multiprocessing.Pool`), quirks included (see `PoolTaskError`).

>>> from course_runtime.util.multiprocessing import Pool
>>> def square(x):
...     return x * x
>>> with Pool(processes=2) as pool:  # starts the runtime if none is running, as Ray's Pool does
...     pool.map(square, range(6))
[0, 1, 4, 9, 16, 25]
"""
import itertools
import logging
import threading
import time
from multiprocessing import TimeoutError

from ... import api
from ...exceptions import RayError, RaySystemError

logger = logging.getLogger(__name__)


class PoolTaskError(Exception):
    """What an item whose function raised becomes. `AsyncResult.get` (so `map`, `apply`, ...) raises the function's own
    exception (`.underlying`); but `imap`/`imap_unordered` *yield* the PoolTaskError as a value and `error_callback`
    receives it, as in Ray 2.60 (multiprocessing raises in both places). Check for it when porting an imap loop."""

    def __init__(self, underlying):
        super().__init__(underlying)
        self.underlying = underlying


@api.remote(num_cpus=0)  # as in Ray: the pool's size is checked against the CPUs, its actors reserve none
class PoolActor:
    """One of the pool's "processes". Its calls run one at a time, in order, like a multiprocessing worker's."""

    def __init__(self, initializer=None, initargs=None):
        if initializer is not None:
            initializer(*(initargs or ()))

    def ping(self):
        """Returns once __init__ (and so the initializer) has run: the Pool constructor waits for this."""

    def run_batch(self, func, batch):
        """Call `func(*args, **kwargs)` for each (args, kwargs) of a chunk. One item's exception does not stop the
        chunk: it becomes that item's result, wrapped so the driver can tell it from a returned exception."""
        results = []
        for args, kwargs in batch:
            try:
                results.append(func(*(args or ()), **(kwargs or {})))
            except Exception as error:
                results.append(PoolTaskError(error))
        return results


class AsyncResult:
    """The future of `apply_async`/`map_async`/`starmap_async`. A thread collects the chunks as they finish, calls
    `error_callback` at the first failure (or `callback` once everything succeeded), then ends: `ready()` is True
    from then on.

    >>> pool = Pool(1)
    >>> result = pool.apply_async(divmod, (7, 2))
    >>> result.get(timeout=30), result.ready(), result.successful()
    ((3, 1), True, True)
    >>> pool.terminate()
    """

    def __init__(self, chunk_refs, callback=None, error_callback=None, single_result=False):
        self._chunks = [None] * len(chunk_refs)  # each chunk's list of results, in submission order
        self._got_error = False
        self._single_result = single_result
        self._thread = threading.Thread(target=self._collect, args=(list(chunk_refs), callback, error_callback),
                                        daemon=True)
        self._thread.start()

    def _collect(self, chunk_refs, callback, error_callback):
        index_of = {ref: i for i, ref in enumerate(chunk_refs)}
        pending, succeeded = list(chunk_refs), []  # succeeded: in the order chunks finish (callback gets it), as in Ray
        while pending:
            try:
                if not api.is_initialized():  # (a wait now would start a new session)
                    raise RaySystemError
                ready, pending = api.wait(pending, num_returns=1)  # a shutdown() wakes it with RaySystemError
            except RaySystemError:  # shut down under us, before or during the wait: these results will never come
                lost = RayError("ray.shutdown() was called before this Pool result arrived.")
                for ref in pending:
                    self._chunks[index_of[ref]] = [lost]
                self._got_error = True
                return
            for ref in ready:
                try:
                    chunk = api.get(ref)
                except RayError as error:  # the actor died (terminate(), a crash): the whole chunk is lost
                    chunk = [error]
                self._chunks[index_of[ref]] = chunk
                failure = next((r for r in chunk if isinstance(r, Exception)), None)
                if failure is None:
                    succeeded.extend(chunk)
                elif not self._got_error:
                    self._got_error = True
                    if error_callback is not None:
                        error_callback(failure)  # gets the PoolTaskError itself, as in Ray
        if not self._got_error and callback is not None:
            callback(succeeded[0] if self._single_result else succeeded)

    def wait(self, timeout=None):
        """Return once the results are in, or after `timeout` seconds (no error either way)."""
        self._thread.join(timeout)

    def get(self, timeout=None):
        """The result (a list for the map family). Raises the first failed item's exception, or
        multiprocessing.TimeoutError if the results are not in within `timeout` seconds."""
        self.wait(timeout)
        if self._thread.is_alive():
            raise TimeoutError
        results = [r for chunk in self._chunks for r in chunk]
        for r in results:
            if isinstance(r, PoolTaskError):
                raise r.underlying
            if isinstance(r, Exception):
                raise r
        return results[0] if self._single_result else results

    def ready(self):
        return not self._thread.is_alive()

    def successful(self):
        """True if no item failed. Only once ready(): before that, ValueError."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return not self._got_error


class IMapIterator:
    """The results of `imap` (OrderedIMapIterator) and `imap_unordered` (UnorderedIMapIterator). Lazy, unlike map:
    one chunk per actor is in flight; each result that comes in sends the next chunk. `next(timeout)` raises
    multiprocessing.TimeoutError if no result comes in time. Failed items are yielded as `PoolTaskError` values."""

    ordered = True

    def __init__(self, pool, func, iterable, chunksize=1):
        self._pool, self._func = pool, func
        self._items = iter(iterable)
        self._chunksize = 1 if chunksize is None else chunksize
        self._exhausted = False
        self._in_flight = {}  # ObjectRef -> chunk number
        self._arrived = {}  # chunk number -> its results, until handed out
        self._submitted = self._handed_out = 0  # chunks
        self._buffer = []  # results of the chunk being handed out
        for _ in range(len(pool._actors)):
            self._submit_next_chunk()

    def _submit_next_chunk(self):
        chunk = [] if self._exhausted else list(itertools.islice(self._items, self._chunksize))
        if len(chunk) < self._chunksize:
            self._exhausted = True
        if chunk:
            ref = self._pool._run_batch(self._submitted % len(self._pool._actors), self._func,
                                        [((item,), None) for item in chunk])
            self._in_flight[ref] = self._submitted
            self._submitted += 1

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            wanted = self._handed_out if self.ordered else next(iter(self._arrived), None)
            if wanted in self._arrived:
                self._buffer = self._arrived.pop(wanted)
                self._handed_out += 1
                continue
            if not self._in_flight:
                raise StopIteration
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = api.wait(list(self._in_flight), num_returns=1, timeout=left)
            if not ready:
                raise TimeoutError
            number = self._in_flight.pop(ready[0])
            try:
                self._arrived[number] = api.get(ready[0])
            except RayError as error:  # the actor died: Ray yields the error in place of the chunk
                self._arrived[number] = [error]
            self._submit_next_chunk()
        return self._buffer.pop(0)


class OrderedIMapIterator(IMapIterator):
    ordered = True


class UnorderedIMapIterator(IMapIterator):
    ordered = False


class Pool:
    """A pool of `processes` actors (default: every CPU of the cluster) that runs functions on your data.

    `initializer(*initargs)` runs once in each actor as it starts. With `maxtasksperchild=n`, an actor is replaced by a
    fresh one after n chunks. If the runtime is not running, the Pool starts it with `init(num_cpus=processes)`
    (`ray_address` is passed to `init(address=...)`). `with Pool() as pool:` ends with `terminate()`: work still
    running is stopped. `context` is accepted and ignored (with a warning); `ray_remote_args` are the actors' options.

    >>> def set_greeting(text):  # runs once in each actor
    ...     import os
    ...     os.environ["GREETING"] = text
    >>> def greet(name):
    ...     import os
    ...     return f"{os.environ['GREETING']} {name}"
    >>> with Pool(2, initializer=set_greeting, initargs=("hello",)) as pool:
    ...     pool.map(greet, ["Ada", "Alan"])
    ['hello Ada', 'hello Alan']
    >>> with Pool(2) as pool:
    ...     pool.starmap(pow, [(2, 3), (3, 2)]), pool.apply(max, (4, 9)), list(pool.imap(abs, [-3, 2]))
    ([8, 9], 9, [3, 2])
    >>> pool.map(abs, [1])  # a pool once closed or terminated takes no more work
    Traceback (most recent call last):
    ...
    ValueError: Pool not running
    """

    def __init__(self, processes=None, initializer=None, initargs=None, maxtasksperchild=None, context=None,
                 ray_address=None, ray_remote_args=None):
        self._check_count("processes", processes)
        self._check_count("maxtasksperchild", maxtasksperchild, no_limit=(0, -1))
        if context is not None:
            logger.warning("The 'context' argument is not supported using ray. Please refer to the documentation for "
                           "how to control ray initialization.")
        if not api.is_initialized():
            if ray_address is None or ray_address == "local":
                api.init(address=ray_address, num_cpus=processes)
            else:
                api.init(address=ray_address)
        cpus = int(api.cluster_resources().get("CPU", 0))
        if processes is None:
            processes = cpus
        if processes <= 0:
            raise ValueError("Processes in the pool must be >0.")
        if processes > cpus:
            raise ValueError(f"Tried to start a pool with {processes} processes on an existing ray cluster, but there "
                             f"are only {cpus} CPUs in the ray cluster.")
        self._closed = False
        self._initializer, self._initargs = initializer, initargs
        self._maxtasksperchild = None if maxtasksperchild in (0, -1) else maxtasksperchild
        self._actor_class = PoolActor.options(**(ray_remote_args or {}))
        self._actors = [self._new_actor() for _ in range(processes)]  # [actor, chunks run so far]
        self._stopping = []  # refs of __ray_terminate__ calls: join() waits for them
        self._next_apply = itertools.cycle(range(processes))  # apply_async goes round the actors
        api.get([actor.ping.remote() for actor, _ in self._actors])  # an initializer that raises fails here

    @staticmethod
    def _check_count(name, value, no_limit=()):
        # Ray starts a session with num_cpus=processes first and then fails oddly (KeyError 'CPU' for 0): we check first
        if value is None or value in no_limit:  # maxtasksperchild 0 and -1 mean no limit in Ray
            return
        if not isinstance(value, int):
            raise TypeError(f"Pool({name}={value!r}): give a whole number (an int), or None.")
        if value <= 0:
            raise ValueError("Processes in the pool must be >0." if name == "processes" else
                             f"Pool(maxtasksperchild={value!r}): give a number > 0, or None for no limit.")

    def _new_actor(self):
        return [self._actor_class.remote(self._initializer, self._initargs), 0]

    def _run_batch(self, index, func, batch):
        """Send one chunk to actor `index`; replace the actor once it has been given maxtasksperchild chunks."""
        entry = self._actors[index]
        ref = entry[0].run_batch.remote(func, batch)
        entry[1] += 1
        if entry[1] == self._maxtasksperchild:
            self._stop_actor(entry[0])  # it exits after the chunks already sent to it
            self._actors[index] = self._new_actor()
        return ref

    def _stop_actor(self, actor):
        self._stopping.append(actor.__ray_terminate__.remote())

    def _check_running(self):
        if self._closed:
            raise ValueError("Pool not running")

    @staticmethod
    def _check_chunksize(chunksize):
        if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f"chunksize={chunksize!r}: give a whole number >= 1, or None to let the pool choose.")

    def _map_async(self, func, iterable, chunksize=None, unpack_args=False, callback=None, error_callback=None):
        self._check_running()
        self._check_chunksize(chunksize)
        items = iterable if hasattr(iterable, "__len__") else list(iterable)
        if chunksize is None:  # about four chunks per actor: big enough to amortise a call, small enough to balance
            chunksize = max(1, -(-len(items) // (4 * len(self._actors))))
        args = [item if unpack_args else (item,) for item in items]  # starmap's items are unpacked in the actor
        chunks = [args[i:i + chunksize] for i in range(0, len(args), chunksize)]
        refs = [self._run_batch(n % len(self._actors), func, [(a, None) for a in chunk])
                for n, chunk in enumerate(chunks)]
        return AsyncResult(refs, callback, error_callback)

    def map(self, func, iterable, chunksize=None):
        """`[func(x) for x in iterable]`, in chunks sent round the actors. Raises the first failed item's error."""
        return self._map_async(func, iterable, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        """`[func(*args) for args in iterable]`."""
        return self._map_async(func, iterable, chunksize, unpack_args=True).get()

    def starmap_async(self, func, iterable, callback=None, error_callback=None):  # no chunksize, as in Ray
        return self._map_async(func, iterable, None, True, callback, error_callback)

    def apply(self, func, args=None, kwargs=None):
        """`func(*args, **kwargs)` on one of the actors; returns its result (or raises its error)."""
        return self.apply_async(func, args, kwargs).get()

    def apply_async(self, func, args=None, kwargs=None, callback=None, error_callback=None):
        self._check_running()
        ref = self._run_batch(next(self._next_apply), func, [(args, kwargs)])
        return AsyncResult([ref], callback, error_callback, single_result=True)

    def imap(self, func, iterable, chunksize=1):
        """Like map, but lazy and a generator of results in input order."""
        self._check_running()
        self._check_chunksize(chunksize)
        return OrderedIMapIterator(self, func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        """Like imap, but each result as soon as it is ready."""
        self._check_running()
        self._check_chunksize(chunksize)
        return UnorderedIMapIterator(self, func, iterable, chunksize)

    def close(self):
        """Accept no more work; each actor exits once the work already sent to it is done (see join)."""
        for actor, _ in self._actors:
            self._stop_actor(actor)
        self._closed = True

    def terminate(self):
        """Close and kill the actors now: work still running fails with ActorDiedError."""
        if not self._closed:
            self.close()
        for actor, _ in self._actors:
            api.kill(actor)

    def join(self):
        """Wait until the actors of a closed pool have exited. ValueError if the pool was not closed first."""
        if not self._closed:
            raise ValueError("Pool is still running")
        if self._stopping:
            api.wait(self._stopping, num_returns=len(self._stopping))
            self._stopping = []

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc_info):
        self.terminate()  # as in Ray (and multiprocessing): leaving the block stops unfinished work
