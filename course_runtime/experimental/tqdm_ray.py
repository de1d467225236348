"""Progress bars from tasks and actors, drawn in the driver: `from ray.experimental.tqdm_ray import tqdm`.

Mirrors `ray/experimental/tqdm_ray.py`. A bar in a task sends its state to the driver now and then (a Log message
on the "progress" stream); the driver keeps one line per bar and redraws it in place: in Jupyter, one output per
bar, updated; in a terminal, the bars on one line of stderr, rewritten with a carriage return.
"""
import json
import os
import sys
import time
import uuid

from .. import session
from ..protocol import Log
from ..worker_pool import WorkerOutput

FLUSH_INTERVAL_S = 0.5  # how often a task's bar sends its state (Ray's default is 1 s); the last one always goes


class tqdm:
    """The part of tqdm.tqdm that Ray's tqdm_ray has: iterate, update(n), set_description, close, n, total."""

    def __init__(self, iterable=None, desc=None, total=None, unit=None, position=None, flush_interval_s=None):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except (TypeError, AttributeError):
                total = None
        if session.driver() is None and session.in_task() is None:
            raise RuntimeError("tqdm_ray draws its bars in the driver of a running session: call ray.init() first.")
        self._iterable, self.desc, self.total, self.unit = iterable, desc or "", total, unit or "it"
        self.n, self.position, self.closed = 0, position or 0, False
        self._uuid, self._pid, self._started = uuid.uuid4().hex, os.getpid(), time.time()
        self._every = FLUSH_INTERVAL_S if flush_interval_s is None else flush_interval_s
        self._last_sent = 0.0

    def update(self, n=1):
        self.n += n
        self._send()

    def set_description(self, desc):
        self.desc = desc
        self._send()

    def refresh(self):
        self._send(force=True)

    def close(self):
        if not self.closed:
            self.closed = True
            self._send(force=True)

    def __iter__(self):
        if self._iterable is None:
            raise ValueError("No iterable provided")
        for item in self._iterable:
            yield item
            self.update(1)
        self.close()

    def _send(self, force=False):
        now = time.time()
        if not force and now - self._last_sent < self._every:
            return
        self._last_sent = now
        state = {"uuid": self._uuid, "desc": self.desc, "n": self.n, "total": self.total, "unit": self.unit,
                 "pos": self.position, "pid": self._pid, "started": self._started, "closed": self.closed}
        context = session.in_task()
        if context is not None:
            context.send(Log("progress", json.dumps(state)))
        else:
            _bars.show(json.dumps(state))


def render(state, now=None):
    """One bar as text, e.g. 'squares:  40%|████        | 4/10 [00:02<00:03, 2.0it/s]'."""
    elapsed = max((now or time.time()) - state["started"], 1e-9)
    n, total, unit = state["n"], state["total"], state["unit"]
    rate = n / elapsed
    desc = f"{state['desc']}: " if state["desc"] else ""
    if not total:
        return f"{desc}{n}{unit} [{_clock(elapsed)}, {rate:.1f}{unit}/s]"
    done = min(n / total, 1.0)
    bar = "█" * int(done * 20) + " " * (20 - int(done * 20))
    left = (total - n) / rate if rate > 0 else 0
    return f"{desc}{done * 100:3.0f}%|{bar}| {n}/{total} [{_clock(elapsed)}<{_clock(left)}, {rate:.1f}{unit}/s]"


def _clock(seconds):
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


class _Bars:
    """The driver's bars, by uuid, each drawn in place."""

    def __init__(self):
        self.states, self.handles = {}, {}

    def show(self, text):
        state = json.loads(text)
        self.states[state["uuid"]] = state
        line = render(state)
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is not None and getattr(shell, "kernel", None) is not None:  # Jupyter: one output per bar
            from IPython.display import display
            handle = self.handles.get(state["uuid"])
            if handle is None:
                self.handles[state["uuid"]] = display({"text/plain": line}, raw=True, display_id=True)
            else:
                handle.update({"text/plain": line}, raw=True)
        else:  # a terminal: every open bar on one line, rewritten
            open_bars = [render(s) for s in self.states.values() if not s["closed"]]
            sys.stderr.write("\r" + " | ".join(open_bars or [line]) + ("\n" if not open_bars else ""))
            sys.stderr.flush()
        if state["closed"]:
            self.states.pop(state["uuid"], None)
            self.handles.pop(state["uuid"], None)


_bars = _Bars()
WorkerOutput.progress = staticmethod(_bars.show)  # the driver draws what tasks' bars send
