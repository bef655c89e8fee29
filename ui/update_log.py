"""``UpdateLogDock``: every update as a row (RenderDoc's event browser), read from
the app's one ``UpdateHistory`` (``ui.history_feed``).

Three pieces, each over the history's rows and keeping no fact of its own:

* ``HistoryColumns`` — the history's rows as numpy columns (seq, producer, op,
  bounding box, enqueue/apply times, epoch visible), extended incrementally as
  the feed reads events. Filters and the timeline are vectorized over them, so
  100 000+ rows filter and draw without a Python loop per row; a row's state
  is settled by two moving pointers (the first row not yet applied, the first
  not yet visible), so each feed poll costs what changed, not what exists.
* ``UpdateLogModel`` — a ``QAbstractTableModel`` whose rows are history rows
  (all of them, or the filtered list of their indices). New rows are appended
  with one ``beginInsertRows`` per feed poll; rows whose state changed get one
  ``dataChanged``; ``data()`` formats only the rows the view asks for.
* ``UpdateLogDock`` — the table, its filters (producer, op, seq range, rows
  touching a box), follow-tail, the dropped-events warning, and the selection:
  selecting a row outlines what it wrote on the view (``DisplayState.selection``).

Signals
-------
HistoryColumns.sigRowsChanged(int, int, int)   first new row, rows now, first row
                                               whose state may have changed
HistoryColumns.sigReset()                      the history was replaced
UpdateLogDock.sigSeqSelected(int)              the user selected the row of this seq
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.history import APPLIED, PENDING, UpdateHistory, UpdateRow
from app.manager import OP_NAMES

from .color_bar import format_value

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


class HistoryColumns(QObject):
    """Numpy columns over ``feed.history.rows`` (see the module docstring).

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

    # -- following the history --------------------------------------------------------
    def reset(self) -> None:
        """The feed started a new history."""
        self._clear(self.feed.history if self.feed is not None else UpdateHistory())
        self.sigReset.emit()
        self.sync()

    def set_history(self, history: UpdateHistory) -> None:
        """Follow ``history`` directly (no feed: tests, recorded traces)."""
        self._clear(history)
        self.sigReset.emit()
        self.sync()

    def sync(self) -> None:
        """Read what the history gained since the last call; one signal for all of it."""
        h = self.feed.history if self.feed is not None else self.history
        if h is not self.history:
            self._clear(h)
            self.sigReset.emit()
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
        if n > old_n or first_changed < n or marks_changed:
            self.sigRowsChanged.emit(old_n, n, first_changed)

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


COLUMNS = ("seq", "producer", "op", "region", "value", "enq. ms", "applied ms",
           "epoch", "state")
COL_SEQ, COL_PRODUCER, COL_OP, COL_REGION, COL_VALUE, COL_ENQ, COL_APP, COL_EPOCH, COL_STATE = \
    range(len(COLUMNS))

PENDING_FG = QColor(130, 130, 130)
APPLIED_BG = QColor(255, 244, 214)       # applied, not yet visible: in the back buffer
STEPPED_BG = QColor(170, 210, 255)       # the update the last step applied
BREAK_BG = QColor(255, 190, 150)         # the update a watch stopped before


