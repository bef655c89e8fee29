"""The debug views that read the element history, installed into a ``MainWindow``.

``install_history_docks(window)`` adds, all reading the app's one
``UpdateHistory`` (``window.history_feed``, made here when the window has none):

* the **element history** dock (``ui.element_history``): a click on the view
  follows that element, Ctrl+H follows the hovered one; the followed element is
  outlined (overlay ``"element"``);
* the **race flag** (``RaceFlag``): the races of the newest epoch shown that made
  updates visible (``history.races``) outlined in red over their overlaps
  (overlay ``"races"``) and counted in a status line under the hover readout
  ("3 races at epoch 12");
  View ▸ Show races toggles it;
* the **diff** (``EpochDiff``): View ▸ Show diff (Ctrl+D) marks the elements the
  last synchronize changed (overlay ``"diff"``), compared bit for bit with the
  previous epoch's front (NaN = NaN), with their count in that status line. While
  it is on, the session reads the front back at every epoch (the GL texture path
  otherwise reads it back only a few times a second);
* the **hover readout**'s last writer (``last_write_text``), read from the
  history: the newest visible update that wrote the element.

Each is reachable as ``window.history_docks.<name>``.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QLabel

from app.history import UpdateHistory, changed_mask

from .element_history import UNRECORDED, ElementHistoryDock
from .history_feed import HistoryFeed
from .overlays import DIFF_COLOR, ELEMENT_COLOR, RACE_COLOR, SELECTED_ROW_COLOR, Overlays

MAX_ELEMENT_BOXES = 256    # outline_row: element sets up to this size get a box each


def group(n: int) -> str:
    """1234567 -> '1 234 567'."""
    return f"{n:,}".replace(",", " ")


def last_write_text(history: UpdateHistory, index: tuple[int, ...], epoch: int | None,
                    upto_seq: int | None = None) -> str:
    """The readout's "last write: ..." for element ``index`` of the front of ``epoch``
    (or of the back buffer right after update ``upto_seq``: a trace scrubbed by seq)."""
    try:
        row = history.last_writer(index, epoch, upto_seq)
    except Exception as exc:
        return f"  (history unavailable: {type(exc).__name__}: {exc})"
    if row is None:
        if history.dropped:
            return ("  last write: not in the history (events were lost: a wrapped ring, "
                    "or skipped by an attached program)")
        return "  last write: none since the buffer was opened"
    if not row.detailed:
        why = "payload dropped from the event ring" if row.payload_dropped else UNRECORDED
        return (f"  last write: not known ({why}; newest visible update: seq {row.seq} "
                f"{row.op} by {row.producer})")
    seq = str(row.seq) if row.count == 1 else f"{row.seq}…{row.last_seq}"
    return f"  last write: seq {seq} {row.op} by {row.producer}"


def outline_element(overlays: Overlays, index) -> None:
    """Outline the element the element history follows (overlay ``"element"``); None
    clears it."""
    if index is None:
        overlays.clear("element")
    else:
        overlays.set("element", [tuple((i, i + 1) for i in index)], ELEMENT_COLOR, 4.0, "two-tone")


class RaceFlag(QObject):
    """Outlines the races of the epoch shown and counts them.

    Signals
    -------
    sigRacesChanged(int, int)   the epoch looked at and its number of races
    """

    sigRacesChanged = pyqtSignal(int, int)

    def __init__(self, feed: HistoryFeed, overlays: Overlays, shown_epoch, parent=None) -> None:
        super().__init__(parent)
        self.feed, self.overlays, self.shown_epoch = feed, overlays, shown_epoch
        self.enabled = True
        self.epoch: int | None = None
        self.races: list = []
        self.unknown = 0
        self.pending = 0         # > 0: the epoch's races (of this many updates) are being worked out
        self._key = None
        self._finder = None      # a RaceFinder, made for the first large epoch
        self._holding = False    # the feed holds its history while the race thread reads it
        feed.sigHistoryChanged.connect(lambda _n: self.refresh())
        feed.sigReset.connect(self.refresh)

    def _races_now(self, h, epoch: int) -> list | None:
        """The races of ``epoch``, or None while a large epoch's are worked out off the
        GUI thread (a 50 000-update epoch of racing producers takes many seconds)."""
        from .trace_races import RaceFinder

        if self._finder is None:
            if RaceFinder.cheap(h, epoch):
                return h.races(epoch)
            self._finder = RaceFinder(self)
            self._finder.sigKnown.connect(self._on_known)
        races = self._finder.races_now(h, epoch)
        self._hold(races is None)
        return races

    def _hold(self, on: bool) -> None:
        """While the race thread reads the history's rows, the feed lets go of nothing
        (letting go of a row's payload under it would break its computation)."""
        if on != self._holding:
            self._holding = on
            self.feed.hold += 1 if on else -1

    def _on_known(self, epoch: int) -> None:
        if epoch == self.epoch:
            self._key = None
            self.refresh()

    def close(self) -> None:
        """Stop the race thread, if one was started (the window closes)."""
        if self._finder is not None:
            self._finder.close()

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        self._key = None
        self.refresh()

    def refresh(self) -> None:
        h = self.feed.history
        if not self.enabled:
            self.overlays.clear("races")
            if self._key != "off":
                self._key = "off"
                self.sigRacesChanged.emit(-1, 0)
            return
        epoch = h.last_epoch_with_rows(self.shown_epoch())
        key = (id(h), epoch, None if epoch is None else len(h.rows_visible_at(epoch)))
        if key == self._key:
            return
        self._key = key
        self.epoch = epoch
        rows = [] if epoch is None else h.rows_visible_at(epoch)
        self.unknown = sum(not r.detailed for r in rows)   # rows races cannot be told for
        races = [] if epoch is None else self._races_now(h, epoch)
        self.pending = 0 if races is not None else len(rows)
        self.races = races or []
        boxes = list(dict.fromkeys(r.overlap for r in self.races))
        self.overlays.set("races", boxes, RACE_COLOR, 2.0)
        self.sigRacesChanged.emit(-1 if epoch is None else epoch, len(self.races))

    def text(self) -> str:
        if not self.enabled or self.epoch is None:
            return ""
        if self.pending:
            return f"races at epoch {self.epoch}: being worked out ({self.pending} updates)…"
        n = len(self.races)
        text = f"{n} race{'s' if n != 1 else ''} at epoch {self.epoch}"
        if self.unknown and not n:
            text = f"races at epoch {self.epoch}: not known ({UNRECORDED})"
        elif self.unknown:
            text += f" (more not known among {self.unknown} updates: {UNRECORDED})"
        return text


class EpochDiff(QObject):
    """Marks the elements the last synchronize changed (while it is on).

    Signals
    -------
    sigDiffChanged(int, int)    the epoch and how many elements changed at it
    """

    sigDiffChanged = pyqtSignal(int, int)

    def __init__(self, session, overlays: Overlays, parent=None) -> None:
        super().__init__(parent)
        self.session, self.overlays = session, overlays
        self.on = False
        self.epoch: int | None = None
        self.since: int | None = None     # the epoch compared with
        self.count = 0
        self.mask: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._prev_epoch: int | None = None
        wanted = session.front_wanted
        session.front_wanted = lambda: self.on or wanted()   # a read-back per epoch while on
        session.sigFrontChanged.connect(self._on_front)
        session.sigManagerChanged.connect(self._forget)

    def set_on(self, on: bool) -> None:
        self.on = bool(on)
        self._forget()
        if self.on:
            self.session.refresh_front()       # the first front to compare with
            self.session.say("diff on: the front is read back at every epoch while it is shown")

    def _forget(self) -> None:
        self._prev = self._prev_epoch = self.mask = self.epoch = self.since = None
        self.count = 0
        self.overlays.clear("diff")
        self.sigDiffChanged.emit(-1, 0)

    def _on_front(self, epoch: int, front) -> None:
        if not self.on or front is None:
            return
        cur = np.array(front, dtype=np.float32, copy=True)
        if self._prev is not None and epoch != self._prev_epoch:
            self.mask = changed_mask(self._prev, cur)
            self.count = int(np.count_nonzero(self.mask))
            self.epoch, self.since = int(epoch), self._prev_epoch
            if self.count:
                self.overlays.set_marks("diff", self.mask, DIFF_COLOR)
            else:
                self.overlays.clear("diff")
            self.sigDiffChanged.emit(self.epoch, self.count)
        self._prev, self._prev_epoch = cur, int(epoch)

    def text(self) -> str:
        if not self.on:
            return ""
        if self.epoch is None:
            return "diff: waiting for the next epoch"
        n = self.count
        text = f"{group(n)} element{'s' if n != 1 else ''} changed at epoch {self.epoch}"
        if self.since is not None and self.since != self.epoch - 1:
            text += f" (since epoch {self.since})"
        return text


class HistoryDocks(QObject):
    """What ``install_history_docks`` made (see the module docstring)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        feed = getattr(window, "history_feed", None)
        if feed is None:
            feed = HistoryFeed(window.session, window)
            window.history_feed = feed
        self.feed = feed
        view = window.view
        self.overlays: Overlays = view.overlays
        self.dock = ElementHistoryDock(feed, view, window)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.dock.hide()
        self.races = RaceFlag(feed, self.overlays, self._shown_epoch, self)
        self.diff = EpochDiff(window.session, self.overlays, self)
        self.status = QLabel("")
        self.status.setObjectName("debug_status")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setFont(window.readout.font())
        self.status.setMinimumHeight(self.status.fontMetrics().height())   # empty or not
        center = window.centralWidget().layout()   # under the hover readout: no width added
        center.insertWidget(center.indexOf(window.readout) + 1, self.status)
        self.races.sigRacesChanged.connect(lambda *_: self._update_status())
        self.diff.sigDiffChanged.connect(lambda *_: self._update_status())
        window.session.sigFrontChanged.connect(lambda *_: self.races.refresh())
        view.sigElementClicked.connect(self.follow)
        self.dock.sigElementChanged.connect(self._outline_element)
        self._build_actions()

    def _shown_epoch(self) -> int:
        return self.window.session.epoch      # the newest visible (the view draws it next)

    def _build_actions(self) -> None:
        w = self.window
        menu = next((a.menu() for a in w.menuBar().actions() if a.text() == "&View"), None)
        if menu is None:
            menu = w.menuBar().addMenu("&View")
        menu.addSeparator()
        self.history_action = self.dock.toggleViewAction()
        self.history_action.setText("Element history")
        menu.addAction(self.history_action)
        self.follow_action = QAction("History of the hovered element", w)
        self.follow_action.setShortcut(QKeySequence("Ctrl+H"))
        self.follow_action.triggered.connect(self.follow_hovered)
        menu.addAction(self.follow_action)
        self.diff_action = QAction("Show diff", w, checkable=True)
        self.diff_action.setShortcut(QKeySequence("Ctrl+D"))
        self.diff_action.toggled.connect(self.diff.set_on)
        menu.addAction(self.diff_action)
        self.races_action = QAction("Show races", w, checkable=True)
        self.races_action.setChecked(True)
        self.races_action.toggled.connect(self.races.set_enabled)
        menu.addAction(self.races_action)

    def follow(self, index) -> None:
        """Show the element history of ``index``."""
        self.dock.show()
        self.dock.raise_()
        self.dock.follow(index)

    def follow_hovered(self) -> None:
        index = self.window.view.hover_index
        if index is None:
            self.window.session.say("element history: hover over an element first")
            return
        self.follow(index)

    def _outline_element(self, index) -> None:
        outline_element(self.overlays, index)

    def outline_row(self, row) -> None:
        """Outline what update-history row ``row`` wrote (overlay ``"selected-row"``,
        white dashed): its region, or each element of a small element set (else the
        box around them); None or a row without details clears it. For the update log."""
        boxes = []
        if row is not None and row.indices is not None and len(row.indices) <= MAX_ELEMENT_BOXES:
            boxes = [tuple((int(i), int(i) + 1) for i in idx) for idx in row.indices]
        elif row is not None and row.bbox() is not None:
            boxes = [row.bbox()]
        self.overlays.set("selected-row", boxes, SELECTED_ROW_COLOR, 2.0, "dashed")

    def last_write_text(self, index: tuple[int, ...], epoch: int | None) -> str:
        return last_write_text(self.feed.history, index, epoch)

    def _update_status(self) -> None:
        parts = [t for t in (self.races.text(), self.diff.text()) if t]
        self.status.setText("  ·  ".join(parts))   # always shown: the view never jumps


def install_history_docks(window) -> HistoryDocks:
    """Install the element history, race flag and diff into ``window`` (a MainWindow
    with ``session``, ``view`` and a menu bar); ``window.history_docks`` afterwards."""
    window.history_docks = HistoryDocks(window)
    return window.history_docks
