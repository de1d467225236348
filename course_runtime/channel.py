"""The wire between the driver and a worker: pickled messages, each preceded by its length, over a socket pair.

Plays the part of Ray's gRPC channels between the core worker and the raylet, for one machine. The format is the one
`multiprocessing.connection` uses (a 4-byte big-endian length, then the pickle), written here in a few lines so that a
worker starts without importing `multiprocessing` (a few milliseconds of every `init()`).
"""
import pickle
import select
import struct

_LENGTH = struct.Struct("!i")


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
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def send(self, message):
        self.sock.sendall(frame(message))

    def recv(self):
        size = _LENGTH.unpack(self._read(4))[0]
        return pickle.loads(self._read(size))

    def poll(self, timeout=0.0):
        """True if a message (or the end of the pipe) is waiting, within `timeout` seconds."""
        return bool(self._poller.poll(timeout * 1000))

    def _read(self, size):
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise EOFError("the driver closed the pipe")
            got += n
        return data
