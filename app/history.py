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

from .history_rows import (  # noqa: F401  (re-exported)
    APPLIED,
    PENDING,
    VISIBLE,
    ElementTrace,
    HistoryEntry,
    SyncMark,
    UpdateRow,
)
from .manager import Event
from .races import Race, _commute, find_races  # noqa: F401  (Race, _commute: re-exported)


@dataclass
class UpdateHistory:
    fill: float = 0.0
    rows: list[UpdateRow] = field(default_factory=list)
    marks: list[SyncMark] = field(default_factory=list)
    dropped: int = 0                 # events lost to a wrapped ring before they were read
    forgotten: int = 0               # element updates let go of by ``tail`` (memory bound)
    payload_units: int = 0           # elements of payload (indices, values) the rows hold
    _let_go: int = 0                 # rows before this had their payload let go of
    next_event: int = 0              # the manager event index to read from next
    _starts: list[int] = field(default_factory=list)    # row seqs, for bisect
    _unseen: int = 0                 # rows before this are all visible
    _applying: int = 0               # the row the last apply event touched
    _epoch_rows: dict = field(default_factory=dict)      # epoch -> (first row, stop row)
    _epoch_list: list = field(default_factory=list)      # its keys, ascending
    _race_cache: dict = field(default_factory=dict)      # epoch -> (row span, races, by seq)
    _nboxes: int = 0                 # rows whose boxes are in _boxes_np
    _boxes_np: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 2), np.int64))
    _detailed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

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
        if row.values is not None:
            self.payload_units += int(row.values.size)

    def _mark_visible(self, seq: int, epoch: int) -> None:
        k = self._unseen
        rows = self.rows
        first = None
        while k < len(rows) and rows[k].last_seq <= seq:
            if rows[k].epoch_visible is None:
                rows[k].epoch_visible = epoch
                first = k if first is None else first
            k += 1
        self._unseen = k
        if first is not None:
            if epoch not in self._epoch_rows:
                self._epoch_list.append(epoch)
            lo, hi = self._epoch_rows.get(epoch, (first, k))
            self._epoch_rows[epoch] = (min(lo, first), max(hi, k))

    # -- bounds (a session that runs for hours) -----------------------------------------
    def let_go_payloads(self, budget: int) -> int:
        """Let go of the oldest rows' payloads (a ``set_many``'s indices and values, a
        Write's data) until at most ``budget`` elements of payload are held; returns
        the rows let go of. Such a row keeps its box (``region``) and says so
        (``payload_dropped``): the element history lists it as "may have written"."""
        k, rows, done = self._let_go, self.rows, 0
        while self.payload_units > budget and k < len(rows):
            row = rows[k]
            if row.values is not None:
                if row.indices is not None:
                    row.region = row.bbox()
                self.payload_units -= int(row.values.size)
                row.indices = row.values = None
                row.payload_dropped = True
                if k < self._nboxes:
                    self._detailed[k] = False
                done += 1
            k += 1
        self._let_go = k
        return done

    def tail(self, keep_rows: int, keep_marks: int) -> UpdateHistory:
        """A new history with only the newest ``keep_rows`` visible-or-newer rows and
        ``keep_marks`` marks (the rest is let go of and counted in ``forgotten``): what
        the app keeps when a session outgrows its bounds. Rows not yet visible are
        always kept."""
        n = max(0, min(len(self.rows) - keep_rows, self._unseen))
        h = UpdateHistory(fill=self.fill, dropped=self.dropped, next_event=self.next_event)
        h.forgotten = self.forgotten + sum(r.count for r in self.rows[:n])
        h.rows = self.rows[n:]
        h._starts = self._starts[n:]
        h._unseen = self._unseen - n
        h._applying = max(0, self._applying - n)
        h._let_go = max(0, self._let_go - n)
        h.payload_units = sum(int(r.values.size) for r in h.rows if r.values is not None)
        for e in self._epoch_list:
            lo, hi = self._epoch_rows[e]
            if hi > n:
                h._epoch_list.append(e)
                h._epoch_rows[e] = (max(0, lo - n), hi - n)
        first = h.rows[0].seq if h.rows else None
        marks = self.marks[-keep_marks:] if keep_marks > 0 else []
        h.marks = [m for m in marks if first is None or m.seq >= first - 1] \
            if n else list(marks)
        return h

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

    def element_history(self, index: tuple[int, ...], upto_seq: int | None = None
                        ) -> list[HistoryEntry]:
        """Every update that wrote element ``index``, in order (up to ``upto_seq``),
        with its value before and after (None where it cannot be known: an event
        whose payload or whose predecessors were dropped). A row whose event does
        not say where it wrote (``not row.detailed``) may have written the element:
        it is listed with ``after`` None and the values after it are unknown."""
        index = tuple(int(i) for i in index)
        n = len(self.rows) if upto_seq is None else bisect.bisect_right(self._starts, upto_seq)
        value = None if self.dropped or self.forgotten else float(np.float32(self.fill))
        return self._scan(index, 0, n, value)[0]

    def follow(self, index: tuple[int, ...]) -> ElementTrace:
        """An ``ElementTrace`` of element ``index``: its history so far, which
        ``extend`` brings up to date reading only the rows added since."""
        trace = ElementTrace(tuple(int(i) for i in index), dropped=self.dropped,
                             forgotten=self.forgotten)
        trace.value = None if self.dropped or self.forgotten else float(np.float32(self.fill))
        self.extend(trace)
        return trace

    def extend(self, trace: ElementTrace) -> int:
        """Add the entries of the rows added since ``trace`` was last brought up to
        date; the number added. Starts over when events were dropped meanwhile."""
        if trace.dropped != self.dropped or trace.forgotten != self.forgotten:
            fresh = self.follow(trace.index)
            trace.entries, trace.next_row = fresh.entries, fresh.next_row
            trace.value, trace.dropped = fresh.value, fresh.dropped
            trace.forgotten = fresh.forgotten
            return len(trace.entries)
        n = len(self.rows)
        new, trace.value = self._scan(trace.index, trace.next_row, n, trace.value)
        trace.entries.extend(new)
        trace.next_row = n
        return len(new)

    def _scan(self, index, start: int, stop: int, value):
        out = []
        for k in self._candidates(index, start, stop):
            row = self.rows[k]
            if not row.detailed:
                if row.region is not None and not row.touches(index):
                    continue       # a Write/Fill whose data was let go, elsewhere
                out.append(HistoryEntry(row, value, None))
                value = None
                continue
            if not row.touches(index):
                continue
            after = row.written_value(index, value)
            out.append(HistoryEntry(row, value, after))
            value = after
        return out, value

    def last_writer(self, index: tuple[int, ...], epoch: int | None = None,
                    upto_seq: int | None = None) -> UpdateRow | None:
        """The newest row visible at ``epoch`` (any epoch when None) that wrote element
        ``index`` — or that may have: a row without details (check ``row.detailed``).
        With ``upto_seq``, the newest row up to that seq instead, visible or not (the
        back buffer right after update ``upto_seq``: a trace scrubbed by seq).
        Scans backwards from the newest row, so it is quick for the hover readout."""
        index = tuple(int(i) for i in index)
        stop = len(self.rows) if upto_seq is None else bisect.bisect_right(self._starts, upto_seq)
        for k in self._candidates(index, 0, stop)[::-1]:
            row = self.rows[int(k)]
            ev = row.epoch_visible
            if upto_seq is not None:
                if row.last_seq > upto_seq:
                    continue
            elif ev is None or (epoch is not None and ev > epoch):
                continue
            if not row.detailed:
                if row.region is not None and not row.touches(index):
                    continue
                return row
            if row.touches(index):
                return row
        return None

    def _candidates(self, index: tuple[int, ...], start: int, stop: int) -> np.ndarray:
        """Row numbers in [start, stop) that may have written ``index`` (their box
        holds it, or they say nothing of where they wrote), in order: numpy over
        the rows' boxes."""
        boxes = self._box_array(stop)
        if boxes is None or start >= stop:
            return np.arange(0)
        idx = np.asarray(index, dtype=np.int64)
        nd = min(len(idx), boxes.shape[1])
        b = boxes[start:stop, :nd]
        inside = np.all((b[:, :, 0] <= idx[:nd]) & (idx[:nd] < b[:, :, 1]), axis=1)
        return start + np.flatnonzero(inside | ~self._detailed[start:stop])

    def _box_array(self, n: int) -> np.ndarray | None:
        """(rows, ndim, 2) int64 boxes of (at least) the first ``n`` rows, grown
        incrementally with doubling capacity (an undetailed row's box covers
        everything); None when there are no rows."""
        have = self._nboxes
        if n > have:
            if have:
                ndim = self._boxes_np.shape[1]
            else:
                ndim = next((len(b) for r in self.rows[:n] if (b := r.bbox()) is not None), 1)
            if n > len(self._boxes_np) or self._boxes_np.shape[1] != ndim:
                cap = max(1024, 2 * n)
                boxes = np.zeros((cap, ndim, 2), dtype=np.int64)
                det = np.zeros(cap, dtype=bool)
                if have:
                    boxes[:have], det[:have] = self._boxes_np[:have], self._detailed[:have]
                self._boxes_np, self._detailed = boxes, det
            top = np.iinfo(np.int64).max
            for j, row in enumerate(self.rows[have:n], start=have):
                b = row.bbox()
                if b is None or len(b) != ndim:
                    self._boxes_np[j, :, 0], self._boxes_np[j, :, 1] = 0, top
                else:
                    self._boxes_np[j] = b
                self._detailed[j] = row.detailed
            self._nboxes = n
        return self._boxes_np if n else None

    def rows_visible_at(self, epoch: int) -> list[UpdateRow]:
        lo, hi = self._epoch_rows.get(int(epoch), (0, 0))
        return [r for r in self.rows[lo:hi] if r.epoch_visible == epoch]

    def epochs(self) -> list[int]:
        """The epochs at which some row became visible, ascending."""
        return list(self._epoch_list)

    def last_epoch_with_rows(self, epoch: int) -> int | None:
        """The newest epoch <= ``epoch`` that made some row visible (None: none)."""
        k = bisect.bisect_right(self._epoch_list, int(epoch))
        return self._epoch_list[k - 1] if k else None

    def races(self, epoch: int) -> list[Race]:
        """Non-commuting overlaps between producers among the updates made visible
        at ``epoch``: for each update (the ``winner``) and each other producer, the
        latest earlier update of that producer that wrote some of the same elements
        and does not commute with it (the ``loser``; older ones of that producer
        were overwritten by it, or race with it in turn). So an epoch of n updates
        from p producers has at most n·(p-1) races, not n². In row order.

        Candidate pairs come from numpy comparisons of every pair's boxes, ops and
        values, in blocks of ``RACE_BLOCK`` rows; element sets (``set_many``) are
        then checked element by element. Cached per epoch until it gains rows."""
        return list(self._race_index(epoch)[0])

    def race_seqs(self, epoch: int) -> dict[int, list[Race]]:
        """For the update log: ``{row seq: the races it took part in}`` at ``epoch``
        (as winner or loser); a row not in it did not race."""
        return {k: list(v) for k, v in self._race_index(epoch)[1].items()}

    def epoch_size(self, epoch: int) -> int:
        """How many rows became visible at ``epoch`` (what ``races(epoch)`` compares)."""
        lo, hi = self._epoch_rows.get(int(epoch), (0, 0))
        return hi - lo

    def races_known(self, epoch: int) -> bool:
        """Whether ``races(epoch)`` is worked out already (it is kept until the epoch
        gains rows): a GUI asks before it would work out a large epoch's races."""
        epoch = int(epoch)
        cached = self._race_cache.get(epoch)
        return cached is not None and cached[0] == self._epoch_rows.get(epoch)

    def races_of(self, row: UpdateRow) -> list[Race]:
        """The races ``row`` took part in (none until it is visible)."""
        if row.epoch_visible is None:
            return []
        return list(self._race_index(row.epoch_visible)[1].get(row.seq, ()))

    def _race_index(self, epoch: int):
        epoch = int(epoch)
        span = self._epoch_rows.get(epoch)
        cached = self._race_cache.get(epoch)
        if cached is not None and cached[0] == span:
            return cached[1], cached[2]
        races = find_races(epoch, self.rows_visible_at(epoch))
        by_seq: dict[int, list[Race]] = {}
        for race in races:
            by_seq.setdefault(race.winner.seq, []).append(race)
            by_seq.setdefault(race.loser.seq, []).append(race)
        self._race_cache[epoch] = (span, races, by_seq)
        return races, by_seq

def changed_mask(before: np.ndarray | None, after: np.ndarray) -> np.ndarray:
    """Elements whose bits differ between two fronts (NaN == NaN, 0.0 != -0.0);
    all of them when there is no ``before`` of the same shape (the diff helper)."""
    a = np.ascontiguousarray(after, dtype=np.float32)
    if before is None or np.shape(before) != a.shape:
        return np.ones(a.shape, dtype=bool)
    b = np.ascontiguousarray(before, dtype=np.float32)
    return a.view(np.uint32) != b.view(np.uint32)
