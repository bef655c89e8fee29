"""``ElementHistoryDock``: every update that wrote one element (RenderDoc's pixel history).

The dock follows one element (a click on the view, or Ctrl+H on the hovered one)
and lists, in queue order and across swaps, each update that wrote it: seq,
producer, op, the value before → after, the epoch it became visible and, when it
took part in a race, whom it won against or lost to. Everything comes from the
app's one ``UpdateHistory`` (``HistoryFeed.history``, built from the manager's §4
events): the list grows live with the history. Its last visible line is checked
against the front the view shows (the "after" must be the front's value).

Updates whose details are not known — a payload the event ring let go of (it
keeps them within a memory budget), or events from a source that does not
record them — are listed as such — "details not recorded by this backend", collapsed into
one line per run — and the values after them are shown as unknown.

Signals
-------
sigElementChanged(object)   the element followed: an index tuple, or None
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont
from PyQt6.QtWidgets import (
    QDockWidget,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.history import HistoryEntry, Race, UpdateHistory

from .color_bar import format_value

COLUMNS = ("seq", "producer", "op", "before → after", "epoch", "race")
MAX_LINES = 2000        # the newest lines shown (the count says how many there are)
UNRECORDED = "details not recorded by this backend"
PAYLOAD_DROPPED = "payload dropped from the event ring"
RACE_BRUSH = QColor(255, 40, 40, 70)


def bits_equal(a: float | None, b: float | None) -> bool:
    """Same float32 bits (NaN == NaN)."""
    if a is None or b is None:
        return a is b
    return np.float32(a).tobytes() == np.float32(b).tobytes()


def value_text(v: float | None) -> str:
    return "?" if v is None else format_value(v)


def race_text(races: list[Race], row, most: int = 2) -> str:
    """'won against seq 17 (racing-producer-1)' / 'lost to seq 23 (racing-producer-2)',
    the first ``most`` of each, then how many more."""
    won = [f"seq {r.loser.seq} ({r.loser.producer})" for r in races if r.winner is row]
    lost = [f"seq {r.winner.seq} ({r.winner.producer})" for r in races if r.winner is not row]
    parts = []
    for verb, names in (("won against", won), ("lost to", lost)):
        if names:
            more = f" and {len(names) - most} more" if len(names) > most else ""
            parts.append(f"{verb} {', '.join(names[:most])}{more}")
    return "; ".join(parts)


def races_at(history: UpdateHistory, row, index: tuple[int, ...]) -> list[Race]:
    """The races ``row`` took part in whose overlap holds element ``index``."""
    return [r for r in history.races_of(row)
            if all(a <= i < b for i, (a, b) in zip(index, r.overlap))]


def lines_of(history: UpdateHistory, entries: list[HistoryEntry], index: tuple[int, ...],
             cache: dict | None = None):
    """The dock's lines: ``(seq, producer, op, values, epoch, race, raced)`` tuples,
    a run of undetailed rows collapsed into one line. ``cache`` keeps the line of
    each visible entry (keyed by the entry: its races are known once it is visible)."""
    out = []
    cache = {} if cache is None else cache
    k = 0
    while k < len(entries):
        e = entries[k]
        row = e.row
        if not row.detailed:
            j = k
            while (j + 1 < len(entries) and not entries[j + 1].row.detailed
                   and entries[j + 1].row.payload_dropped == row.payload_dropped):
                j += 1
            last = entries[j].row
            why = PAYLOAD_DROPPED if row.payload_dropped else UNRECORDED
            n = j - k + 1
            seqs = f"{row.seq}" if n == 1 else f"{row.seq}–{last.last_seq}"
            what = row.op if n == 1 else f"{n} updates"
            epochs = {entries[i].row.epoch_visible for i in range(k, j + 1)}
            epoch = "pending" if epochs == {None} else (
                str(last.epoch_visible) if len(epochs) == 1 else
                f"{min(x for x in epochs if x is not None)}–"
                f"{max(x for x in epochs if x is not None)}")
            producers = sorted({entries[i].row.producer for i in range(k, j + 1)})
            out.append((seqs, ", ".join(producers), what, f"{value_text(e.before)} → ?",
                        epoch, f"{why}: it may have written here", False))
            k = j + 1
            continue
        hit = cache.get(id(e))
        if hit is not None and hit[0] is e and row.epoch_visible is not None:
            out.append(hit[1])
            k += 1
            continue
        races = races_at(history, row, index)
        seq = str(row.seq) if row.count == 1 else f"{row.seq}…{row.last_seq}"
        epoch = row.state if row.epoch_visible is None else str(row.epoch_visible)   # applied/pending
        line = (seq, row.producer, row.op, f"{value_text(e.before)} → {value_text(e.after)}",
                epoch, race_text(races, row), bool(races))
        if row.epoch_visible is not None:
            cache[id(e)] = (e, line)
        out.append(line)
        k += 1
    return out


class ElementHistoryDock(QDockWidget):
    """The element history of one element (see the module docstring)."""

    sigElementChanged = pyqtSignal(object)

    def __init__(self, feed, view, parent: QWidget | None = None) -> None:
        super().__init__("Element history", parent)
        self.setObjectName("element_history_dock")
        self.feed = feed
        self.view = view
        self.index: tuple[int, ...] | None = None
        self.entries: list[HistoryEntry] = []
        self.check = ""          # what the last visible line says against the front
        self._trace = None       # app.history.ElementTrace of the element followed
        self._trace_of = None    # the UpdateHistory it was read from
        self._lines: list = []   # what the table shows
        self._line_cache: dict = {}   # id(entry) -> (entry, its line), once visible
        # A trace player scrubbed by seq shows the back buffer right after this update:
        # the check reads the entries up to it (None: the front of view.data_epoch).
        self.upto_seq: int | None = None
        body = QWidget()
        v = QVBoxLayout(body)
        v.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("click an element (or hover one and press Ctrl+H) to see "
                            "every update that wrote it")
        self.title.setObjectName("element_history_title")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.title)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("element_history_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(
            self.table.fontMetrics().height() + 4)
        for c, chars in enumerate((9, 20, 6, 26, 8)):
            self.table.setColumnWidth(c, self.table.fontMetrics().averageCharWidth() * chars + 12)
        f = QFont("monospace")
        f.setStyleHint(QFont.StyleHint.Monospace)
        self.table.setFont(f)
        v.addWidget(self.table, 1)
        self.footer = QLabel("")
        self.footer.setObjectName("element_history_check")
        self.footer.setWordWrap(True)
        v.addWidget(self.footer)
        self.setWidget(body)
        feed.sigHistoryChanged.connect(lambda _n: self.refresh())
        feed.sigReset.connect(lambda: self.follow(None))

    # -- the element -----------------------------------------------------------------
    def follow(self, index) -> None:
        """Follow element ``index`` (None: none)."""
        index = None if index is None else tuple(int(i) for i in index)
        if index != self.index:
            self.index = index
            self.sigElementChanged.emit(index)
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Read the history again (skipped while the dock is hidden, unless forced)."""
        if self.index is None:
            self.entries, self._trace, self._lines = [], None, []
            self.table.setRowCount(0)
            self.footer.setText("")
            return
        if not force and not self.isVisible():
            return
        h = self.feed.history
        index = self.index
        try:
            if self._trace is None or self._trace_of is not h or self._trace.index != index:
                self._trace, self._trace_of = h.follow(index), h
            else:
                h.extend(self._trace)          # only the rows added since the last look
        except Exception as exc:     # an index of another shape after a reopen
            self.title.setText(f"element {index}: no history ({type(exc).__name__}: {exc})")
            self._trace = None
            self.entries, self._lines = [], []
            self.table.setRowCount(0)
            return
        self.entries = self._trace.entries
        tail = self.entries[-MAX_LINES:]
        if self._trace_of is not h or len(self._line_cache) > 4 * MAX_LINES:
            self._line_cache = {}
        shown = lines_of(h, tail, index, self._line_cache)
        self._show_lines(shown)
        n = sum(e.row.detailed for e in self.entries)
        unknown = len(self.entries) - n
        title = f"element {index}: {n} update{'s' if n != 1 else ''} wrote it"
        if unknown and not n:
            title = (f"element {index}: {unknown} update{'s' if unknown != 1 else ''} "
                     f"may have written it ({UNRECORDED})")
        elif unknown:
            title += f"; {unknown} more may have (their details were not recorded)"
        if len(tail) < len(self.entries):
            title += f" (the last {len(tail)} shown)"
        if h.dropped:
            title += (f"; {h.dropped} events were lost (a wrapped ring, or skipped by an "
                      "attached program), so values "
                      "before them are unknown")
        if h.forgotten:
            title += (f"; {h.forgotten} older updates were let go of to bound memory, so "
                      "values before them are unknown")
        self.title.setText(title)
        self.check = self._check_front()
        self.footer.setText(self.check)

    def _show_lines(self, lines: list) -> None:
        """Put ``lines`` in the table, touching only the cells that changed (a live
        history mostly appends; pending rows become visible, races get named)."""
        old = self._lines
        grew = len(lines) > len(old)
        self.table.setRowCount(len(lines))
        for r, line in enumerate(lines):
            if r < len(old) and old[r] == line:
                continue
            for c, text in enumerate(line[:6]):
                item = QTableWidgetItem(text)
                if line[6]:
                    item.setBackground(QBrush(RACE_BRUSH))
                self.table.setItem(r, c, item)
        self._lines = lines
        if grew:
            self.table.scrollToBottom()

    def _shown_entries(self) -> tuple[str, list[HistoryEntry]]:
        """What the view shows ("front at epoch 3", "back buffer after seq 17") and the
        entries that are in it."""
        epoch, seq = self.view.data_epoch, self.upto_seq
        if seq is None:
            return f"front at epoch {epoch}", [
                e for e in self.entries
                if e.row.epoch_visible is not None and e.row.epoch_visible <= epoch]
        return f"back buffer after seq {seq}", [e for e in self.entries if e.row.last_seq <= seq]

    def select_shown(self) -> None:
        """Select (and scroll to) the line of the last update in what the view shows —
        for a trace player, which moves back and forth; nothing when none is."""
        _, shown = self._shown_entries()
        self.table.clearSelection()
        if not shown:
            return
        want = str(shown[-1].row.seq)
        for r in range(len(self._lines) - 1, -1, -1):
            if self._lines[r][0].replace("…", "–").split("–")[0] == want:
                self.table.selectRow(r)
                self.table.scrollTo(self.table.model().index(r, 0),
                                    QTableWidget.ScrollHint.PositionAtCenter)
                return

    def _check_front(self) -> str:
        """The last visible 'after' against the value the view's front holds."""
        front = self.view.front()
        if front is None or self.index is None:
            return ""
        try:
            value = float(front[self.index])
        except (IndexError, ValueError):
            return ""
        epoch, seq = self.view.data_epoch, self.upto_seq
        h = self.feed.history
        where, visible = self._shown_entries()
        covers = getattr(self.feed, "covers", None)
        if covers is not None and not covers(epoch, seq):
            return (f"{where}: {format_value(value)} (not checked: the history holds only the "
                    f"first {len(h.rows)} updates)")
        last = visible[-1] if visible else None
        if last is None:
            if h.dropped or h.forgotten:
                return f"{where}: {format_value(value)}"
            want = float(np.float32(h.fill))
            ok = bits_equal(value, want)
            return (f"{where}: {format_value(value)} — "
                    + ("the fill value, no update visible yet" if ok else
                       f"MISMATCH: no update visible, the fill is {format_value(want)}"))
        if last.after is None:
            return (f"{where}: {format_value(value)} (what the last visible "
                    "update left cannot be checked: its details were not recorded)")
        if bits_equal(value, last.after):
            return f"{where}: {format_value(value)} ✓ as seq {last.row.seq} left it"
        return (f"{where}: {format_value(value)} ✗ MISMATCH: seq "
                f"{last.row.seq} left {format_value(last.after)}")
