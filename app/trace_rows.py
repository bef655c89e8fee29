"""Trace records as the player needs them (``app.keyframes``): applied to the reference
model a batch at a time, and turned into the history's ``enqueue`` events.

A record from ``TraceReader.batches`` is a single update, a sync, a ``SetMany``
(one ``set_many`` line) or a ``SetRun`` (consecutive ``set`` lines read together);
the history gets one row per element of either, as for ``set`` lines, so the player
lists a trace the same way whichever way its sets were written. ``Numbering`` gives every update its seq —
the trace's when every update has one and they increase, else 1, 2, 3, … in file
order (``seq_kind`` "ordinal") — and counts the updates.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat

import numpy as np

from .manager import Event
from .reference import ReferenceModel
from .trace import TraceRecord
from .trace_codec import SetMany, SetRun
from .updates import Set, Write


def scatter(model: ReferenceModel, flat: np.ndarray, values: np.ndarray) -> None:
    """``values`` set at flat offsets ``flat`` of the back buffer, in order (the last
    write to a repeated element wins)."""
    if len(flat) == 1:
        model.back.reshape(-1)[flat[0]] = values[0]
        return
    rev_unique, first_in_rev = np.unique(flat[::-1], return_index=True)
    model.back.reshape(-1)[rev_unique] = values[::-1][first_in_rev]


def element_seqs(rec: TraceRecord) -> np.ndarray | None:
    """The trace seqs of a batch's elements (None where the trace gives none)."""
    item = rec.item
    if isinstance(item, SetRun):
        return item.seqs
    if rec.seq is None:
        return None
    return np.arange(rec.seq, rec.seq + item.count, dtype=np.uint64)


class Numbering:
    """Seqs as the trace gives them while they are present and increasing."""

    def __init__(self) -> None:
        self.ordinal = 0          # updates so far
        self.last_seq = -1        # the last trace seq (while ok)
        self.first_seq: int | None = None
        self.ok = True

    def single(self, seq: int | None) -> int:
        """One update; returns its number (trace seq while ok, else ordinal)."""
        self.ordinal += 1
        if self.ok and (seq is None or seq <= self.last_seq):
            self.ok = False
        if self.ok:
            self.last_seq = seq
            if self.ordinal == 1:
                self.first_seq = seq
            return seq
        return self.ordinal

    def batch(self, rec: TraceRecord) -> np.ndarray:
        """A batch's updates; returns their numbers (int64)."""
        n = rec.item.count
        first = self.ordinal + 1
        self.ordinal += n
        seqs = element_seqs(rec) if self.ok else None
        if seqs is not None and (int(seqs[0]) <= self.last_seq
                                 or (n > 1 and not bool(np.all(seqs[1:] > seqs[:-1])))):
            seqs = None
        if seqs is None:
            self.ok = False
            return np.arange(first, first + n, dtype=np.int64)
        if first == 1:
            self.first_seq = int(seqs[0])
        self.last_seq = int(seqs[-1])
        return seqs.astype(np.int64)


def enqueue_event(index: int, rec: TraceRecord, seq: int, epoch: int) -> Event:
    """A history ``enqueue`` event for one trace update (what ``UpdateHistory`` reads)."""
    u = rec.item
    t_ns = int(rec.t * 1e9) if rec.t is not None else 0
    producer = rec.producer or ""
    if isinstance(u, Set):
        region = tuple((int(i), int(i) + 1) for i in u.index)
        return Event(index, t_ns, "enqueue", seq, 1, epoch, producer, 0, "set", region, float(u.value))
    if isinstance(u, Write):
        data = np.asarray(u.data, dtype=np.float32)
        return Event(index, t_ns, "enqueue", seq, 1, epoch, producer, 0, "write", tuple(u.region),
                     None, None, data)
    return Event(index, t_ns, "enqueue", seq, 1, epoch, producer, 0, u.op, tuple(u.region),
                 float(u.value))


def batch_events(index: int, rec: TraceRecord, seqs: np.ndarray, epoch: int, shape,
                 limit: int) -> Iterator[Event]:
    """The history events of a batch, one per element as for ``set`` lines (at most
    ``limit``), numbered from ``index``."""
    item = rec.item
    n = min(limit, item.count)
    if n <= 0:
        return
    boxes = zip(*[[(i, i + 1) for i in c[:n].tolist()]
                  for c in np.unravel_index(item.flat[:n], shape)])
    if isinstance(item, SetRun):
        vals = item.exact[:n].tolist()
        t_ns = (item.ts[:n] * 1e9).astype(np.int64).tolist()
        producers = item.producers
    else:
        with np.errstate(invalid="ignore"):   # a signalling NaN reads as a NaN
            vals = item.values[:n].astype(np.float64).tolist()
        t_ns = repeat(int(rec.t * 1e9) if rec.t is not None else 0)
        producers = repeat(rec.producer or "")
    for k, (box, v, t, sq, p) in enumerate(zip(boxes, vals, t_ns, seqs[:n].tolist(), producers)):
        yield Event(index + k, t, "enqueue", sq, 1, epoch, p, 0, "set", box, v)


def is_batch(item: object) -> bool:
    return isinstance(item, SetMany)


__all__ = ["scatter", "Numbering", "enqueue_event", "batch_events", "element_seqs", "is_batch"]
