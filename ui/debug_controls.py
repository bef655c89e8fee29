"""``DebugControls``: stepping that shows — pause, resume, step, run to a seq or an
epoch, watchpoints, and the Front/Back toggle — as a toolbar. What its actions do lives in
two mixins (``ui.debug_stepping``: step and run-to; ``ui.back_buffer_toggle``: the
back buffer), the Watchpoints dialog in ``ui.watch_dialog``, and
``install_debug_docks(window)`` (``ui.debug_docks``) adds the update log, the
timeline and these controls to a ``MainWindow``.

Everything it shows comes from the app's one ``UpdateHistory`` (through the
shared ``HistoryColumns``) and the manager's stats:

* while paused, the log marks the update applied last (blue) and, after a step,
  selects it (its region is outlined on the view);
* when a watch stops the worker (a ``break`` event), the session is put in the
  paused state too, the status line says "stopped before seq 4107 (set by
  racing-producer-2) writing (3, 7)" and the log selects that row (orange);
* the Front/Back toggle shows ``manager.back()`` — the buffer being built — in the
  view, fetched on a short-lived thread and handed back through a queued signal
  (the GUI thread never waits on the manager); every step fetches it again.

Backends without ``capabilities.back``/``.watch`` get these controls disabled,
with a tooltip saying why.

Signals
-------
sigStopped(int)     a watch stopped the worker before this (session-wide) seq
"""
from __future__ import annotations

import threading

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QLabel, QToolBar, QWidget

from .actions import make_action
from .back_buffer_toggle import BackBufferToggle
from .debug_docks import install_debug_docks, link_log_and_timeline  # noqa: F401  (re-exported)
from .debug_stepping import Stepping
from .history_columns import HistoryColumns, region_text
from .watch_dialog import WatchDialog, parse_elements  # noqa: F401  (re-exported)


