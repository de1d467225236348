"""The wire between the driver and its workers: framing, and one table of every message either side sends.

Mirrors Ray's gRPC services (`src/ray/protobuf/*.proto`), where every request and reply is a named message. Here
a message is a named record (a namedtuple), pickled and framed as `multiprocessing.connection` does (a 4-byte
big-endian length, then the pickle): a few lines, so that a worker starts without importing `multiprocessing`.
"""
import collections
import pickle
import select
import struct

_LENGTH = struct.Struct("!i")
RECEIVE_CHUNK = 64 * 1024  # bytes asked for per read


def _record(name, fields):
    return collections.namedtuple(name, fields, module=__name__)


# ---- THE TABLE: every message, by who sends it --------------------------------------------------------------
# Where a value is (inside messages, and in the driver's object table):
Inline = _record("Inline", "pickle buffers")  # a small value, carried inside the message itself
Sealed = _record("Sealed", "segment_id layout")  # a writer filled and sealed this segment (the driver allocated it)
InSegment = _record("InSegment", "path size layout")  # where a reader maps a stored value
ByRef = _record("ByRef", "object_id")  # a task argument passed by reference: the task receives the value

# driver -> worker (a function or class travels as its pickle the first time a worker needs it, else None)
Setup = _record("Setup", "sys_path cwd driver_pid job_id node_id namespace")  # first: become like the driver
RunTask = _record("RunTask", "task_id name function_id function args kwargs num_returns gpu_ids resources "
                             "runtime_env")
StartActor = _record("StartActor", "task_id actor_id qualname cls args kwargs gpu_ids resources max_concurrency "
                                   "is_async name namespace runtime_env concurrency_groups")  # build the instance, in a dedicated worker
CallActor = _record("CallActor", "task_id name method args kwargs num_returns concurrency_group")
Reply = _record("Reply", "request_id answer")  # answer: one of the next seven
CancelTask = _record("CancelTask", "task_id")  # then SIGUSR1: interrupts the task only if it is still this one
CancelCall = _record("CancelCall", "task_id")  # an actor call: skipped if not started, else is_canceled()
Exit = _record("Exit", "")

# answers inside a Reply
Values = _record("Values", "locations")  # get: where each value is (Inline or InSegment)
ReadyPositions = _record("ReadyPositions", "positions")  # wait: positions of the ready refs, in order
Failed = _record("Failed", "error")  # the pickled error: the request failed, or a task it waited for did
TimedOut = _record("TimedOut", "")
Cancelled = _record("Cancelled", "")  # the waiting task itself was cancelled meanwhile
Allocated = _record("Allocated", "segment_id path")  # a segment to write a large value into
Answer = _record("Answer", "value")  # any other answer: an actor id, a handle's fields, resources, a timeline

# worker -> driver, each inside an Envelope with the ref-count news: ids it began to hold before the message,
# ids it stopped holding after it (object_ref.LocalRefCounts)
Envelope = _record("Envelope", "held message released")
Ready = _record("Ready", "")  # started: signals may be sent to it now
TaskDone = _record("TaskDone", "task_id returns error started ended")  # returns: [(Inline|Sealed, contained, size)]
Log = _record("Log", "stream text")  # lines the task printed
SubmitTask = _record("SubmitTask", "spec function")  # a nested task or actor call; function: None once sent
CreateActor = _record("CreateActor", "request_id spec cls")
Put = _record("Put", "object_id value contained size description")  # value: Inline or Sealed
Allocate = _record("Allocate", "request_id size description")  # the driver checks the store's budget first
Abandon = _record("Abandon", "segment_id")  # a write failed half-way: free that segment
Get = _record("Get", "request_id ids timeout")
Wait = _record("Wait", "request_id ids num_returns timeout")
NextItem = _record("NextItem", "request_id task_id index timeout")  # a generator's item `index`, or its end
Consumed = _record("Consumed", "request_id task_id index timeout")  # backpressure: wait till `index` items are taken
Cancel = _record("Cancel", "object_id force recursive")
KillActor = _record("KillActor", "actor_id no_restart")
GetActor = _record("GetActor", "request_id name namespace")
Query = _record("Query", "request_id what")  # cluster_resources, available_resources, nodes or timeline
PlacementGroupOp = _record("PlacementGroupOp", "request_id op args")  # create, remove, table or lookup
Exiting = _record("Exiting", "")  # an actor ends on purpose (exit_actor, __ray_terminate__): no restart
HandBack = _record("HandBack", "task_id")  # a task queued behind one that now blocks: run it elsewhere


# ---- framing ----------------------------------------------------------------------------------------------
# On the wire a message is a plain tuple (its record's number in the table, then its fields): pickle writes a
# reference to a class for every record, which would cost more than the rest of a small message.
RECORDS = [value for name, value in list(globals().items()) if isinstance(value, type) and hasattr(value, "_fields")]
NUMBER = {record: number for number, record in enumerate(RECORDS)}


def encode(message):
    """A record as a plain tuple; the message inside an Envelope and the answer inside a Reply too."""
    kind = type(message)
    if kind is Envelope or kind is Reply:
        return (NUMBER[kind], message[0], encode(message[1])) + message[2:]
    return (NUMBER[kind],) + message


def decode(data):
    kind = RECORDS[data[0]]
    if kind is Envelope or kind is Reply:
        return kind(data[1], decode(data[2]), *data[3:])
    return kind._make(data[1:])


def frame(message):
    """The bytes that carry one message."""
    data = pickle.dumps(encode(message), protocol=5)
    return _LENGTH.pack(len(data)) + data


def unframe(buffer):
    """The whole messages at the start of `buffer` (a bytearray), removed from it; a partial one stays."""
    start, messages = 0, []
    while len(buffer) - start >= 4:
        end = start + 4 + _LENGTH.unpack_from(buffer, start)[0]
        if end > len(buffer):
            break
        messages.append(decode(pickle.loads(buffer[start + 4:end])))
        start = end
    del buffer[:start]
    return messages


class Channel:
    """A worker's end of its socket: blocking send and receive of whole messages."""

    def __init__(self, sock):
        self.sock = sock
        self._received = bytearray()  # read but not yet returned: usually nothing, or the rest of a batch
        self._messages = []
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def send(self, message):
        self.sock.sendall(frame(message))

    def recv(self, before_sleep=None):
        """The next message. `before_sleep()` (a fast-path hook) may watch the pipe a moment before blocking."""
        if before_sleep is not None and not self._messages:
            before_sleep(self)
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
