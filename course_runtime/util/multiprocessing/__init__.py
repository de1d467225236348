"""`multiprocessing.Pool` on actors: `from course_runtime.util.multiprocessing import Pool` instead of
`from multiprocessing import Pool`. Mirrors `python/ray/util/multiprocessing/__init__.py`: `TimeoutError` and
`JoinableQueue` are the standard library's, as in Ray."""
from multiprocessing import JoinableQueue, TimeoutError

from .pool import Pool

__all__ = ["Pool", "TimeoutError", "JoinableQueue"]
