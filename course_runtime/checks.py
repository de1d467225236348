"""Exercise checks for the notebooks: they look at *what ran*, never at the clock, and work on both backends.

Not a Ray component: course helpers. A check cell calls these after the learner's code ran:

    check(result == [0, 1, 4, 9], "squares of 0..3, in order")
    with count_calls(ray, "get") as gets:
        total = sum_in_parallel(data)
    check(gets.count == 1, "get was called once, on the whole list")
    check(overlaps(name="slow_square") >= 2, "the tasks ran at the same time")

A failed check raises AssertionError with a hint; a passed one prints a line starting with a tick.
"""
import contextlib
import functools

from .viz import overlaps  # noqa: F401  (re-exported for check cells)


def check(condition, what, hint=""):
    """Assert `condition`; print "✓ what" when it holds, raise AssertionError("✗ what. hint") otherwise."""
    if not condition:
        raise AssertionError(f"✗ {what}. {hint}".rstrip())
    print(f"✓ {what}")


class _Counter:
    def __init__(self):
        self.count = 0
        self.calls = []


@contextlib.contextmanager
def count_calls(module, name):
    """Count calls of `module.<name>` (e.g. `ray.get`) made inside the `with` block, by wrapping it for the block.

    >>> import course_runtime as ray
    >>> with count_calls(ray, "put") as puts:
    ...     refs = [ray.put(i) for i in range(3)]
    >>> puts.count
    3
    """
    original = getattr(module, name)
    counter = _Counter()

    @functools.wraps(original)
    def counting(*args, **kwargs):
        counter.count += 1
        counter.calls.append((args, kwargs))
        return original(*args, **kwargs)

    setattr(module, name, counting)
    try:
        yield counter
    finally:
        setattr(module, name, original)
