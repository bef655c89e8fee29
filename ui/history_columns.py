"""``HistoryColumns``: the app's one ``UpdateHistory`` as numpy columns, for the update
log (``ui.update_log``) and the timeline (``ui.timeline``) — and ``LogFilter``, what a
filter asks of them.

The columns (seq, producer, op, bounding box, enqueue/apply times, epoch visible) are
extended incrementally as the feed reads events. Filters and the timeline are vectorized
over them, so 100 000+ rows filter and draw without a Python loop per row; a row's state
is settled by two moving pointers (the first row not yet applied, the first not yet
visible), so each feed poll costs what changed, not what exists.

``ColumnData`` is the Qt-free part: a history that arrives whole (a trace) is read into
one on a worker thread and swapped in with ``HistoryColumns.adopt``.

Signals
-------
HistoryColumns.sigRowsChanged(int, int, int)   first new row, rows now, first row
                                               whose state may have changed
HistoryColumns.sigReset()                      the history was replaced
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from app.history import UpdateHistory, UpdateRow
from app.manager import OP_NAMES

MAX_DIMS = 3
NO_TIME = -1


def region_text(box) -> str:
    """``[0:16, 4:8]`` — a half-open box, one ``start:stop`` per dimension."""
    return "[" + ", ".join(f"{a}:{b}" for a, b in box) + "]"


def plane_box(box, ndim: int):
    """The (rows, cols) part of an N-d box, as ``DisplayState.selection`` wants it,
    and the z range of a 3-D box (None otherwise)."""
    if box is None:
        return None, None
    if ndim == 1:
        return ((0, 1), tuple(box[0])), None
    if ndim == 2:
        return (tuple(box[0]), tuple(box[1])), None
    return (tuple(box[1]), tuple(box[2])), tuple(box[0])


def nd_box(plane, ndim: int, z: int = 0):
    """The N-d box of a plane box (the inverse of ``plane_box``; 3-D: plane ``z``)."""
    (r0, r1), (c0, c1) = plane
    if ndim == 1:
        return ((c0, c1),)
    if ndim == 2:
        return ((r0, r1), (c0, c1))
    return ((z, z + 1), (r0, r1), (c0, c1))


class ColumnData:
    """The columns themselves, Qt-free (``HistoryColumns`` is them plus signals).
    ``ColumnData.of(history)`` reads a whole history at once — on a worker thread, for
    a history that is complete when it is handed over (a trace): ``HistoryColumns.adopt``
    then only swaps them in on the GUI thread."""

    @classmethod
    def of(cls, history: UpdateHistory) -> ColumnData:
        data = cls()
        data._clear(history)
        data.read(history)
        return data

    # -- storage ----------------------------------------------------------------------
    def _clear(self, history: UpdateHistory) -> None:
        self.history = history
        self.n = 0
        cap = 1024
        self.seq = np.zeros(cap, np.int64)
        self.last = np.zeros(cap, np.int64)
        self.count = np.zeros(cap, np.int64)
        self.prod = np.zeros(cap, np.int32)
        self.op = np.zeros(cap, np.int8)
        self.t_enq = np.zeros(cap, np.int64)
        self.t_app = np.full(cap, NO_TIME, np.int64)
        self.epoch = np.full(cap, -1, np.int64)
        self.box_lo = np.zeros((cap, MAX_DIMS), np.int64)
        self.box_hi = np.zeros((cap, MAX_DIMS), np.int64)
        self.has_indices = np.zeros(cap, bool)
        self.producers: list[str] = []
        self._prod_code: dict[str, int] = {}
        self.boxed = 0             # rows [0, boxed) have box_lo/box_hi
        self.applied_rows = 0      # rows [0, applied_rows) are fully applied
        self.apply_timed = 0       # of those, how many have an apply time (a trace has none)
        self.visible_rows = 0      # rows [0, visible_rows) are visible
        self.t0: int | None = None  # the first event's time: times are shown relative to it
        self.marks_read = 0
        self.swap_t = np.zeros(0, np.int64)
        self.swap_epoch = np.zeros(0, np.int64)
        self.breaks: list[tuple[int, int]] = []   # (t_ns, seq) of every break event

    def _grow(self, need: int) -> None:
        cap = len(self.seq)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for name in ("seq", "last", "count", "prod", "op", "t_enq", "t_app", "epoch",
                     "box_lo", "box_hi", "has_indices"):
            old = getattr(self, name)
            fill = NO_TIME if name in ("t_app", "epoch") else 0
            arr = np.full((new,) + old.shape[1:], fill, old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)

    def producer_code(self, name: str) -> int:
        code = self._prod_code.get(name)
        if code is None:
            code = self._prod_code[name] = len(self.producers)
            self.producers.append(name)
        return code

    # -- reading the history -------------------------------------------------------------
    def read(self, h: UpdateHistory) -> tuple[bool, int, int, int, bool]:
        """Read what ``h`` gained since the last read (all of it when it is not the history
        read so far): whether the columns were cleared for it, the rows before and now,
        the first row whose state may have changed, and whether anything did."""
        replaced = h is not self.history
        if replaced:
            self._clear(h)
        rows = h.rows
        old_n, n = self.n, len(rows)
        first_changed = min(self.applied_rows, self.visible_rows, old_n)
        if n > old_n:
            self._append(rows, old_n, n)
        self._settle(rows, n)
        marks_changed = self._read_marks(h)
        if self.t0 is None:
            times = ([rows[0].t_enqueue_ns] if n else []) + ([h.marks[0].t_ns] if h.marks else [])
            self.t0 = min(times) if times else None
        return replaced, old_n, n, first_changed, n > old_n or first_changed < n or marks_changed

    def _append(self, rows: list[UpdateRow], a: int, b: int) -> None:
        """Columns for rows [a, b): one list per column, assigned as a slice (numpy
        item assignment per row would cost several times more)."""
        self._grow(b)
        rs = rows[a:b]
        op_code = {name: k for k, name in enumerate(OP_NAMES)}
        code = self._prod_code
        self.seq[a:b] = [r.seq for r in rs]
        self.count[a:b] = [r.count for r in rs]
        self.last[a:b] = self.seq[a:b] + self.count[a:b] - 1
        self.prod[a:b] = [code[r.producer] if r.producer in code else self.producer_code(r.producer)
                          for r in rs]
        self.op[a:b] = [op_code.get(r.op, -1) for r in rs]
        self.t_enq[a:b] = [r.t_enqueue_ns for r in rs]
        self.has_indices[a:b] = [r.indices is not None for r in rs]
        self.n = b

    def _ensure_boxes(self) -> None:
        """Bounding boxes of rows not boxed yet: made when a region filter first
        needs them, not on every poll (they cost the most of all the columns)."""
        a, b = self.boxed, self.n
        if a >= b:
            return
        los, his = [], []
        for r in self.history.rows[a:b]:
            box = r.region if r.indices is None else r.bbox()
            if box is None:
                los.append((0,) * MAX_DIMS)
                his.append((-1,) * MAX_DIMS)    # touches nothing
                continue
            pad = (0,) * (MAX_DIMS - len(box))
            los.append(pad + tuple(p for p, _ in box))
            his.append((1,) * len(pad) + tuple(q for _, q in box))
        self.box_lo[a:b] = np.array(los, np.int64).reshape(-1, MAX_DIMS)
        self.box_hi[a:b] = np.array(his, np.int64).reshape(-1, MAX_DIMS)
        self.boxed = b

    def _settle(self, rows: list[UpdateRow], n: int) -> None:
        """Move the applied/visible pointers over the rows that reached that state
        (FIFO: the applied rows and the visible rows are each a prefix)."""
        start = k = self.applied_rows
        times = []
        while k < n:
            r = rows[k]
            if r.applied < r.count and r.epoch_visible is None:
                break
            times.append(NO_TIME if r.t_apply_ns is None else r.t_apply_ns)
            k += 1
        self.t_app[start:k] = times
        self.apply_timed += len(times) - times.count(NO_TIME)
        self.applied_rows = k
        if k < n and rows[k].t_apply_ns is not None:      # a set_many run part-applied
            self.t_app[k] = rows[k].t_apply_ns
        start = k = self.visible_rows
        epochs = []
        while k < n:
            e = rows[k].epoch_visible
            if e is None:
                break
            epochs.append(e)
            k += 1
        self.epoch[start:k] = epochs
        self.visible_rows = k

    def _read_marks(self, h: UpdateHistory) -> bool:
        new = h.marks[self.marks_read:]
        if not new:
            return False
        self.marks_read = len(h.marks)
        swaps = [(m.t_ns, m.epoch) for m in new if m.kind == "swap"]
        if swaps:
            self.swap_t = np.concatenate([self.swap_t, np.array([s[0] for s in swaps], np.int64)])
            self.swap_epoch = np.concatenate(
                [self.swap_epoch, np.array([s[1] for s in swaps], np.int64)])
        self.breaks.extend((m.t_ns, m.seq) for m in new if m.kind == "break")
        return True

    # -- queries ------------------------------------------------------------------------
    def ms(self, t_ns: int | None) -> float | None:
        """Milliseconds since the first event."""
        if t_ns is None or t_ns == NO_TIME or self.t0 is None:
            return None
        return (t_ns - self.t0) / 1e6

    def newest_applied_row(self) -> int | None:
        """The row of the update applied last (a part-applied run counts), or None."""
        k = self.applied_rows
        if k < self.n and self.history.rows[k].applied > 0:
            return k
        return k - 1 if k > 0 else None

    def matching(self, flt: LogFilter, a: int = 0, b: int | None = None) -> np.ndarray:
        """Indices in ``[a, b)`` of the rows ``flt`` keeps, vectorized."""
        b = self.n if b is None else b
        mask = np.ones(b - a, bool)
        if flt.producer is not None:
            code = self._prod_code.get(flt.producer, -2)
            mask &= self.prod[a:b] == code
        if flt.op is not None:
            mask &= self.op[a:b] == OP_NAMES.index(flt.op)
        if flt.seq_lo is not None:
            mask &= self.last[a:b] >= flt.seq_lo
        if flt.seq_hi is not None:
            mask &= self.seq[a:b] <= flt.seq_hi
        if flt.box is not None:
            self._ensure_boxes()
            d = len(flt.box)
            lo = np.zeros(MAX_DIMS, np.int64)
            hi = np.ones(MAX_DIMS, np.int64)
            lo[MAX_DIMS - d:] = [p for p, _ in flt.box]
            hi[MAX_DIMS - d:] = [q for _, q in flt.box]
            mask &= np.all((self.box_lo[a:b] < hi) & (self.box_hi[a:b] > lo), axis=1)
            # Element runs: the bounding box is a first cut; keep those that really hit.
            for k in np.flatnonzero(mask & self.has_indices[a:b]):
                idx = self.history.rows[a + k].indices
                if idx is None:
                    continue
                lo_d, hi_d = np.asarray(lo[MAX_DIMS - d:]), np.asarray(hi[MAX_DIMS - d:])
                if not np.any(np.all((idx >= lo_d) & (idx < hi_d), axis=1)):
                    mask[k] = False
        return np.flatnonzero(mask).astype(np.int64) + a


class HistoryColumns(QObject, ColumnData):
    """Numpy columns over ``feed.history.rows`` (see the module docstring), kept up to
    date as the feed reads events.

    Signals
    -------
    sigRowsChanged(int, int, int)
        first new row, rows now, first row whose state (apply time, epoch) may
        have changed since the last emission
    sigReset()
        a new history: every column was cleared
    """

    sigRowsChanged = pyqtSignal(int, int, int)
    sigReset = pyqtSignal()

    def __init__(self, feed=None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.feed = feed
        self._clear(feed.history if feed is not None else UpdateHistory())
        if feed is not None:
            feed.sigHistoryChanged.connect(lambda _n: self.sync())
            feed.sigReset.connect(self.reset)

    def reset(self) -> None:
        """The feed started a new history (one already adopted is only brought up to date)."""
        h = self.feed.history if self.feed is not None else UpdateHistory()
        if h is self.history:
            self.sync()
            return
        self._clear(h)
        self.sigReset.emit()
        self.sync()

    def set_history(self, history: UpdateHistory) -> None:
        """Follow ``history`` directly (no feed: tests, recorded traces)."""
        self._clear(history)
        self.sigReset.emit()
        self.sync()

    def adopt(self, data: ColumnData) -> None:
        """Take the columns ``ColumnData.of`` read elsewhere (a worker thread), over
        ``data.history``: the GUI thread only swaps them in."""
        self.__dict__.update(vars(data))
        self.sigReset.emit()
        self.sigRowsChanged.emit(0, self.n, 0)

    def sync(self) -> None:
        """Read what the history gained since the last call; one signal for all of it."""
        h = self.feed.history if self.feed is not None else self.history
        replaced, old_n, n, first_changed, changed = self.read(h)
        if replaced:
            self.sigReset.emit()
        if changed:
            self.sigRowsChanged.emit(old_n, n, first_changed)


@dataclass(frozen=True)
class LogFilter:
    """What the log shows: None everywhere shows every row."""

    producer: str | None = None
    op: str | None = None
    seq_lo: int | None = None
    seq_hi: int | None = None
    box: tuple[tuple[int, int], ...] | None = None     # rows that wrote into this N-d box

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.producer, self.op, self.seq_lo, self.seq_hi,
                                           self.box))
