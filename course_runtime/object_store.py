"""The shared-memory object store: one segment per large object, created and accounted for by the driver.

Mirrors Ray's plasma store (create, write, seal, read zero-copy, free). The driver creates every segment, so it can
enforce `object_store_memory` *before* anything is written; a writer (the driver, or a worker asking over its pipe)
maps the segment, copies the value in, and "seals" it, which is the moment the object becomes visible. A worker that
dies while writing leaves only an unsealed segment, which the driver frees: nobody ever reads half an object.
The driver reserves a segment's memory when it creates it, so a full disk or memory is an ObjectStoreFullError for
the caller, never a SIGBUS that kills the writer.

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

from .exceptions import ObjectStoreFullError
from .serialization import INLINE_LIMIT, PARALLEL_COPY_BYTES

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


def map_for_writing(path, size):
    """Map a segment created by the driver, for the writer to fill. Touching all pages up front is faster, except
    for large values, whose pages the copying threads touch in parallel (serialization.PARALLEL_COPY_BYTES)."""
    populate = getattr(mmap, "MAP_POPULATE", 0) if size < PARALLEL_COPY_BYTES else 0
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | populate)
    finally:
        os.close(fd)  # the mapping keeps the memory reachable


def map_for_reading(path, size):
    fd = os.open(path, os.O_RDONLY)
    try:
        return memoryview(mmap.mmap(fd, size, prot=mmap.PROT_READ)).toreadonly()
    finally:
        os.close(fd)


class ObjectStore:
    """Allocates segments within a memory budget and knows what is using it."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.used = 0
        self.segments = {}
        self._next_id = 0
        self.folder = None
        if not USE_MEMFD:
            sweep_dead_sessions()
            self.folder = tempfile.mkdtemp(prefix=f"{_SESSION_PREFIX}{os.getpid()}-")

    def allocate(self, size, description):
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
        return segment

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
