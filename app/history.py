"""``UpdateHistory``: what happened to each update, derived from a manager's §4 events.

The events are the one source of truth; this is an index over them that every
debug view reads (update log, timeline, element history, race flags), built
incrementally by ``ingest`` from ``manager.events(since)``. It keeps no fact of
its own: drop it and re-ingest the events and you get it back. Qt-free.

One row per queue entry (a ``set_many`` chunk is one row of ``count`` element
sets): its first sequence number, producer, op, what it wrote (region and value,
or indices and values, or a Write's data), when it was enqueued and applied, and
the epoch at which it became visible. Sequence numbers and epochs are
session-wide: ``ingest`` adds the offsets of the manager generation it reads (the
app keeps counting across a backend switch). When the manager's ring wrapped
before events were read, ``dropped`` counts the events that were lost.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from .manager import Event

PENDING, APPLIED, VISIBLE = "pending", "applied", "visible"


@dataclass(slots=True)
class UpdateRow:
    seq: int                          # first session-wide sequence number
    count: int                        # element updates in this row (>1 for a set_many run)
    producer: str
    op: str
    t_enqueue_ns: int
    region: tuple[tuple[int, int], ...] | None = None
    value: float | None = None
    indices: np.ndarray | None = None   # (count, ndim) for set_many
    values: np.ndarray | None = None    # (count,) for set_many; a Write's data
    payload_dropped: bool = False
    applied: int = 0                  # element updates applied so far
    t_apply_ns: int | None = None     # when the last of them was applied
    epoch_visible: int | None = None

    @property
    def last_seq(self) -> int:
        return self.seq + self.count - 1

    @property
    def state(self) -> str:
        if self.epoch_visible is not None:
            return VISIBLE
        return APPLIED if self.applied >= self.count else PENDING

    def touches(self, index: tuple[int, ...]) -> bool:
        """Whether this update wrote element ``index``."""
        if self.indices is not None:
            return bool(np.any(np.all(self.indices == np.asarray(index), axis=1)))
        if self.region is None:
            return False
        return all(a <= i < b for i, (a, b) in zip(index, self.region))

    def bbox(self) -> tuple[tuple[int, int], ...] | None:
        """The box around what it wrote (the region, or around its indices)."""
        if self.indices is not None and len(self.indices):
            lo, hi = self.indices.min(axis=0), self.indices.max(axis=0)
            return tuple((int(a), int(b) + 1) for a, b in zip(lo, hi))
        return self.region

    def written_value(self, index: tuple[int, ...], before: float | None) -> float | None:
        """The value of element ``index`` after this update, given its value before."""
        f32 = np.float32
        with np.errstate(all="ignore"):
            if self.indices is not None:
                hits = np.flatnonzero(np.all(self.indices == np.asarray(index), axis=1))
                return float(self.values[hits[-1]]) if len(hits) else before
            if self.op in ("set", "fill"):
                return float(f32(self.value))
            if self.op == "write":
                if self.values is None:
                    return None
                return float(self.values[tuple(i - a for i, (a, _) in zip(index, self.region))])
            if before is None:
                return None
            if self.op == "add":
                return float(f32(before) + f32(self.value))
            if self.op == "scale":
                return float(f32(before) * f32(self.value))
        return None


@dataclass
class SyncMark:
    """A synchronization boundary: ``kind`` sync-begin, swap, visible or catch-up."""

    kind: str
    t_ns: int
    seq: int          # session-wide: the last update it covers
    epoch: int        # session-wide


@dataclass
class HistoryEntry:
    """One update's effect on one element (element history)."""

    row: UpdateRow
    before: float | None
    after: float | None


@dataclass
class Race:
    """Two updates from different producers, visible in the same epoch, that wrote
    overlapping elements and do not commute: the later one (``winner``) decided
    what the front shows there."""

    epoch: int
    winner: UpdateRow
    loser: UpdateRow
    overlap: tuple[tuple[int, int], ...]


