"""``TraceDocks``: the live window's debug docks over a recorded trace, in the trace
player window (``ui.trace_window``), linked to the player both ways.

The update log (``ui.update_log``), the timeline (``ui.timeline``) and the element
history (``ui.element_history``) are the live window's own widgets; here they read
the opened trace's ``UpdateHistory`` (``TraceIndex.history``) through a
``StaticHistoryFeed`` instead of a manager's events. A long trace's history is capped
(``TraceIndex.history_complete``): the log's and the timeline's titles then say how
many of the trace's updates they hold, and past that point nothing is selected.

Linking, like apitrace's call list:

* the player shows epoch k (slider, keys, play, Next race) → the log selects and
  scrolls to the last update visible at k; the player shows the back buffer right
  after seq s → the row of s; the timeline marks that row and draws its cursor at
  the swap of epoch k (or at when s was enqueued); the element history checks the
  element it follows against what is shown;
* a row selected in the log (click, arrow keys; Enter or double-click on the selected
  one), or a mark clicked on the timeline → the player shows the back buffer right
  after that update;
* a click on the player's view follows that element in the element history;
* race flags: the log tints the rows that raced and names whom they won against or
  lost to; a large epoch's races arrive from the player's race thread.

View menu: Update log (Ctrl+Shift+L), Timeline (Ctrl+Shift+T), Element history
(Ctrl+Shift+H), History of the hovered element (Ctrl+H), Go to seq (Ctrl+G).
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QObject, Qt
from PyQt6.QtGui import QAction, QKeySequence

from .debug_docks import link_log_and_timeline
from .element_history import ElementHistoryDock
from .history_columns import ColumnData, HistoryColumns
from .history_docks import group, outline_element
from .history_feed import StaticHistoryFeed
from .timeline import TimelineDock
from .update_log import UpdateLogDock
from .update_log_model import COL_APP, COL_PRODUCER, COL_REGION, COL_STATE


class TraceDocks(QObject):
    """The docks of a ``TracePlayerWindow`` (see the module docstring): ``log``,
    ``timeline``, ``history`` (the element history), over ``feed`` and ``columns``."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.player = player = window.player
        self.feed = StaticHistoryFeed(self)
        self.feed.covers = player.covers
        self.columns = HistoryColumns(self.feed, self)
        player.open_extras["columns"] = lambda idx: ColumnData.of(idx.history)   # off the GUI thread
        self.log = UpdateLogDock(self.columns, player.state, self._ndim, window)
        self.log.follow.setChecked(False)      # a trace does not grow: nothing to follow
        self.log.follow.hide()
        for col in (COL_APP, COL_STATE):       # a trace has no apply times; all is visible
            self.log.table.setColumnHidden(col, True)
        for col, width in ((COL_PRODUCER, 100), (COL_REGION, 125)):   # room for the race column
            self.log.table.setColumnWidth(col, width)
        self.timeline = TimelineDock(self.columns, window)
        self.history = ElementHistoryDock(self.feed, player.view, window)
        link_log_and_timeline(self.log, self.timeline.view)

        self.log.sigSeqSelected.connect(self.show_update)
        self.log.table.activated.connect(
            lambda index: self.show_update(self.log.model.row(index.row()).seq))
        self.timeline.view.sigSeqClicked.connect(self.show_update)
        player.sigLoaded.connect(self._on_loaded)
        player.sigShown.connect(self.follow_player)
        player.races.sigKnown.connect(self.log.model.races_changed)
        player.view.sigElementClicked.connect(self.follow_element)
        self.history.sigElementChanged.connect(lambda i: outline_element(player.view.overlays, i))
        self._build_menu()

    def _ndim(self) -> int:
        idx = self.player.index
        return len(idx.shape) if idx is not None else 2

    def arrange(self) -> None:
        """Put the docks in place (the log, the element history and the timeline side by
        side under the player; the element history hidden until an element is clicked)."""
        w = self.window
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        for dock in (self.log, self.history, self.timeline):
            w.addDockWidget(bottom, dock)
        self.history.hide()
        w.resizeDocks([self.log, self.timeline], [3, 2], Qt.Orientation.Horizontal)
        w.resizeDocks([self.log], [int(w.height() * 0.42)], Qt.Orientation.Vertical)

    def _build_menu(self) -> None:
        w = self.window
        menu = w.menuBar().addMenu("&View")
        for dock, text, key in ((self.log, "Update log", "Ctrl+Shift+L"),
                                (self.timeline, "Timeline", "Ctrl+Shift+T"),
                                (self.history, "Element history", "Ctrl+Shift+H")):
            act = dock.toggleViewAction()
            act.setText(text)
            act.setShortcut(QKeySequence(key))
            menu.addAction(act)
        menu.addSeparator()
        self.follow_action = QAction("History of the hovered element", w)
        self.follow_action.setShortcut(QKeySequence("Ctrl+H"))
        self.follow_action.triggered.connect(self.follow_hovered)
        menu.addAction(self.follow_action)
        self.goto_action = QAction("Go to seq…", w)
        self.goto_action.setShortcut(QKeySequence("Ctrl+G"))
        self.goto_action.triggered.connect(self._focus_seq_box)
        menu.addAction(self.goto_action)

    def _focus_seq_box(self) -> None:
        box = self.player.seq_box
        box.setFocus()
        box.selectAll()

    # -- a trace opened ----------------------------------------------------------------
    def _on_loaded(self, idx) -> None:
        h = idx.history
        data = self.player.opened.get("columns")
        if data is not None and data.history is h:
            self.columns.adopt(data)        # read on the worker: nothing to read here
        self.feed.set_history(h)
        n = len(h.rows)
        if idx.history_complete:
            self.log.setWindowTitle("Update log")
            self.timeline.setWindowTitle("Timeline")
        else:
            held = f"the first {group(n)} of {group(idx.n_updates)} updates"
            self.log.setWindowTitle(f"Update log — {held} (the history is capped)")
            self.timeline.setWindowTitle(f"Timeline — {held}")
        if idx.seq_kind == "ordinal":
            self.log.setWindowTitle(self.log.windowTitle()
                                    + "; seq: update numbers (the trace's seqs are missing "
                                      "or out of order)")

    # -- the player moved: follow it -----------------------------------------------------
    def row_at(self, epoch: int, seq: int | None) -> int | None:
        """The history row of the last update in what the player shows (the update
        ``seq``, or the last visible at ``epoch``); None: none (the initial buffer, or
        past the end of a capped history)."""
        c = self.columns
        if not self.player.covers(epoch, seq):
            return None
        if seq is not None:
            k = int(np.searchsorted(c.seq[:c.n], seq, "right")) - 1
        else:
            k = int(np.searchsorted(c.epoch[:c.visible_rows], epoch, "right")) - 1
        return k if k >= 0 else None

    def follow_player(self, epoch: int, seq) -> None:
        """Select the row of what the player shows, mark it on the timeline."""
        c = self.columns
        k = self.row_at(epoch, seq)
        tl = self.timeline.view
        if k is None:
            self.log.table.clearSelection()
            self.player.state.set_selection(None)
        else:
            self.log.select_seq(int(c.seq[k]), emit=False)
        tl.select_row(k)
        if seq is not None:
            tl.set_cursor(None if k is None else int(c.t_enq[k]))
        else:
            j = int(np.searchsorted(c.swap_epoch, epoch, "left"))
            swap = j < len(c.swap_epoch) and c.swap_epoch[j] == epoch
            tl.set_cursor(int(c.swap_t[j]) if swap else c.t0 if epoch == 0 else None)
        self.history.upto_seq = seq
        self.history.refresh()
        self.history.select_shown()

    # -- the user picked an update: scrub to it --------------------------------------------
    def show_update(self, seq: int) -> None:
        """Show the back buffer right after the update ``seq`` (its whole row)."""
        row = self.feed.history.row_of(int(seq))
        if row is None:
            return
        shown = self.player.shown
        if shown is not None and shown[1] == row.last_seq:
            return
        self.player.show_seq(row.last_seq)

    # -- element history ---------------------------------------------------------------------
    def follow_element(self, index) -> None:
        self.history.show()
        self.history.raise_()
        self.history.follow(index)
        self.history.select_shown()

    def follow_hovered(self) -> None:
        index = self.player.view.hover_index
        if index is None:
            self.window.statusBar().showMessage("element history: hover over an element first")
            return
        self.follow_element(index)