class UpdateLogModel(QAbstractTableModel):
    """The history's rows as a table (see the module docstring)."""

    def __init__(self, columns: HistoryColumns, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = columns
        self.filter = LogFilter()
        self._n = 0                                  # rows announced (unfiltered)
        self._index = np.zeros(0, np.int64)          # history rows shown (filtered)
        self._m = 0                                  # how many of _index are used
        self.stepped_row: int | None = None          # history row to mark as just applied
        self.break_row: int | None = None            # history row a watch stopped before
        self._italic = QFont()
        self._italic.setItalic(True)
        columns.sigRowsChanged.connect(self._on_rows_changed)
        columns.sigReset.connect(self._on_reset)
        self._on_reset()
        if columns.n:
            self._on_rows_changed(0, columns.n, 0)

    # -- mapping ---------------------------------------------------------------------------
    def history_row(self, row: int) -> int:
        """The history row shown at table row ``row``."""
        return int(self._index[row]) if self.filter.active else row

    def table_row(self, k: int) -> int | None:
        """The table row showing history row ``k`` (None: filtered out or not yet shown)."""
        if not self.filter.active:
            return k if 0 <= k < self._n else None
        j = int(np.searchsorted(self._index[:self._m], k))
        return j if j < self._m and self._index[j] == k else None

    def _first_table_row_at_or_after(self, k: int) -> int:
        if not self.filter.active:
            return k
        return int(np.searchsorted(self._index[:self._m], k))

    def row(self, table_row: int) -> UpdateRow:
        return self.columns.history.rows[self.history_row(table_row)]

    # -- filtering ---------------------------------------------------------------------------
    def set_filter(self, flt: LogFilter) -> None:
        self.beginResetModel()
        self.filter = flt
        self._n = self.columns.n
        if flt.active:
            self._index = self.columns.matching(flt, 0, self._n)
            self._m = len(self._index)
        else:
            self._index, self._m = np.zeros(0, np.int64), 0
        self.endResetModel()

    # -- following the columns ------------------------------------------------------------
    def _on_reset(self) -> None:
        self.beginResetModel()
        self._n, self._m = 0, 0
        self._index = np.zeros(0, np.int64)
        self.stepped_row = self.break_row = None
        self.endResetModel()

    def _on_rows_changed(self, first_new: int, n: int, first_changed: int) -> None:
        old_rows = self.rowCount()
        if first_changed < first_new and old_rows:
            top = self._first_table_row_at_or_after(first_changed)
            if top < old_rows:
                self.dataChanged.emit(self.index(top, 0),
                                      self.index(old_rows - 1, len(COLUMNS) - 1))
        if n <= self._n:
            return
        start = self._n
        if not self.filter.active:
            self.beginInsertRows(QModelIndex(), start, n - 1)
            self._n = n
            self.endInsertRows()
            return
        new = self.columns.matching(self.filter, start, n)
        self._n = n
        if not len(new):
            return
        if self._m + len(new) > len(self._index):
            grown = np.zeros(max(2 * len(self._index), self._m + len(new)), np.int64)
            grown[:self._m] = self._index[:self._m]
            self._index = grown
        self.beginInsertRows(QModelIndex(), self._m, self._m + len(new) - 1)
        self._index[self._m:self._m + len(new)] = new
        self._m += len(new)
        self.endInsertRows()

    # -- the model ---------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        if parent.isValid():
            return 0
        return self._m if self.filter.active else self._n

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        k = self.history_row(index.row())
        r = self.columns.history.rows[k]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(r, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(r)
        state = r.state
        if role == Qt.ItemDataRole.ForegroundRole and state == PENDING:
            return QBrush(PENDING_FG)
        if role == Qt.ItemDataRole.FontRole and state == PENDING:
            return self._italic
        if role == Qt.ItemDataRole.BackgroundRole:
            if k == self.break_row:
                return QBrush(BREAK_BG)
            if k == self.stepped_row:
                return QBrush(STEPPED_BG)
            if state == APPLIED:
                return QBrush(APPLIED_BG)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_SEQ, COL_ENQ, COL_APP,
                                                                  COL_EPOCH):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def text(self, r: UpdateRow, col: int) -> str:
        """What column ``col`` says about row ``r``."""
        if col == COL_SEQ:
            return str(r.seq) if r.count == 1 else f"{r.seq}–{r.last_seq}"
        if col == COL_PRODUCER:
            return r.producer
        if col == COL_OP:
            return r.op if r.count == 1 or r.op != "set" else "set ×n"
        if col == COL_REGION:
            return self.region(r)
        if col == COL_VALUE:
            return self.value(r)
        if col == COL_ENQ:
            return _ms_text(self.columns.ms(r.t_enqueue_ns))
        if col == COL_APP:
            text = _ms_text(self.columns.ms(r.t_apply_ns))
            if r.count > 1 and 0 < r.applied < r.count:
                text += f" ({r.applied}/{r.count})"
            return text
        if col == COL_EPOCH:
            return "" if r.epoch_visible is None else str(r.epoch_visible)
        if col == COL_STATE:
            return r.state
        return ""

    @staticmethod
    def region(r: UpdateRow) -> str:
        if r.indices is not None or (r.count > 1 and r.op == "set"):
            box = r.bbox()
            where = f" in {region_text(box)}" if box is not None and r.indices is not None else ""
            dropped = " (payload let go)" if r.payload_dropped else ""
            return f"{r.count} elements{where}{dropped}"
        if r.region is None:
            return "—"     # the event does not say (a backend that records no payload)
        if r.op == "set":
            return "(" + ", ".join(str(a) for a, _ in r.region) + ")"
        return region_text(r.region)

    @staticmethod
    def value(r: UpdateRow) -> str:
        if r.value is not None and r.op != "write":
            return format_value(float(r.value))
        if r.values is None:
            return "data" if r.op == "write" else "—"
        v = np.asarray(r.values)
        if r.op == "write":
            return "data " + "×".join(str(s) for s in v.shape)
        if v.size == 1:
            return format_value(float(v.reshape(-1)[0]))
        finite = v[np.isfinite(v)]
        if not finite.size:
            return "non-finite"
        return f"{format_value(float(finite.min()))} … {format_value(float(finite.max()))}"

    def tooltip(self, r: UpdateRow) -> str:
        where = self.region(r)
        if where == "—":
            where = "what it wrote is not in its events (this backend does not record it)"
        parts = [f"seq {self.text(r, COL_SEQ)}: {r.op} by {r.producer}", where]
        enq, app = self.columns.ms(r.t_enqueue_ns), self.columns.ms(r.t_apply_ns)
        parts.append(f"enqueued {_ms_text(enq)} ms" + (f", applied {_ms_text(app)} ms"
                                                         if app is not None else ", pending"))
        if r.epoch_visible is not None:
            parts.append(f"visible at epoch {r.epoch_visible}")
        return "\n".join(p for p in parts if p)


def _ms_text(ms: float | None) -> str:
    return "" if ms is None else f"+{ms:.1f}"


class UpdateLogDock(QDockWidget):
    """The update log: a table over the history with filters and follow-tail.

    Parameters
    ----------
    columns
        the ``HistoryColumns`` over the app's history (shared with the timeline)
    state
        the view's ``DisplayState``: a selected row outlines its region there
    ndim
        a callable giving the buffer's number of dimensions (for the outline)

    Signals
    -------
    sigSeqSelected(int)
        the user selected a row: its first sequence number
    """

    sigSeqSelected = pyqtSignal(int)

    def __init__(self, columns: HistoryColumns, state=None, ndim=lambda: 2,
                 parent: QWidget | None = None) -> None:
        super().__init__("Update log", parent)
        self.setObjectName("UpdateLog")
        self.columns = columns
        self.state = state
        self._ndim = ndim
        self.model = UpdateLogModel(columns, self)
        self._scrolling = False
        self._box = None
        body = QWidget()
        v = QVBoxLayout(body)
        v.setContentsMargins(2, 2, 2, 2)
        self.header = QLabel()
        self.header.setObjectName("log_header")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        v.addWidget(self.header)
        v.addLayout(self._filter_row())
        self.table = QTableView()
        self.table.setObjectName("update_table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(False)
        self.table.setWordWrap(False)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vh = self.table.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.table.fontMetrics().height() + 4)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(True)
        for col, width in ((COL_SEQ, 80), (COL_PRODUCER, 130), (COL_OP, 50), (COL_REGION, 150),
                           (COL_VALUE, 60), (COL_ENQ, 72), (COL_APP, 84), (COL_EPOCH, 45)):
            self.table.setColumnWidth(col, width)
        v.addWidget(self.table, 1)
        self.setWidget(body)

        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.table.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.model.rowsInserted.connect(self._on_inserted)
        self.model.modelReset.connect(self._after_reset)
        columns.sigRowsChanged.connect(lambda *_: self._update_header())
        columns.sigReset.connect(self._update_header)
        self._update_header()

    # -- filters -----------------------------------------------------------------------
    def _filter_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.producer_combo = QComboBox()
        self.producer_combo.setObjectName("log_producer")
        self.producer_combo.addItem("all producers")
        self.producer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.producer_combo.activated.connect(lambda _i: self.apply_filter())
        self.op_combo = QComboBox()
        self.op_combo.setObjectName("log_op")
        self.op_combo.addItems(["all ops", *OP_NAMES])
        self.op_combo.activated.connect(lambda _i: self.apply_filter())
        self.seq_from = QLineEdit()
        self.seq_to = QLineEdit()
        for w, tip in ((self.seq_from, "from seq"), (self.seq_to, "to seq")):
            w.setPlaceholderText(tip)
            w.setMaximumWidth(90)
            w.setClearButtonEnabled(True)
            w.editingFinished.connect(self.apply_filter)
        self.box_check = QCheckBox("in selection")
        self.box_check.setObjectName("log_in_box")
        self.box_check.setToolTip("Only updates that wrote into the view's selection "
                                  "(taken when ticked; tick again to take the new one)")
        self.box_check.toggled.connect(self._on_box_toggled)
        self.follow = QToolButton()
        self.follow.setObjectName("log_follow")
        self.follow.setText("Follow")
        self.follow.setCheckable(True)
        self.follow.setChecked(True)
        self.follow.setToolTip("Keep the newest update in view (scrolling up turns it off, "
                               "scrolling to the end turns it on)")
        self.follow.toggled.connect(lambda on: on and self.scroll_to_tail())
        row.addWidget(QLabel("Show"))
        row.addWidget(self.producer_combo)
        row.addWidget(self.op_combo)
        row.addWidget(QLabel("seq"))
        row.addWidget(self.seq_from)
        row.addWidget(QLabel("–"))
        row.addWidget(self.seq_to)
        row.addWidget(self.box_check)
        row.addStretch(1)
        row.addWidget(self.follow)
        return row

    def _on_box_toggled(self, on: bool) -> None:
        sel = self.state.selection if self.state is not None else None
        if on and sel is None:
            self.box_check.setChecked(False)
            self.header.setText("select a region on the view first (Shift+drag)")
            return
        z = self.state.z if self.state is not None else 0
        self._box = nd_box(sel, self._ndim(), z) if on else None
        self.apply_filter()

    def current_filter(self) -> LogFilter:
        p = self.producer_combo.currentText() if self.producer_combo.currentIndex() > 0 else None
        op = self.op_combo.currentText() if self.op_combo.currentIndex() > 0 else None
        return LogFilter(p, op, _int_or_none(self.seq_from.text()),
                         _int_or_none(self.seq_to.text()), self._box)

    def apply_filter(self, flt: LogFilter | None = None) -> None:
        """Show the rows ``flt`` keeps (default: what the filter controls say)."""
        flt = self.current_filter() if flt is None else flt
        if flt == self.model.filter:
            return
        keep = self.selected_seq()
        self._scrolling = True
        try:
            self.model.set_filter(flt)
        finally:
            self._scrolling = False
        if keep is not None:
            self.select_seq(keep, emit=False)
        elif self.follow.isChecked():
            self.scroll_to_tail()
        self._update_header()

    def _refresh_producers(self) -> None:
        names = self.columns.producers
        have = self.producer_combo.count() - 1
        for name in names[have:]:
            self.producer_combo.addItem(name)

    # -- header ----------------------------------------------------------------------------
    def _update_header(self) -> None:
        self._refresh_producers()
        n, shown = self.columns.n, self.model.rowCount()
        text = f"{_num(n)} updates"
        if self.model.filter.active:
            text += f", {_num(shown)} shown"
        dropped = self.columns.history.dropped
        if dropped > 0:
            text += (f" &nbsp;<b style='color:#b00'>{_num(dropped)} earlier events were lost: "
                     "the ring wrapped</b>")
        self.header.setText(text)

    # -- follow-tail ---------------------------------------------------------------------
    def scroll_to_tail(self) -> None:
        self._scrolling = True
        try:
            self.table.scrollToBottom()
        finally:
            self._scrolling = False

    def _on_inserted(self, *_a) -> None:
        if self.follow.isChecked():
            self.scroll_to_tail()

    def _after_reset(self) -> None:
        if self.follow.isChecked():
            self.scroll_to_tail()

    def _on_scrolled(self, value: int) -> None:
        if self._scrolling:
            return
        bottom = self.table.verticalScrollBar().maximum()
        if self.follow.isChecked() and value < bottom:
            self.follow.setChecked(False)          # the user scrolled up: stop following
        elif not self.follow.isChecked() and value == bottom > 0:
            self.follow.setChecked(True)           # back at the newest: follow again

    # -- selection ---------------------------------------------------------------------------
    def selected_seq(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.row(rows[0].row()).seq

    def select_seq(self, seq: int, emit: bool = True) -> bool:
        """Select (and scroll to) the row holding ``seq``; False when it is not shown."""
        k = self.columns.history.row_index(int(seq))
        row = None if k is None else self.model.table_row(k)
        if row is None:
            return False
        self._quiet = not emit
        self._scrolling = True
        try:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0),
                                QAbstractItemView.ScrollHint.PositionAtCenter)
        finally:
            self._scrolling = False
            self._quiet = False
        if self.follow.isChecked() and row < self.model.rowCount() - 1:
            self.follow.setChecked(False)          # looking at one row: do not jump away
        return True

    _quiet = False

    def _on_selection(self, *_a) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        r = self.model.row(rows[0].row())
        self.outline(r)
        if not self._quiet:
            self.sigSeqSelected.emit(r.seq)

    def outline(self, r: UpdateRow) -> None:
        """Outline what row ``r`` wrote on the view (its bounding box)."""
        if self.state is None:
            return
        box, zs = plane_box(r.bbox(), self._ndim())
        if zs is not None and not zs[0] <= self.state.z < zs[1]:
            self.state.set_z(zs[0])
        self.state.set_selection(box)

    # -- stepping marks ----------------------------------------------------------------------
    def mark_rows(self, stepped: int | None, stopped: int | None) -> None:
        """Colour the history rows just applied (``stepped``) and stopped before (``stopped``)."""
        if (stepped, stopped) == (self.model.stepped_row, self.model.break_row):
            return
        old = (self.model.stepped_row, self.model.break_row)
        self.model.stepped_row, self.model.break_row = stepped, stopped
        for k in {*old, stepped, stopped} - {None}:
            row = self.model.table_row(k)
            if row is not None:
                self.model.dataChanged.emit(self.model.index(row, 0),
                                            self.model.index(row, len(COLUMNS) - 1))


def _num(n: int) -> str:
    """12 345: thousands set apart by a space."""
    return f"{n:,}".replace(",", " ")


def _int_or_none(text: str) -> int | None:
    text = text.strip().replace(" ", "").replace("_", "")
    try:
        return int(text) if text else None
    except ValueError:
        return None
