"""The shared-memory object store: one segment per large object, allocated, sealed and freed by the driver.

Mirrors Ray's plasma store (`src/ray/object_manager/plasma/`: create, seal, get, abandon, delete). The driver
allocates every segment, so it can enforce `object_store_memory` *before* anything is written; a writer (the driver,
or a worker that asked for the segment over its pipe) maps it and copies the value in with `write`, the one write
path; the driver then seals it, the moment the object becomes visible. A segment whose writer failed or died is
abandoned unsealed: nobody ever reads half an object. Allocating reserves the memory, so a full disk or memory is an
ObjectStoreFullError for the caller, never a SIGBUS that kills the writer.

On Linux a segment is a memfd: anonymous memory with no name in /dev/shm, unaffected by /dev/shm's size, and freed by
the kernel when its last user closes it, even if the driver is killed with SIGKILL. Other processes open it through
`/proc/<driver pid>/fd/<fd>`, which only the same user may do. Elsewhere (macOS) a segment is a file in a private
per-session folder (mode 0700), and `init()` removes folders that dead sessions left behind.
"""
import errno
import mmap
import os
import shutil
import tempfile

try:
    import resource
except ImportError:  # Windows
    resource = None

from . import fast_paths
from .exceptions import ObjectStoreFullError
from .serialization import INLINE_LIMIT, deserialize_from

USE_MEMFD = hasattr(os, "memfd_create") and os.environ.get("COURSE_RUNTIME_SHM") != "files"
_SESSION_PREFIX = "course-runtime-"


class Segment:
    """One object's shared memory, owned by the driver."""

    __slots__ = ("seg_id", "size", "fd", "path", "description", "_view")

    def __init__(self, seg_id, size, folder, description):
        self.seg_id, self.size, self.description, self._view = seg_id, size, description, None
        if USE_MEMFD:
            self.fd = os.memfd_create(f"course_runtime_{seg_id}", os.MFD_CLOEXEC)
            self.path = f"/proc/{os.getpid()}/fd/{self.fd}"
        else:
            self.path = os.path.join(folder, str(seg_id))
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(self.fd, 0o600)
            os.ftruncate(self.fd, size)
            reserve(self.fd, size)
        except BaseException:
            self.close()
            raise

    def read_view(self):
        """A read-only memoryview of the whole segment, mapped once and reused by the driver."""
        if self._view is None:
            self._view = memoryview(mmap.mmap(self.fd, self.size, prot=mmap.PROT_READ)).toreadonly()
        return self._view

    def read(self, layout):
        """The value in this segment, rebuilt on top of the driver's mapping (zero-copy, read-only)."""
        return deserialize_from(self.read_view(), layout)

    def close(self):
        # The memory itself lives on while any process still maps it (e.g. a numpy array viewing it).
        self._view = None
        os.close(self.fd)
        if not USE_MEMFD:
            os.unlink(self.path)


