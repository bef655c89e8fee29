"""``UpdateLogDock``: every update as a row (RenderDoc's event browser), read from
the app's one ``UpdateHistory`` (``ui.history_feed``).

Three pieces, each over the history's rows and keeping no fact of its own:

* ``HistoryColumns`` (``ui.history_columns``) — the history's rows as numpy columns,
  extended incrementally as the feed reads events; filters (``LogFilter``) and the
  timeline are vectorized over them.
* ``UpdateLogModel`` (``ui.update_log_model``) — a ``QAbstractTableModel`` whose rows are
  history rows (all of them, or the filtered list of their indices).
* ``UpdateLogDock`` (here) — the table, its filters (producer, op, seq range, rows
  touching a box), follow-tail, the dropped-events warning, and the selection:
  selecting a row outlines what it wrote on the view (``DisplayState.selection``).

``HistoryColumns``, ``LogFilter``, ``UpdateLogModel`` and the box helpers are
re-exported here, where callers have imported them; the column numbers (``COL_*``)
are in ``ui.update_log_model``.

Signals
-------
UpdateLogDock.sigSeqSelected(int)              the user selected the row of this seq
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
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

from app.history import UpdateRow
from app.manager import OP_NAMES

from .history_columns import (  # noqa: F401  (re-exported)
    MAX_DIMS,
    NO_TIME,
    HistoryColumns,
    LogFilter,
    nd_box,
    plane_box,
    region_text,
)
from .update_log_model import COLUMN_WIDTHS, COLUMNS, UpdateLogModel


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
        for col, width in COLUMN_WIDTHS.items():
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
                     "the ring wrapped, or an attached program skipped them</b>")
        forgotten = self.columns.history.forgotten
        if forgotten > 0:
            text += (f" &nbsp;<i>({_num(forgotten)} older updates let go of to bound memory; "
                     "record a trace to keep everything)</i>")
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
