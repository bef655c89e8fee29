"""``UpdateLogModel``: the history's rows as a ``QAbstractTableModel`` for the update log
(``ui.update_log``), over ``HistoryColumns`` (``ui.history_columns``).

Its rows are history rows (all of them, or the filtered list of their indices). New rows
are appended with one ``beginInsertRows`` per feed poll; rows whose state changed get one
``dataChanged``; ``data()`` formats only the rows the view asks for.

The race flag (SPEC §7): a visible row that raced — it and an update from another
producer in the same epoch wrote the same elements and do not commute — is tinted red
and its ``race`` column names whom it won against or lost to (``history.races_of``).
An epoch of more than ``RACE_ROWS`` updates is not worked out here, on the GUI thread:
its rows say "not checked" until someone has (``history.races_known``; the trace
player works them out on a thread of its own and calls ``races_changed``).
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt
from PyQt6.QtGui import QBrush, QColor, QFont

from app.history import APPLIED, PENDING, UpdateRow

from .color_bar import format_value
from .element_history import race_text
from .history_columns import HistoryColumns, LogFilter, region_text

COLUMNS = ("seq", "producer", "op", "region", "value", "enq. ms", "applied ms",
           "epoch", "state", "race")
(COL_SEQ, COL_PRODUCER, COL_OP, COL_REGION, COL_VALUE, COL_ENQ, COL_APP, COL_EPOCH, COL_STATE,
 COL_RACE) = range(len(COLUMNS))
# How wide the log draws each column at first, in pixels (the last one stretches).
COLUMN_WIDTHS = {COL_SEQ: 80, COL_PRODUCER: 130, COL_OP: 50, COL_REGION: 150, COL_VALUE: 60,
                 COL_ENQ: 72, COL_APP: 84, COL_EPOCH: 45, COL_STATE: 60}
#: Races of an epoch with more updates than this are not worked out on the GUI thread.
RACE_ROWS = 1000
RACE_BG = QColor(255, 205, 205)          # the row raced (another producer, same elements)

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
        self._filtered = False                       # filter.active, asked per cell
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
        return int(self._index[row]) if self._filtered else row

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
        self._filtered = flt.active
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
        return self._m if self._filtered else self._n

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
            if self.races(r):
                return QBrush(RACE_BG)
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
        if col == COL_RACE:
            races = self.races(r)
            if races is None:
                return f"not checked (epoch of {self.columns.history.epoch_size(r.epoch_visible)} updates)"
            return race_text(races, r, most=1)
        return ""

    def races(self, r: UpdateRow) -> list | None:
        """The races row ``r`` took part in ([] for a row not visible yet); None when
        its epoch is too large to work them out here and nobody has yet."""
        e = r.epoch_visible
        if e is None:
            return []
        h = self.columns.history
        if h.epoch_size(e) > RACE_ROWS and not h.races_known(e):
            return None
        return h.races_of(r)

    def races_changed(self, epoch: int) -> None:
        """The races of ``epoch`` were worked out elsewhere: redraw its rows."""
        c = self.columns
        n = c.visible_rows
        a = int(np.searchsorted(c.epoch[:n], epoch, "left"))
        b = int(np.searchsorted(c.epoch[:n], epoch, "right"))
        if b <= a:
            return
        top, bottom = self._first_table_row_at_or_after(a), self._first_table_row_at_or_after(b) - 1
        if top <= bottom:
            self.dataChanged.emit(self.index(top, 0), self.index(bottom, len(COLUMNS) - 1))

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
        races = self.races(r)
        if races:
            parts.append("race: " + race_text(races, r, most=4))
        return "\n".join(p for p in parts if p)


def _ms_text(ms: float | None) -> str:
    return "" if ms is None else f"+{ms:.1f}"
