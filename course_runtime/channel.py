"""The wire between the driver and a worker: pickled messages, each preceded by its length, over a socket pair.

Plays the part of Ray's gRPC channels between the core worker and the raylet, for one machine. The format is the one
`multiprocessing.connection` uses (a 4-byte big-endian length, then the pickle), written here in a few lines so that a
worker starts without importing `multiprocessing` (a few milliseconds of every `init()`).
"""
import os
import pickle
import select
import struct
import time

_LENGTH = struct.Struct("!i")
RECEIVE_CHUNK = 64 * 1024  # bytes asked for per read
_yield_cpu = getattr(os, "sched_yield", lambda: None)  # not every Unix Python has it


def frame(message):
    """The bytes that carry one message."""
    data = pickle.dumps(message, protocol=5)
    return _LENGTH.pack(len(data)) + data


def unframe(buffer):
    """The whole messages at the start of `buffer` (a bytearray), removed from it; a partial one stays."""
    start, messages = 0, []
    while len(buffer) - start >= 4:
        end = start + 4 + _LENGTH.unpack_from(buffer, start)[0]
        if end > len(buffer):
            break
        messages.append(pickle.loads(buffer[start + 4:end]))
        start = end
    del buffer[:start]
    return messages


class Channel:
    """A worker's end: blocking send and receive of whole messages."""

    def __init__(self, sock):
        self.sock = sock
        self._received = bytearray()  # read but not yet returned: usually nothing, or the rest of a batch
        self._messages = []
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def send(self, message):
        self.sock.sendall(frame(message))

    def recv(self, spin_s=0.0):
        """The next message. With `spin_s`, watch the pipe for that long before going to sleep: a process woken
        from sleep runs again only tens of microseconds later (more in a virtual machine), which is most of the
        cost of a small task when the driver sends the next one right away."""
        if spin_s and not self._messages:
            deadline = time.perf_counter() + spin_s
            while not self._poller.poll(0) and time.perf_counter() < deadline:
                _yield_cpu()  # anything else runnable on this core goes first
        while not self._messages:  # one read usually brings a whole message, often several
            chunk = self.sock.recv(RECEIVE_CHUNK)
            if not chunk:
                raise EOFError("the driver closed the pipe")
            self._received += chunk
            self._messages = unframe(self._received)
            self._messages.reverse()  # so pop() takes the oldest
        return self._messages.pop()

    def poll(self, timeout=0.0):
        """True if a message (or the end of the pipe) is waiting, within `timeout` seconds."""
        return bool(self._messages) or bool(self._poller.poll(timeout * 1000))
