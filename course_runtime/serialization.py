"""Turning Python values into bytes and back, so they can cross process boundaries.

Mirrors `ray._private.serialization`. Values are pickled with cloudpickle (so functions and classes defined in a
notebook travel by value) using pickle protocol 5: large binary buffers, such as a numpy array's data, are kept
*out of band*, as separate buffers, instead of being copied into the pickle stream. The object store puts those
buffers in shared memory, and readers rebuild the array directly on top of them: no copy, and read-only.
"""
import inspect
import pickle
import threading
import types

import cloudpickle

from . import fast_paths

INLINE_LIMIT = 100 * 1024  # values smaller than this travel inside messages; larger ones go to shared memory
ALIGNMENT = 64  # buffers in shared memory start on cache-line boundaries (numpy likes aligned data)

_collecting = threading.local()  # ids of ObjectRefs met while pickling (see ObjectRef.__reduce__)


class SerializedValue:
    """A pickled value: the pickle stream, its out-of-band buffers, and the ObjectRefs found inside it."""

    __slots__ = ("inband", "buffers", "contained_refs", "size")

    def __init__(self, inband, buffers, contained_refs):
        self.inband = inband
        self.buffers = buffers  # list of contiguous memoryviews
        self.contained_refs = contained_refs
        self.size = len(inband) + sum(b.nbytes for b in buffers)

    def inline(self):
        """The value as plain bytes objects, to send inside a message."""
        return (self.inband, [b.tobytes() for b in self.buffers])

    def layout(self):
        """Where each part goes in a shared-memory segment: (inband length, [(offset, length), ...]), total size."""
        offset = _align(len(self.inband))
        parts = []
        for b in self.buffers:
            parts.append((offset, b.nbytes))
            offset = _align(offset + b.nbytes)
        return (len(self.inband), parts), max(offset, 1)

    def write_into(self, memory, layout):
        inband_len, parts = layout
        memory[:inband_len] = self.inband
        for buf, (offset, length) in zip(self.buffers, parts):
            if not fast_paths.copy_in_parallel(memory[offset:offset + length], buf.cast("B")):
                memory[offset:offset + length] = buf.cast("B")


def _align(n):
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def serialize(value):
    """Pickle `value`, keeping large buffers out of band. Raises whatever pickling raises."""
    plain = fast_paths.pickle_plain(value)
    if plain is not None:
        return SerializedValue(plain, [], [])
    buffers = []
    previous = getattr(_collecting, "refs", None)
    _collecting.refs = refs = []
    try:
        inband = cloudpickle.dumps(value, protocol=5, buffer_callback=lambda b: buffers.append(b.raw()))
    finally:
        _collecting.refs = previous
    return SerializedValue(inband, buffers, refs)


def note_contained_ref(ref_id):
    """Called by ObjectRef.__reduce__: remember that the value being pickled holds this ref."""
    refs = getattr(_collecting, "refs", None)
    if refs is not None:
        refs.append(ref_id)


def deserialize_inline(inband, buffers):
    return pickle.loads(inband, buffers=buffers)


def deserialize_from(memory, layout):
    """Rebuild a value whose parts lie in `memory` (a read-only memoryview of a segment): zero-copy."""
    inband_len, parts = layout
    return pickle.loads(memory[:inband_len], buffers=[memory[o:o + n] for o, n in parts])


FUNCTION_SIZE_WARNING = 10 * 2**20  # the thresholds Ray uses for a function or class shipped to workers
FUNCTION_SIZE_LIMIT = 95 * 2**20


def check_function_size(pickled, what):
    """Warn about (or refuse) a function or class that pickles big: it almost always captures large data."""
    size = len(pickled)
    advice = ("It probably captures a large object (a global or a variable of an enclosing function). Put the "
              "object in the store with put() and pass the ObjectRef as an argument instead.")
    if size > FUNCTION_SIZE_LIMIT:
        raise ValueError(f"{what} is too large to ship to workers: {size / 2**20:.1f} MiB (the limit is "
                         f"{FUNCTION_SIZE_LIMIT / 2**20:.0f} MiB). {advice}")
    if size > FUNCTION_SIZE_WARNING:
        import warnings
        warnings.warn(f"{what} is large: {size / 2**20:.1f} MiB, shipped to every worker that runs it. {advice}",
                      UserWarning, stacklevel=4)
    return pickled


def pickle_function(function_or_class):
    """Pickle a function or class by value, with the file it comes from: cloudpickle >= 3.1 writes
    "<dynamic-code>" as its file name, which would hide the source lines in remote tracebacks."""
    code = _first_code(function_or_class)
    return cloudpickle.dumps((function_or_class, code.co_filename if code else None))


def unpickle_function(data):
    function_or_class, filename = pickle.loads(data)
    if filename:
        for owner, attribute, code in _codes(function_or_class):
            if code.co_filename != filename:
                setattr(owner, attribute, _with_filename(code, filename))
    return function_or_class


def _codes(obj):
    """(object, attribute, code) for a function, or for each function defined in a class."""
    if inspect.isclass(obj):
        for value in vars(obj).values():
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if inspect.isfunction(function):
                yield function, "__code__", function.__code__
    elif inspect.isfunction(obj):
        yield obj, "__code__", obj.__code__


def _first_code(obj):
    return next((code for _, _, code in _codes(obj)), None)


def _with_filename(code, filename):
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def describe_unpicklable(value, error):
    """A short explanation of why `value` could not be pickled, for error messages."""
    text = repr(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{text} ({type(value).__name__}) could not be serialized: {type(error).__name__}: {error}"
