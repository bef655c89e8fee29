"""The manager contract (SPEC §3) shared by every backend, and its ordering events (§4).

A backend subclasses ``BufferManager`` and implements the abstract methods; the
shared contract test suite checks every guarantee against the reference model.
``open_manager`` (in ``app.backends``) picks the backend by name.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import ManagerClosedError
from .updates import Shape, Update

DEFAULT_MAX_PENDING = 1 << 18
DEFAULT_EVENT_CAPACITY = 1 << 16

EVENT_KINDS = ("enqueue", "apply", "sync-begin", "swap", "visible", "catch-up")
OP_NAMES = ("set", "fill", "add", "scale", "write")


class Event(NamedTuple):
    """One ordering event. ``seq..seq+count-1`` are the updates it concerns."""

    index: int      # position in the stream of all events of this manager
    t_ns: int       # time.monotonic_ns() clock
    kind: str       # one of EVENT_KINDS
    seq: int
    count: int
    epoch: int      # the epoch when it was recorded (the new epoch for swap/visible)
    producer: str   # thread name of the enqueuing thread ("" when not applicable)
    slot: int       # buffer written (apply), new front (swap/visible)
    op: str         # update type of enqueue/apply events, "" otherwise


@dataclass(frozen=True)
class ManagerStats:
    epoch: int
    last_seq: int
    applied_seq: int
    visible_seq: int
    pending: int
    max_pending: int
    paused: bool
    events_recorded: int

    @classmethod
    def read(cls, counters: object, events_recorded: int) -> ManagerStats:
        """From any object with the counters as attributes (a backend's state, a C struct)."""
        return cls(
            epoch=int(counters.epoch),
            last_seq=int(counters.last_seq),
            applied_seq=int(counters.applied_seq),
            visible_seq=int(counters.visible_seq),
            pending=int(counters.pending),
            max_pending=int(counters.max_pending),
            paused=bool(counters.paused),
            events_recorded=int(events_recorded),
        )


class BufferManager(abc.ABC):
    """An asynchronous double-buffered float32 buffer (SPEC §3).

    Producers ``enqueue`` updates from any thread; one persistent worker applies
    them to the back buffer in FIFO order; ``synchronize`` waits until everything
    queued before it is applied, then swaps, and the new front is what
    ``front()`` returns until the next synchronize.
    """

    backend: str = ""

    def __init__(self, shape: Shape, fill: float, max_pending: int) -> None:
        self.shape: Shape = tuple(shape)
        self.ndim = len(self.shape)
        self.fill = float(fill)
        self.max_pending = int(max_pending)
        self.dtype = np.dtype(np.float32)
        self._producers: dict[int, str] = {}
        self._closed = False

    # -- the contract ------------------------------------------------------------
    @abc.abstractmethod
    def enqueue(self, update: Update, block: bool = True) -> int:
        """Queue one update; returns its sequence number. Raises ValueError when invalid."""

    @abc.abstractmethod
    def enqueue_many(self, updates: Iterable[Update], block: bool = True) -> list[int]:
        """Queue several updates in one call (all validated first: all or nothing)."""

    @abc.abstractmethod
    def set_many(self, indices: object, values: object, block: bool = True) -> np.ndarray:
        """Vectorized sets, ``(n, ndim)`` ints and ``(n,)`` floats, in array order."""

    @abc.abstractmethod
    def synchronize(self, timeout: float | None = None) -> int:
        """Wait until everything queued before the call is visible; returns the epoch."""

    @abc.abstractmethod
    def front(self) -> np.ndarray:
        """The front buffer, read-only, valid until the next synchronize()."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop and join the worker and free the buffers. Idempotent."""

    @abc.abstractmethod
    def stats(self) -> ManagerStats:
        """Counters: epoch, sequence numbers, queue depth."""

    @abc.abstractmethod
    def events(self, since: int = 0) -> tuple[list[Event], int]:
        """Ordering events with index >= since, and the index to ask for next."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Stop applying updates (syncs of already applied work still complete)."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Apply updates again."""

    @abc.abstractmethod
    def step(self, n: int = 1) -> None:
        """While paused: let the worker apply exactly n more element updates."""

    # -- shared conveniences ------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def epoch(self) -> int:
        return self.stats().epoch

    def _check_open(self) -> None:
        if self._closed:
            raise ManagerClosedError(f"the {self.backend} manager is closed")

    def _producer_id(self) -> int:
        """The calling thread's id, remembering its name for the event log."""
        tid = threading.get_ident()
        if tid not in self._producers:
            self._producers[tid] = threading.current_thread().name
        return tid

    def producer_name(self, producer: int) -> str:
        return self._producers.get(producer, "" if producer == 0 else f"thread-{producer}")

    def __enter__(self) -> BufferManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.backend} shape={self.shape} {state}>"


def check_open_args(shape: object, fill: object, max_pending: object) -> tuple[Shape, float, int]:
    """Shared validation of ``open_manager`` arguments (ValueError naming the problem)."""
    from .updates import _as_int, as_value, validate_shape

    shp = validate_shape(shape)
    f = as_value(fill, "fill")
    mp = _as_int(max_pending, "max_pending")
    if mp < 1:
        raise ValueError(f"max_pending must be >= 1, got {mp}")
    return shp, f, mp


def check_timeout(timeout: object) -> float | None:
    """A ``synchronize`` timeout: None (wait forever) or seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a number of seconds or None, got {timeout!r}")
    t = float(timeout)
    if not t >= 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
    return t
