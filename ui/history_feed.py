"""``HistoryFeed``: keeps the app's ``UpdateHistory`` fed from the session's manager.

Every debug view (update log, timeline, element history, race flags, diff) reads
the one ``app.history.UpdateHistory`` this object owns, which is built only from
the manager's §4 events: no view keeps a record of its own. The feed reads new
events at most ``POLL_HZ`` times a second and whenever a new front is visible
(``manager.events(since)`` takes the manager's lock for a moment; it never waits
on the worker). The session's sync worker reads the same events for each front
it reads back (``app.front_changes``); the feed takes those (``Session.take_events``)
instead of reading them a second time on the GUI thread, and while they keep
coming its clock does not ask the manager at all. It carries the history across a backend switch: each manager
generation's sequence numbers and epochs are mapped to session-wide ones with the
session's ``seq_offset``/``epoch_offset``.

Signals
-------
sigHistoryChanged(int)   rows were added or changed; the number of rows now (at most
                         ``EMIT_HZ`` times a second: the history is current at once,
                         the views re-read it at that pace)
sigReset()               the history was cleared (a new buffer, not a backend switch)

``StaticHistoryFeed`` is the same face over a history that does not grow (a trace).
"""

from __future__ import annotations

import time

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from app.history import UpdateHistory

POLL_HZ = 10.0
EMIT_HZ = 20.0            # most sigHistoryChanged a second (see HistoryFeed._changed)
MAX_EVENTS_PER_POLL = 200_000
# Bounds for a session that runs for hours: past MAX_ROWS rows (or MAX_MARKS sync
# marks) the oldest are let go of down to KEEP_ROWS (KEEP_MARKS); past PAYLOAD_UNITS
# elements of payload the oldest rows' payloads are let go of (they keep their box).
# Never while a recording needs them (``hold``).
MAX_ROWS, KEEP_ROWS = 1_000_000, 750_000
MAX_MARKS, KEEP_MARKS = 400_000, 300_000
PAYLOAD_UNITS = 1 << 22


class HistoryFeed(QObject):
    sigHistoryChanged = pyqtSignal(int)
    sigReset = pyqtSignal()

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.history = UpdateHistory(fill=0.0)
        self._manager = None
        self.hold = 0            # > 0: a recording reads this history; let go of nothing
        self._fed_at = -1e9      # time.monotonic() when events last came from the worker
        self._emitted_at = -1e9  # ... when sigHistoryChanged was last emitted
        self._emit_timer = QTimer(self)
        self._emit_timer.setSingleShot(True)
        self._emit_timer.timeout.connect(self._changed)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._on_clock)
        self._timer.start(int(1000 / POLL_HZ))
        session.sigManagerChanged.connect(self._on_manager_changed)
        session.sigFrontChanged.connect(lambda *_: self.poll(paced=True))
        self._on_manager_changed()

    def _offsets(self) -> tuple[int, int]:
        return int(self.session.seq_offset), int(self.session.epoch_offset)

    def _on_manager_changed(self) -> None:
        m = self.session.manager
        if m is self._manager:
            return
        if self._manager is None or not self.session.history_continues:
            # A new buffer (or the first): a history of its own.
            fill = float(getattr(m, "fill", 0.0)) if m is not None else 0.0
            self.history = UpdateHistory(fill=fill)
            self.sigReset.emit()
        else:
            self.history.reset_reader()   # a backend switch: the same history goes on
        self._manager = m
        self.poll()

    def _on_clock(self) -> None:
        if time.monotonic() - self._fed_at > 2.0 / POLL_HZ:   # the worker's have stopped
            self.poll(paced=True)

    def _from_worker(self, m, since: int):
        """The events from ``since`` on out of what the worker read, or None when it
        read none since the last call or they do not reach back to ``since``."""
        take = getattr(self.session, "take_events", None)
        got = take(m) if take is not None else None
        if got is None:
            return None
        first, events, nxt = got
        if not first <= since <= nxt:
            return None           # (a gap before them: ask the manager)
        k = 0
        while k < len(events) and events[k].index < since:
            k += 1
        self._fed_at = time.monotonic()
        return events[k:], nxt

    def poll(self, paced: bool = False) -> None:
        """Read what is new; the views hear of it at once (``paced``: within
        1/EMIT_HZ s, as for the polls that every new front and the clock make)."""
        m = self._manager
        if m is None or getattr(m, "closed", False):
            return
        h = self.history
        got = self._from_worker(m, h.next_event)
        try:
            events, nxt = got if got is not None else m.events(h.next_event)
        except Exception:    # closed underneath us: the next manager will come
            return
        if not events and nxt == h.next_event:
            if not paced and self._emit_timer.isActive():
                self._changed(now=True)     # a paced change not told yet: tell it now
            return
        if len(events) > MAX_EVENTS_PER_POLL:
            h.dropped += len(events) - MAX_EVENTS_PER_POLL
            events = events[-MAX_EVENTS_PER_POLL:]
            h.next_event = events[0].index
        seq_offset, epoch_offset = self._offsets()
        h.ingest(events, nxt, seq_offset, epoch_offset)
        if not self.hold:
            h = self.bound(h)
        self._changed(now=not paced)

    def _changed(self, now: bool = False) -> None:
        """``sigHistoryChanged``, at most ``EMIT_HZ`` times a second: each one has every
        view re-read the history (the log's rows, the timeline, the element history),
        and new fronts come up to as often as the view paints. The history itself is
        up to date at once (``history``); a change left over is told within 1/EMIT_HZ s."""
        wait = self._emitted_at + 1.0 / EMIT_HZ - time.monotonic()
        if wait > 0 and not now:
            if not self._emit_timer.isActive():
                self._emit_timer.start(max(1, int(wait * 1000)))
            return
        self._emit_timer.stop()
        self._emitted_at = time.monotonic()
        self.sigHistoryChanged.emit(len(self.history.rows))

    def bound(self, h: UpdateHistory) -> UpdateHistory:
        """Keep ``h`` within the bounds above; the history to read from now on (a new
        one when rows were let go of: views notice the new object and rebuild)."""
        if h.payload_units > PAYLOAD_UNITS:
            h.let_go_payloads(PAYLOAD_UNITS * 3 // 4)
        if len(h.rows) > MAX_ROWS or len(h.marks) > MAX_MARKS:
            h = self.history = h.tail(KEEP_ROWS, KEEP_MARKS)
        return h


class StaticHistoryFeed(QObject):
    """A feed over a history that is complete when it is handed over — a recorded
    trace's (``app.keyframes.TraceIndex.history``): the same ``history`` attribute and
    signals as ``HistoryFeed``, so the update log, the timeline and the element history
    read it unchanged. ``set_history`` replaces it (a trace opened); nothing polls.

    ``covers`` (set by the owner; default: everything) says whether the history holds
    every update up to a position ``(epoch, seq)`` — a long trace's history is capped.
    """

    sigHistoryChanged = pyqtSignal(int)
    sigReset = pyqtSignal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history = UpdateHistory(fill=0.0)
        self.hold = 0        # (as HistoryFeed's; nothing is let go of here anyway)
        self.covers = lambda epoch, seq=None: True

    def set_history(self, history: UpdateHistory) -> None:
        self.history = history
        self.sigReset.emit()
        self.sigHistoryChanged.emit(len(history.rows))

    def poll(self) -> None:
        """Nothing to read: the history is complete (for callers of ``HistoryFeed.poll``)."""
