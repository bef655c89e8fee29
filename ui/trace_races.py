"""``RaceFinder``: a trace's races (``UpdateHistory.races``), worked out off the GUI
thread where that is costly.

An epoch of a few hundred updates takes a moment; one of 50 000 updates from racing
producers takes many seconds (every pair of overlapping boxes is compared). The trace
player asks here: an epoch whose races are known already, or small
(``ui.update_log_model.RACE_ROWS`` updates or fewer), is answered at once; a larger one
is worked out on a thread of its own (``TaskThread``, not the player's scrub thread:
scrubbing never waits for it), and ``sigKnown`` says when — the player then outlines
them, the update log redraws that epoch's rows. ``search`` (Next race) walks epochs the
same way: the cheap ones here, the rest of the walk on the thread (``sigFound``).

``PlayerRaces`` is the player's side, a mixin of ``TracePlayer``: the race flag of the
epoch shown (outlined on the view, named under it) and Next race.

Signals
-------
sigKnown(int)        the races of this epoch were worked out
sigFound(object)     a search that went to the thread ended: the epoch with races, or None
"""

from __future__ import annotations

from PyQt6.QtCore import QObject, Qt, pyqtSignal

from app.history import UpdateHistory

from .overlays import RACE_COLOR
from .task_thread import TaskThread
from .update_log_model import RACE_ROWS

PENDING = "pending"     # search(): the walk goes on on the thread; sigFound will tell


class RaceFinder(QObject):
    sigKnown = pyqtSignal(int)
    sigFound = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks = TaskThread("bufferscope-races", self)
        self._tasks.sigDone.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self._search_id = 0

    @staticmethod
    def cheap(h: UpdateHistory, epoch: int) -> bool:
        return h.races_known(epoch) or h.epoch_size(epoch) <= RACE_ROWS

    def races_now(self, h: UpdateHistory, epoch: int) -> list | None:
        """The races of ``epoch`` when they are cheap to tell; otherwise None, and they
        are worked out on the thread (``sigKnown(epoch)`` when done)."""
        if epoch <= 0:
            return []
        if self.cheap(h, epoch):
            return h.races(epoch)
        self._tasks.submit("races", lambda: (h.races(epoch), epoch)[1])   # the newest waits
        return None

    def search(self, h: UpdateHistory, first: int, last: int) -> int | str | None:
        """The first epoch in ``first … last`` with races: its number, None when there
        is none, or ``PENDING`` when the walk reached a costly epoch and goes on on the
        thread (``sigFound`` gives its answer; a newer search replaces it)."""
        for epoch in range(first, last + 1):
            if not self.cheap(h, epoch):
                self._search_id += 1
                sid = self._search_id

                def walk(start: int = epoch, sid: int = sid) -> tuple[int, int | None]:
                    for e in range(start, last + 1):
                        if h.races(e):
                            return sid, e
                    return sid, None

                self._tasks.submit("search", walk)
                return PENDING
            if h.races(epoch):
                return epoch
        return None

    def cancel_search(self) -> None:
        self._search_id += 1

    def _on_done(self, key: str, result, error) -> None:
        if error is not None:
            return
        if key == "search":
            sid, epoch = result
            if sid == self._search_id:
                self.sigFound.emit(epoch)
            return
        self.sigKnown.emit(int(result))

    def close(self) -> None:
        """Drop what waits; a computation under way cannot be interrupted: its
        (daemon) thread is not waited for long."""
        self._tasks.close(timeout=2.0)


class PlayerRaces:
    """The race flag and Next race of ``TracePlayer`` (over its ``history``, ``races``:
    a ``RaceFinder``, ``shown``, ``view``, ``info``)."""

    def _show_races(self, epoch: int) -> str:
        """Outline the races of ``epoch`` on the view (the live app's race flag); the
        text that names them, "" when none. A large epoch's are worked out on the
        race thread (``RaceFinder``) and shown when they are known."""
        h = self.history
        races = [] if h is None else self.races.races_now(h, epoch)
        if races is None:
            self.view.overlays.clear("races")
            return f" — races: being worked out ({h.epoch_size(epoch)} updates)…"
        self.view.overlays.set("races", [r.overlap for r in races], RACE_COLOR)
        if not races:
            return ""
        r = races[-1]
        return (f" — {len(races)} race{'s' if len(races) > 1 else ''}: e.g. seq {r.winner.seq} "
                f"({r.winner.producer}) won over seq {r.loser.seq} ({r.loser.producer})")

    def _on_races_known(self, epoch: int) -> None:
        if self.shown == (epoch, None):
            self.info.setText(self._info_base + self._show_races(epoch))

    def next_race(self) -> int | None:
        """Show the next epoch after the one shown that has races; its number, or None
        (also while a search through large epochs goes on on the race thread: it
        shows the epoch it finds)."""
        h = self.history
        if h is None:
            return None
        current = self.shown[0] if self.shown else 0
        found = self.races.search(h, current + 1, self.last_epoch)
        if found == PENDING:
            self.sigMessage.emit(f"looking for the next race after epoch {current}…")
            return None
        self._on_race_found(found, current)
        return found

    def _on_race_found(self, epoch: int | None, after: int | None = None) -> None:
        if epoch is not None:
            self.show_epoch(epoch)
            return
        after = (self.shown[0] if self.shown else 0) if after is None else after
        self.sigMessage.emit(f"no race after epoch {after}"
                             + ("" if self.index.history_complete else
                                " (in the updates this player indexed)"))
