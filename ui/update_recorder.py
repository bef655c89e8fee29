"""``UpdateRecorder``: a manager proxy that remembers what each sequence number wrote.

The manager's ordering events (SPEC §4) say which seq was applied when, but not
where it wrote. The viewer needs "which update last wrote element i" for its hover
readout (and the element history), so every producer the app starts enqueues
through this proxy, which records ``(seq, op, where, producer)`` after each
successful enqueue. It is bounded (the oldest entries are forgotten first) and
Qt-free; everything else is forwarded to the wrapped manager unchanged.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from app.manager import BufferManager
from app.updates import Set, Update


class Record(NamedTuple):
    """One recorded write: an update (``flat`` None) or a set_many batch."""

    seq: int                 # first sequence number
    last_seq: int            # last sequence number (== seq for single updates)
    op: str
    region: tuple[tuple[int, int], ...] | None   # box written (single updates)
    flat: np.ndarray | None  # flat element indices of a set_many batch
    seqs: np.ndarray | None  # their sequence numbers
    producer: str


class Writer(NamedTuple):
    """The answer to "who wrote element i": its seq, update type and producer."""

    seq: int
    op: str
    producer: str


class UpdateRecorder:
    """Wraps ``manager``; records the last ``capacity`` element writes (``max_records`` calls)."""

    def __init__(
        self, manager: BufferManager, capacity: int = 1 << 20, max_records: int = 20000
    ) -> None:
        self._m = manager
        self._capacity = int(capacity)
        self._max_records = int(max_records)
        self._lock = threading.Lock()
        self._log: deque[Record] = deque()
        self._elements = 0
        self.forgotten_seq = 0   # writes at or below this seq may have been forgotten

    @property
    def manager(self) -> BufferManager:
        return self._m

    def __getattr__(self, name: str):
        return getattr(self._m, name)

    def __repr__(self) -> str:
        return f"<UpdateRecorder of {self._m!r}>"

    # -- the recorded calls ------------------------------------------------------------
    def enqueue(self, update: Update, block: bool = True) -> int:
        seq = self._m.enqueue(update, block)
        self._add([self._entry(seq, update)])
        return seq

    def enqueue_many(self, updates: Iterable[Update], block: bool = True) -> list[int]:
        ups = list(updates)
        seqs = self._m.enqueue_many(ups, block)
        self._add([self._entry(s, u) for s, u in zip(seqs, ups)])
        return seqs

    def set_many(self, indices: object, values: object, block: bool = True) -> np.ndarray:
        seqs = self._m.set_many(indices, values, block)
        n = len(seqs)
        if n:
            idx = np.asarray(indices, dtype=np.int64).reshape(n, -1)
            flat = np.ravel_multi_index(tuple(idx.T), self._m.shape)
            self._add([Record(int(seqs[0]), int(seqs[-1]), "set", None, flat,
                              np.asarray(seqs, dtype=np.int64), _producer())])
        return seqs

    # -- queries -----------------------------------------------------------------------
    def last_writer(self, index: tuple[int, ...], upto_seq: int | None = None) -> Writer | None:
        """The latest recorded write of element ``index`` with seq <= ``upto_seq``."""
        hist = self.history(index, upto_seq, limit=1)
        return hist[0] if hist else None

    def history(
        self, index: tuple[int, ...], upto_seq: int | None = None, limit: int = 50
    ) -> list[Writer]:
        """Recorded writes of element ``index``, newest first (at most ``limit``)."""
        index = tuple(int(i) for i in index)
        flat_i = int(np.ravel_multi_index(index, self._m.shape))
        top = np.iinfo(np.int64).max if upto_seq is None else int(upto_seq)
        with self._lock:
            log = list(self._log)
        found: list[Writer] = []
        for w in log:
            if w.seq > top:
                continue
            if w.flat is None:
                if all(a <= i < b for i, (a, b) in zip(index, w.region)):
                    found.append(Writer(w.seq, w.op, w.producer))
            else:
                hits = np.flatnonzero(w.flat == flat_i)
                for h in hits:
                    s = int(w.seqs[h])
                    if s <= top:
                        found.append(Writer(s, w.op, w.producer))
        found.sort(key=lambda w: w.seq, reverse=True)
        return found[:limit]

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _entry(seq: int, u: Update) -> Record:
        if type(u) is Set:
            region = tuple((int(i), int(i) + 1) for i in u.index)
        else:
            region = tuple((int(a), int(b)) for a, b in u.region)
        return Record(int(seq), int(seq), u.op, region, None, None, _producer())

    def _add(self, entries: list[Record]) -> None:
        with self._lock:
            for e in entries:
                self._log.append(e)
                self._elements += 1 if e.flat is None else len(e.flat)
            while len(self._log) > 1 and (
                self._elements > self._capacity or len(self._log) > self._max_records
            ):
                old = self._log.popleft()
                self._elements -= 1 if old.flat is None else len(old.flat)
                self.forgotten_seq = max(self.forgotten_seq, old.last_seq)


def _producer() -> str:
    return threading.current_thread().name