def reserve(fd, size):
    """Take the memory now, or fail with OSError (ENOSPC, ENOMEM) now. Without this, a writer filling the mapping of
    a segment whose file system has run out of room (a full tmpfs such as Docker's 64 MB /dev/shm, a full disk)
    is killed by SIGBUS, taking the driver (the Jupyter kernel) with it. macOS has no posix_fallocate."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)


def write(path, serialized, layout, size):
    """Copy a pickled value into the segment at `path` (by the driver, or by a worker that was given its path)."""
    fd = os.open(path, os.O_RDWR)
    try:
        populate = getattr(mmap, "MAP_POPULATE", 0) if fast_paths.populate_pages(size) else 0
        mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | populate)
    finally:
        os.close(fd)  # the mapping keeps the memory reachable
    with memoryview(mapping) as memory:
        serialized.write_into(memory, layout)
    mapping.close()


def read(path, size, layout):
    """The value stored in the segment at `path`, rebuilt on top of the shared memory (zero-copy, read-only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return deserialize_from(memoryview(mmap.mmap(fd, size, prot=mmap.PROT_READ)).toreadonly(), layout)
    finally:
        os.close(fd)


class ObjectStore:
    """Allocates segments within a memory budget and knows what is using it.

    >>> store = ObjectStore(capacity=3 * 2**20)
    >>> segment = store.allocate(2 * 2**20, "an example", writer="worker 1")
    >>> store.used, sorted(store.unsealed)
    (2097152, [1])
    >>> store.allocate(2 * 2**20, "a second one")
    Traceback (most recent call last):
    ...
    course_runtime.exceptions.ObjectStoreFullError: Cannot store 2.0 MiB (a second one): the object store holds ...
    >>> store.seal(segment.seg_id) is segment, store.unsealed
    (True, {})
    >>> store.free(segment); store.used
    0
    >>> store.close()
    """

    def __init__(self, capacity):
        self.capacity = capacity
        self.used = 0
        self.segments = {}
        self.unsealed = {}  # segment id -> its writer, for segments being written (freed if the writer dies)
        self._next_id = 0
        self.folder = None
        if not USE_MEMFD:
            sweep_dead_sessions()
            self.folder = tempfile.mkdtemp(prefix=f"{_SESSION_PREFIX}{os.getpid()}-")

    def allocate(self, size, description, writer=None):
        """Reserve `size` bytes for a new object; ObjectStoreFullError if the budget does not allow it."""
        if self.used + size > self.capacity:
            raise ObjectStoreFullError(self._full_message(size, description))
        self._next_id += 1
        try:
            segment = Segment(self._next_id, size, self.folder, description)
        except OSError as error:  # out of memory, disk or file descriptors: an error for the caller, not a crash
            raise ObjectStoreFullError(self.refused_message(size, description, error)) from None
        self.segments[segment.seg_id] = segment
        self.used += size
        if writer is not None:
            self.unsealed[segment.seg_id] = writer
        return segment

    def seal(self, seg_id):
        """The writer is done: the segment holds a whole value now."""
        self.unsealed.pop(seg_id, None)
        return self.segments[seg_id]

    def abandon(self, seg_id=None, writer=None):
        """Free a segment left unsealed (its write failed), or every one a writer (a dead worker) left."""
        for seg in [seg_id] if writer is None else [s for s, w in self.unsealed.items() if w is writer]:
            if self.unsealed.pop(seg, None) is not None:
                self.free(self.segments[seg])

    def free(self, segment):
        if self.segments.pop(segment.seg_id, None) is not None:
            self.used -= segment.size
            segment.close()

    def close(self):
        for segment in list(self.segments.values()):
            self.free(segment)
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _full_message(self, size, description):
        biggest = sorted(self.segments.values(), key=lambda s: -s.size)[:5]
        users = "; ".join(f"{mb(s.size)} {s.description}" for s in biggest) or "nothing"
        return (f"Cannot store {mb(size)} ({description}): the object store holds {mb(self.used)} of its "
                f"{mb(self.capacity)} limit (object_store_memory). Largest objects: {users}. Objects are freed when "
                f"no ObjectRef to them remains: delete refs you no longer need (del ref), or pass a larger "
                f"object_store_memory to init().")

    def refused_message(self, size, description, error):
        """Why the system (not the budget) refused a segment, and what to do about it."""
        if error.errno in (errno.EMFILE, errno.ENFILE):
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if resource else "?"
            advice = (f"each stored object of {INLINE_LIMIT // 1024} KiB or more keeps a file open in the driver, "
                      f"and this process may open {limit} files. Delete refs you no longer need (del ref), or "
                      f"raise the limit (ulimit -n) before starting Python.")
        elif self.folder:
            advice = (f"its files are in {self.folder}, on a file system that is full. Free space there, or point "
                      f"TMPDIR at a larger file system before starting Python.")
        else:
            advice = "the machine is short of memory. Delete refs you no longer need (del ref), or store less."
        return (f"Cannot store {mb(size)} ({description}): the system refused the shared memory "
                f"({error.strerror or error}): {advice} The store holds {mb(self.used)} in "
                f"{len(self.segments)} objects.")


def mb(n):
    return f"{n / 2**20:.1f} MiB"


def sweep_dead_sessions():
    """Remove the segment folders of sessions whose driver process no longer exists."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if not name.startswith(_SESSION_PREFIX):
            continue
        try:
            pid = int(name[len(_SESSION_PREFIX):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except (ValueError, PermissionError):
            pass