@dataclass
class UpdateHistory:
    fill: float = 0.0
    rows: list[UpdateRow] = field(default_factory=list)
    marks: list[SyncMark] = field(default_factory=list)
    dropped: int = 0                 # events lost to a wrapped ring before they were read
    next_event: int = 0              # the manager event index to read from next
    _starts: list[int] = field(default_factory=list)    # row seqs, for bisect
    _unseen: int = 0                 # rows before this are all visible
    _applying: int = 0               # the row the last apply event touched

    def reset_reader(self) -> None:
        """A new manager generation: read its events from its first."""
        self.next_event = 0

    # -- ingestion ------------------------------------------------------------------
    def ingest(self, events: list[Event], next_index: int, seq_offset: int = 0,
               epoch_offset: int = 0) -> int:
        """Add ``events`` (from ``manager.events(self.next_event)``); returns the
        number of rows added."""
        added = 0
        if events and events[0].index > self.next_event:
            self.dropped += events[0].index - self.next_event
        for ev in events:
            kind = ev.kind
            if kind == "enqueue":
                self._add_row(ev, seq_offset)
                added += 1
            elif kind == "apply":
                seq = ev.seq + seq_offset
                rows = self.rows
                k = self._applying   # applies come in seq order: look there first, then next
                if k + 1 < len(rows) and rows[k + 1].seq <= seq:
                    k += 1
                if k < len(rows) and rows[k].seq <= seq < rows[k].seq + rows[k].count:
                    row = rows[k]
                    self._applying = k
                else:
                    k = self.row_index(seq)
                    row = None if k is None else rows[k]
                    if k is not None:
                        self._applying = k
                if row is not None:
                    row.applied += ev.count
                    row.t_apply_ns = ev.t_ns
            else:
                mark = SyncMark(kind, ev.t_ns, ev.seq + seq_offset, ev.epoch + epoch_offset)
                self.marks.append(mark)
                if kind == "visible":
                    self._mark_visible(mark.seq, mark.epoch)
        self.next_event = max(self.next_event, next_index)
        return added

    def _add_row(self, ev: Event, seq_offset: int) -> None:
        row = UpdateRow(seq=ev.seq + seq_offset, count=ev.count, producer=ev.producer, op=ev.op,
                        t_enqueue_ns=ev.t_ns, region=ev.region, value=ev.value,
                        indices=ev.indices, values=ev.values,
                        payload_dropped=ev.payload_dropped)
        if self._starts and row.seq <= self._starts[-1]:
            return   # seen already (a re-read)
        self.rows.append(row)
        self._starts.append(row.seq)

    def _mark_visible(self, seq: int, epoch: int) -> None:
        k = self._unseen
        rows = self.rows
        while k < len(rows) and rows[k].last_seq <= seq:
            if rows[k].epoch_visible is None:
                rows[k].epoch_visible = epoch
            k += 1
        self._unseen = k

    # -- queries ----------------------------------------------------------------------
    def row_of(self, seq: int) -> UpdateRow | None:
        """The row holding session-wide sequence number ``seq``."""
        k = bisect.bisect_right(self._starts, seq) - 1
        if k < 0:
            return None
        row = self.rows[k]
        return row if seq <= row.last_seq else None

    def row_index(self, seq: int) -> int | None:
        k = bisect.bisect_right(self._starts, seq) - 1
        if k < 0 or seq > self.rows[k].last_seq:
            return None
        return k

    def element_history(self, index: tuple[int, ...]) -> list[HistoryEntry]:
        """Every update that wrote element ``index``, in order, with its value before
        and after (None where it cannot be known: an event whose payload or whose
        predecessors were dropped)."""
        index = tuple(int(i) for i in index)
        value: float | None = None if self.dropped else float(np.float32(self.fill))
        out = []
        for row in self.rows:
            if row.payload_dropped and row.touches(index):
                out.append(HistoryEntry(row, value, None))
                value = None
                continue
            if not row.touches(index):
                continue
            after = row.written_value(index, value)
            out.append(HistoryEntry(row, value, after))
            value = after
        return out

    def rows_visible_at(self, epoch: int) -> list[UpdateRow]:
        return [r for r in self.rows if r.epoch_visible == epoch]

    def races(self, epoch: int) -> list[Race]:
        """Non-commuting overlaps between producers among the updates made visible at ``epoch``."""
        rows = [r for r in self.rows_visible_at(epoch) if r.bbox() is not None]
        out = []
        for j, later in enumerate(rows):
            for earlier in rows[:j]:
                if earlier.producer == later.producer:
                    continue
                overlap = _overlap(earlier, later)
                if overlap is None or _commute(earlier, later):
                    continue
                out.append(Race(epoch, later, earlier, overlap))
        return out


def _box_overlap(a, b):
    box = tuple((max(p[0], q[0]), min(p[1], q[1])) for p, q in zip(a, b))
    return box if all(lo < hi for lo, hi in box) else None


def _overlap(a: UpdateRow, b: UpdateRow):
    """The box of elements both wrote (exact for element sets), or None."""
    box = _box_overlap(a.bbox(), b.bbox())
    if box is None:
        return None
    for r, other in ((a, b), (b, a)):
        if r.indices is not None:
            hits = [tuple(int(x) for x in i) for i in r.indices if other.touches(tuple(i))]
            if not hits:
                return None
            arr = np.asarray(hits)
            lo, hi = arr.min(axis=0), arr.max(axis=0)
            return tuple((int(x), int(y) + 1) for x, y in zip(lo, hi))
    return box


def _commute(a: UpdateRow, b: UpdateRow) -> bool:
    """Whether applying ``a`` and ``b`` in either order gives the same elements."""
    if a.op == b.op and a.op in ("add", "scale"):
        return True
    constant = ("set", "fill")
    if a.op in constant and b.op in constant and a.indices is None and b.indices is None:
        return np.float32(a.value).tobytes() == np.float32(b.value).tobytes()
    return False
