"""Recording a live session as a trace (SPEC §5, §7 "Traces"), from the app's history.

A recording keeps no record of its own: when it starts it takes a keyframe — the
front visible at that moment, its epoch and the last seq it shows — and when it is
written it reads everything else from the session's ``app.history.UpdateHistory``
(the index over the manager's §4 events that the app's ``HistoryFeed`` keeps):

1. a ``write`` of the whole buffer with the keyframe (seq: the last seq it shows,
   producer ``keyframe``), then a ``sync`` — trace epoch 1 is the start epoch;
2. every update row made visible after the start epoch, in seq order (a
   ``set_many`` chunk as one ``set_many`` line: its elements take the seqs from
   its seq on), with its seq, producer and enqueue time (``t``, seconds on the
   monotonic clock);
3. a ``sync`` line at each epoch boundary (each ``visible`` mark), with its time.

So trace epoch ``k`` replays to the session's front at epoch ``start_epoch + k - 1``,
bit for bit. A recording is only written when it is faithful: a row whose payload
the event ring let go (or a backend that records none), events lost to a wrapped
ring, or a missing synchronization makes
``write`` raise ``RecordingError`` saying which, and nothing is written. Files are
written atomically (``TraceWriter``). Qt-free.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .history import SyncMark, UpdateHistory, UpdateRow
from .trace import SyncMarker, TraceRecord, TraceWriter
from .trace_codec import SetMany
from .updates import Add, Fill, Scale, Set, Update, Write

KEYFRAME_PRODUCER = "keyframe"
_OPS = {"fill": Fill, "add": Add, "scale": Scale}


class RecordingError(ValueError):
    """The history cannot give a faithful recording (the message says why)."""


@dataclass(frozen=True)
class RecordingSummary:
    path: str
    epochs: int          # sync lines written (the keyframe's included)
    updates: int         # updates written (the keyframe's included; a set_many line counts n)
    first_epoch: int     # session-wide epoch of trace epoch 1
    last_epoch: int      # session-wide epoch of the last sync line


class Recording:
    """A recording in progress. ``Recording.start(manager, history)`` takes the keyframe;
    ``write(path)`` writes what the history holds since then."""

    def __init__(self, history: UpdateHistory, keyframe: np.ndarray, start_epoch: int,
                 start_seq: int, fill: float = 0.0) -> None:
        self.history = history
        self.keyframe = keyframe
        self.shape = tuple(keyframe.shape)
        self.fill = float(fill)
        self.start_epoch = int(start_epoch)
        self.start_seq = int(start_seq)
        self.dropped_at_start = history.dropped

    @classmethod
    def start(cls, manager, history: UpdateHistory, seq_offset: int = 0, epoch_offset: int = 0,
              attempts: int = 50) -> Recording:
        """Take the keyframe from ``manager``: its front with the epoch and visible seq
        it belongs to (read again when a swap slipped in between). ``seq_offset`` and
        ``epoch_offset`` map the manager's numbers to the history's session-wide ones."""
        for _ in range(max(1, attempts)):
            before = manager.stats()
            front = np.array(manager.front(), dtype=np.float32, copy=True)
            after = manager.stats()
            if before.epoch == after.epoch:
                return cls(history, front, before.epoch + epoch_offset,
                           before.visible_seq + seq_offset, float(getattr(manager, "fill", 0.0)))
        raise RecordingError("cannot take the keyframe: the front swapped on every attempt to read it")

    # -- what the history says ---------------------------------------------------------
    def marks(self) -> list[SyncMark]:
        """The visible marks after the start epoch, in epoch order."""
        seen: dict[int, SyncMark] = {}
        for m in self.history.marks:
            if m.kind == "visible" and m.epoch > self.start_epoch:
                seen.setdefault(m.epoch, m)
        return [seen[e] for e in sorted(seen)]

    def rows(self, last_seq: int) -> list[UpdateRow]:
        """The update rows after the keyframe up to ``last_seq``, in seq order."""
        rows = self.history.rows
        k = bisect.bisect_right(rows, self.start_seq, key=lambda r: r.seq)
        out = []
        for row in rows[k:]:
            if row.seq > last_seq:
                break
            out.append(row)
        return out

    def problems(self) -> list[str]:
        """Why the history cannot give a faithful recording (empty when it can)."""
        out = []
        lost = self.history.dropped - self.dropped_at_start
        if lost:
            out.append(f"{lost} ordering events were dropped from the event ring while recording "
                       "(the app read them too late)")
        marks = self.marks()
        if not marks:
            return out
        epochs = [m.epoch for m in marks]
        if epochs != list(range(self.start_epoch + 1, epochs[-1] + 1)):
            missing = sorted(set(range(self.start_epoch + 1, epochs[-1] + 1)) - set(epochs))
            out.append(f"the synchronization of epoch {missing[0]} is missing from the history")
        for row in self.rows(marks[-1].seq):
            if row.payload_dropped:
                out.append(f"update seq {row.seq} ({row.op} by {row.producer or '?'}) lost its "
                           "payload from the event ring, so what it wrote is unknown")
                break
            if row.region is None and row.indices is None:
                out.append(f"the backend did not record what update seq {row.seq} ({row.op}) "
                           "wrote (no payload in its events)")
                break
        return out

    def records(self) -> Iterator[TraceRecord]:
        """The recording as trace records (the keyframe first). Raises RecordingError
        when it would not be faithful."""
        problems = self.problems()
        if problems:
            raise RecordingError("not a faithful recording: " + "; ".join(problems))
        full = tuple((0, n) for n in self.shape)
        yield TraceRecord(Write(full, self.keyframe), 0, seq=self.start_seq if self.start_seq >= 0 else None,
                          producer=KEYFRAME_PRODUCER)
        yield TraceRecord(SyncMarker(), 0)
        marks = self.marks()
        if not marks:
            return
        rows = iter(self.rows(marks[-1].seq))
        row = next(rows, None)
        for mark in marks:
            while row is not None and row.last_seq <= mark.seq:
                yield from _row_records(row, self.shape)
                row = next(rows, None)
            yield TraceRecord(SyncMarker(), 0, t=mark.t_ns / 1e9)

    def write(self, path) -> RecordingSummary:
        """Write the recording to ``path`` atomically; RecordingError (nothing written)
        when it would not be faithful."""
        epochs = updates = 0
        records = self.records()
        first = next(records)           # the faithfulness check runs here, before any file
        with TraceWriter(path, self.shape, fill=self.fill) as w:
            for rec in (first, *records):
                extra = {"seq": rec.seq, "producer": rec.producer, "t": rec.t}
                if isinstance(rec.item, SyncMarker):
                    w.sync(t=rec.t)
                    epochs += 1
                else:
                    w.add(rec.item, **extra)
                    updates += rec.item.count if isinstance(rec.item, SetMany) else 1
        return RecordingSummary(str(path), epochs, updates, self.start_epoch,
                                self.start_epoch + epochs - 1)


def _row_records(row: UpdateRow, row_shape: tuple[int, ...]) -> Iterator[TraceRecord]:
    t = row.t_enqueue_ns / 1e9 if row.t_enqueue_ns else None
    producer = row.producer or None
    if row.indices is not None:
        idx = np.asarray(row.indices, dtype=np.int64).reshape(row.count, -1)
        flat = np.ravel_multi_index(tuple(idx.T), row_shape)
        yield TraceRecord(SetMany(flat, np.asarray(row.values, dtype=np.float32)), 0, seq=row.seq,
                          producer=producer, t=t)
        return
    yield TraceRecord(_row_update(row), 0, seq=row.seq, producer=producer, t=t)


def _row_update(row: UpdateRow) -> Update:
    if row.op == "set":
        return Set(tuple(a for a, _ in row.region), float(row.value))
    if row.op == "write":
        return Write(row.region, np.asarray(row.values, dtype=np.float32))
    return _OPS[row.op](row.region, float(row.value))


__all__ = ["Recording", "RecordingError", "RecordingSummary"]