class DebugControls(Stepping, BackBufferToggle, QToolBar):
    """The stepping toolbar (see the module docstring).

    Parameters
    ----------
    session
        the app's ``Session`` (every manager call goes through it or is guarded here)
    columns
        the ``HistoryColumns`` the log and timeline read
    log
        the ``UpdateLogDock`` whose rows are marked and selected
    view
        the ``BufferView`` the Front/Back toggle draws into

    Signals
    -------
    sigStopped(int)
        a watch stopped the worker before this (session-wide) seq
    """

    sigStopped = pyqtSignal(int)
    _sigBack = pyqtSignal(int, object, object, object)   # generation, back, applied seq, error

    def __init__(self, session, columns: HistoryColumns, log, view, state=None,
                 parent: QWidget | None = None) -> None:
        super().__init__("Debug", parent)
        self.setObjectName("DebugControls")
        self.session = session
        self.columns = columns
        self.log = log
        self.view = view
        self.state = state
        self.watch: tuple[list, list, list] = ([], [], [])
        self.hovered: tuple[int, ...] | None = None
        self.epoch_target: int | None = None
        self.break_seq: int | None = None       # the watch stop being shown (session-wide seq)
        self._breaks_seen = 0
        self._stepping = False                  # a step was asked: select what it applied
        self._last_applied_row: int | None = None
        self._resay: str | None = None
        self._gen = 0
        self._fetching = False
        self._fetch_again = False
        self._thread: threading.Thread | None = None
        self._restore_texture = None   # the view's texture source to go back to
        self.showing_back = False
        self.back_seq: int | None = None        # the back shown holds the updates through this
        self._sigBack.connect(self._on_back, Qt.ConnectionType.QueuedConnection)

        def act(text, slot, key=None, tip=""):
            return make_action(self, text, slot, *([key] if key else []), tip=tip, add_to=self)

        self.resume_action = act("Resume", lambda: self.set_paused(False), "F5",
                                 "Let the worker apply updates again")
        self.pause_action = act("Pause", lambda: self.set_paused(True), "Shift+F5",
                                "Stop the worker before its next update")
        self.step_action = act("Step", self.step, None,
                               "Apply exactly the next queued update (F10)")
        self.run_seq_action = act("Run to seq…", self.ask_run_to_seq, "Ctrl+G",
                                  "Step until a sequence number is applied")
        self.run_epoch_action = act("Run to epoch…", self.ask_run_to_epoch, None,
                                    "Resume, and pause when an epoch becomes visible")
        self.addSeparator()
        self.watch_action = act("Watchpoints…", self.edit_watch, "Ctrl+B",
                                "Pause before an update that writes an element, has an op "
                                "or comes from a producer")
        self.back_action = act("Show back", self.toggle_back, None,
                               "Show the back buffer (the one being built) instead of the front")
        self.back_action.setCheckable(True)
        self.addSeparator()
        self.status = QLabel()
        self.status.setObjectName("debug_status")
        self.status.setContentsMargins(6, 0, 6, 0)
        self.addWidget(self.status)

        session.sigPausedChanged.connect(self._on_paused)
        session.sigManagerChanged.connect(self._on_manager)
        session.sigFrontChanged.connect(self._on_front)
        session.sigSyncFinished.connect(self._on_sync_finished)
        columns.sigRowsChanged.connect(self._on_rows)
        columns.sigReset.connect(self._on_reset)
        self._on_manager()

    # -- state -------------------------------------------------------------------------
    @property
    def manager(self):
        return self.session.manager

    def _caps(self):
        m = self.manager
        return None if m is None else m.capabilities

    def _seq_offset(self) -> int:
        return int(self.session.seq_offset)

    def say(self, text: str) -> None:
        self.session.say(text)

    def suggested_element(self) -> tuple[int, ...] | None:
        """The hovered element, else the top-left of the view's selection."""
        if self.hovered is not None:
            return tuple(self.hovered)
        sel = self.state.selection if self.state is not None else None
        if sel is None:
            return None
        (r0, _), (c0, _) = sel
        ndim = len(self.session.shape)
        if ndim == 1:
            return (c0,)
        if ndim == 3:
            return (self.state.z, r0, c0)
        return (r0, c0)

    def _enable(self) -> None:
        caps = self._caps()
        paused = self.session.paused
        has = self.manager is not None and not self.manager.ended
        backend = self.session.backend or "this"
        self.resume_action.setEnabled(has and paused)
        self.pause_action.setEnabled(has and not paused)
        self.step_action.setEnabled(has and paused)
        self.run_seq_action.setEnabled(has)
        self.run_epoch_action.setEnabled(has)
        can_back = bool(caps and caps.back)
        self.back_action.setEnabled(can_back and paused)
        self.back_action.setToolTip(
            "Show the back buffer (the one being built) instead of the front"
            if can_back and paused else
            ("Pause first: the back changes while the worker runs" if can_back else
             f"the {backend} backend cannot show its back buffer yet"))
        can_watch = bool(caps and caps.watch)
        self.watch_action.setEnabled(can_watch)
        self.watch_action.setToolTip(
            "Pause before an update that writes an element, has an op or comes from a "
            "producer (Ctrl+B)" if can_watch else f"the {backend} backend has no watchpoints yet")
        self._update_status()

    def _update_status(self) -> None:
        s = self.session
        st = s.last_stats
        parts = []
        ended = self.manager.ended if self.manager is not None else ""
        if ended:
            parts.append("ended: the program is gone")
        elif self.break_seq is not None:
            parts.append(f"stopped before seq {self.break_seq}")
        elif s.paused:
            parts.append("paused")
        else:
            parts.append("running")
        if st is not None:
            off = self._seq_offset()
            parts.append(f"applied through seq {st.applied_seq + off}")
            parts.append(f"{st.pending} queued")
        if self.epoch_target is not None:
            parts.append(f"running to epoch {self.epoch_target}")
        elems, ops, producers = self.watch
        if elems or ops or producers:
            w = [", ".join(f"({', '.join(map(str, e))})" for e in elems), ", ".join(ops),
                 ", ".join(producers)]
            parts.append("watch: " + "; ".join(x for x in w if x))
        if self.showing_back:
            parts.append("view: BACK buffer" + (f" (through seq {self.back_seq})"
                                                if self.back_seq is not None else ""))
        self.status.setText("  ·  ".join(parts))

    # -- session events ------------------------------------------------------------------
    def _on_manager(self) -> None:
        self._gen += 1
        if self.showing_back:
            # The window has set up the view for the new manager: nothing to restore.
            self.showing_back, self._restore_texture = False, None
            self.back_action.setChecked(False)
            self.back_seq = None
        self.break_seq = None
        elems, ops, producers = self.watch
        if elems or ops or producers:
            caps = self._caps()
            if caps is not None and caps.watch:
                self.set_watch(elems, ops, producers)
            else:
                self.watch = ([], [], [])
                self.say(f"watchpoints dropped: the {self.session.backend} backend has none")
        self._enable()

    def _on_paused(self, paused: bool) -> None:
        if not paused:
            self.break_seq = None
            self.log.mark_rows(None, None)
            self._last_applied_row = None
            if self.showing_back:
                self.show_back(False)
        else:
            self._mark_applied(select=False)
        self._enable()

    def _on_front(self, epoch: int, _front) -> None:
        if self.epoch_target is not None and epoch >= self.epoch_target:
            target, self.epoch_target = self.epoch_target, None
            self.set_paused(True)
            self.say(f"paused: epoch {epoch} is visible (ran to epoch {target})")
        if self.showing_back:
            self._fetch_back()       # the window drew the new front: draw the back again
        self._update_status()

    def _on_sync_finished(self, _req: int, _epoch: int, error: str) -> None:
        if error and self._resay:
            self.say(self._resay)    # a sync that timed out on the stop buried the stop message
            self._resay = None

    def _on_reset(self) -> None:
        self._breaks_seen = 0
        self.break_seq = None
        self._last_applied_row = None

    def _on_rows(self, *_a) -> None:
        breaks = self.columns.breaks
        if len(breaks) > self._breaks_seen:
            self._breaks_seen = len(breaks)
            self._on_break(breaks[-1][1])
        if self.session.paused:
            self._mark_applied(select=self._stepping)
        self._update_status()

    def _mark_applied(self, select: bool) -> None:
        c = self.columns
        k = c.newest_applied_row()
        stop = None
        if self.break_seq is not None:
            stop = c.history.row_index(self.break_seq)
            r = None if stop is None else c.history.rows[stop]
            if r is not None and r.seq + r.applied > self.break_seq:
                self.break_seq, stop = None, None       # stepped past the stop
        self.log.mark_rows(k, stop)
        if k is not None and k != self._last_applied_row:
            if select and self.break_seq is None:
                r = c.history.rows[k]
                self.log.select_seq(r.seq)
                done = r.seq + r.applied - 1
                what = f"seq {done}" if r.count == 1 else f"seq {done} (of {r.seq}–{r.last_seq})"
                self.say(f"stepped: applied {what}, {r.op} by {r.producer}")
                self._stepping = False
            self._last_applied_row = k
            if self.showing_back:
                self._fetch_back()

    def _on_break(self, seq: int) -> None:
        """A watch stopped the worker before ``seq`` (session-wide)."""
        self.epoch_target = None
        self.break_seq = seq
        if not self.session.paused:
            self.session.set_paused(True)   # the worker paused itself: say so everywhere
        text = self.stop_text(seq)
        self.say(text)
        self._resay = text
        self.log.select_seq(seq)
        self._mark_applied(select=False)
        self.sigStopped.emit(seq)
        self._update_status()

    def stop_text(self, seq: int) -> str:
        """"stopped before seq 4107 (set by racing-producer-2) writing (3, 7)"."""
        r = self.columns.history.row_of(seq)
        if r is None:
            return f"stopped before seq {seq} (a watchpoint)"
        if r.indices is not None:
            where = "(" + ", ".join(str(int(i)) for i in r.indices[seq - r.seq]) + ")"
        else:
            hit = [e for e in self.watch[0] if r.touches(e)]
            if hit:
                where = "(" + ", ".join(map(str, hit[0])) + ")"
            elif r.op == "set" and r.region is not None:
                where = "(" + ", ".join(str(a) for a, _ in r.region) + ")"
            else:
                where = (region_text(r.region) if r.region is not None
                         else "(where: not recorded by this backend)")
        return f"stopped before seq {seq} ({r.op} by {r.producer}) writing {where}"
    # -- watchpoints ----------------------------------------------------------------------------
    def edit_watch(self) -> None:
        dlg = WatchDialog(self, self.window())
        dlg.exec()

    def set_watch(self, elements, ops, producers) -> str | None:
        """Set the manager's watch (all empty: clear it); returns the problem, if any."""
        m = self.manager
        if m is None:
            return "no buffer manager is open"
        if not m.capabilities.watch:
            return f"the {self.session.backend} backend has no watchpoints yet"
        try:
            m.set_watch(elements=list(elements), ops=list(ops), producers=list(producers))
        except (ValueError, TypeError) as exc:
            return str(exc)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        self.watch = ([tuple(e) for e in elements], list(ops), list(producers))
        self.say("watchpoints cleared" if not (elements or ops or producers)
                 else "watching: " + self.status_watch_text())
        self._update_status()
        return None

    def status_watch_text(self) -> str:
        elems, ops, producers = self.watch
        parts = []
        if elems:
            parts.append("writes " + ", ".join(f"({', '.join(map(str, e))})" for e in elems))
        if ops:
            parts.append("op " + "/".join(ops))
        if producers:
            parts.append("from " + ", ".join(producers))
        return "; ".join(parts)
