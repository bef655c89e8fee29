"""File-menu actions for traces (SPEC §7 "Traces"): record the live session, open a
trace in the player, export Perfetto JSON, run lockstep C vs GL.

``install_trace_menu(main_window)`` adds them to the window's File menu (before
Quit) and returns the ``TraceActions`` object that carries them out, also kept as
``main_window.trace_actions``. The recording reads the app's one history — the
window's ``history_feed`` (a ``ui.history_feed.HistoryFeed``) when it has one, else
a feed made here on the window's session — and keeps no record of its own
(``app.recording``). Nothing here waits on the manager except the keyframe's
read of the front when Record starts (an explicit action, like Export front).

Signals
-------
sigRecordingChanged(bool)   recording started (True) or stopped
sigMessage(str)             what happened (shown in the window's status bar)
"""

from __future__ import annotations

import json

from PyQt6.QtCore import QEvent, QObject, pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QFileDialog

from app.atomic import OutputPathError, atomic_open, check_output_path
from app.recording import Recording, RecordingError, RecordingSummary


class TraceActions(QObject):
    sigRecordingChanged = pyqtSignal(bool)
    sigMessage = pyqtSignal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        feed = getattr(window, "history_feed", None)
        if feed is None:
            from .history_feed import HistoryFeed

            feed = HistoryFeed(self.session, self)
        self.feed = feed
        self.feed.sigReset.connect(self._on_history_reset)
        # A recording reads the history at stop: nothing of it is let go of meanwhile.
        self.sigRecordingChanged.connect(self._hold_history)
        self.recording: Recording | None = None
        self.record_path: str | None = None
        self.last_summary: RecordingSummary | None = None
        self.players: list = []
        self.lockstep_views: list = []
        window.installEventFilter(self)     # the window's Close closes ours too
        self.sigMessage.connect(window.statusbar.message)

    def eventFilter(self, obj, ev) -> bool:
        # Qt may still deliver events while this object's Python half is being torn
        # down (its attributes already gone): look the window up defensively.
        window = self.__dict__.get("window")
        if window is not None and obj is window and ev.type() == QEvent.Type.Close:
            if self.recording is not None:
                self.stop_recording()
            self.close_all()
        return False

    # -- recording -------------------------------------------------------------------------
    def start_recording(self, path: str) -> bool:
        """Start recording the live session into ``path`` (written when it stops)."""
        if self.recording is not None:
            self.sigMessage.emit(f"already recording into {self.record_path}")
            return False
        try:
            check_output_path(path)
        except OutputPathError as exc:
            self.sigMessage.emit(f"cannot record: {exc.strerror or exc}")
            return False
        m = self.session.manager
        if m is None:
            self.sigMessage.emit("cannot record: no buffer manager is open")
            return False
        self.feed.poll()
        try:
            self.recording = Recording.start(
                m, self.feed.history, int(getattr(self.session, "seq_offset", 0)),
                int(getattr(self.session, "epoch_offset", 0)))
        except Exception as exc:
            self.sigMessage.emit(f"cannot record: {type(exc).__name__}: {exc}")
            return False
        self.record_path = path
        self.sigMessage.emit(f"recording from epoch {self.recording.start_epoch} into {path} "
                             "(written when you stop)")
        self.sigRecordingChanged.emit(True)
        return True

    def stop_recording(self) -> RecordingSummary | None:
        """Stop and write the recording atomically; None (and a message saying why)
        when it could not be written faithfully."""
        rec, path = self.recording, self.record_path
        if rec is None:
            return None
        self.feed.poll()
        self.recording = None
        self.sigRecordingChanged.emit(False)
        try:
            s = rec.write(path)
        except RecordingError as exc:
            self.sigMessage.emit(f"recording not written: {exc}")
            return None
        except OSError as exc:
            self.sigMessage.emit(f"recording not written: cannot write {path}: {exc.strerror or exc}")
            return None
        self.last_summary = s
        self.sigMessage.emit(f"recorded epochs {s.first_epoch}–{s.last_epoch} ({s.epochs} epochs, "
                             f"{s.updates} updates) to {path}")
        return s

    def _hold_history(self, recording: bool) -> None:
        self.feed.hold = max(0, self.feed.hold + (1 if recording else -1))

    def _on_history_reset(self) -> None:
        if self.recording is not None:
            self.recording = None
            self.sigRecordingChanged.emit(False)
            self.sigMessage.emit("recording abandoned: a new buffer was opened (nothing written)")

    # -- traces ----------------------------------------------------------------------------
    def open_trace(self, path: str):
        """A player window on ``path`` (read off the GUI thread)."""
        from .trace_window import TracePlayerWindow

        w = TracePlayerWindow(path)
        w.show()
        self.players.append(w)
        return w

    def export_perfetto(self, path: str) -> bool:
        """The live session's ordering events (what the ring still holds) as
        Chrome/Perfetto trace-event JSON, written atomically."""
        from app.perfetto import trace_events_from_events

        m = self.session.manager
        if m is None:
            self.sigMessage.emit("export: no buffer manager is open")
            return False
        try:
            events, _ = m.events(0)
            doc = trace_events_from_events(events)
            with atomic_open(path, "w") as fh:
                json.dump(doc, fh, separators=(",", ":"), allow_nan=False)
        except (OSError, ValueError) as exc:
            self.sigMessage.emit(f"Perfetto export failed: {exc}")
            return False
        self.sigMessage.emit(f"wrote {len(doc['traceEvents'])} trace events of {len(events)} "
                             f"ordering events to {path} (open it in ui.perfetto.dev)")
        return True

    def open_lockstep(self, source=None, backends=("c", "gl"), opener=None):
        """A lockstep window on ``source`` (a trace path; default: the trace open in the
        newest player, else the last recording)."""
        from .lockstep_view import LockstepView

        if source is None:
            for p in reversed(self.players):
                if p.player.index is not None:
                    source = p.player.index.path
                    break
        if source is None and self.last_summary is not None:
            source = self.last_summary.path
        if source is None:
            source, _ = QFileDialog.getOpenFileName(self.window, "Lockstep on which trace?", "",
                                                    "Traces (*.jsonl);;All files (*)")
            if not source:
                return None
        w = LockstepView(source, backends, opener=opener)
        w.show()
        self.lockstep_views.append(w)
        return w

    def close_all(self) -> None:
        """Close the windows opened from here (their threads are joined)."""
        for w in [*self.players, *self.lockstep_views]:
            w.close()

    # -- dialogs -----------------------------------------------------------------------------
    def _record_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Record the session into",
                                              "session.jsonl", "Traces (*.jsonl)")
        if path:
            self.start_recording(path)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open trace", "",
                                              "Traces (*.jsonl);;All files (*)")
        if path:
            self.open_trace(path)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export Perfetto JSON",
                                              "session-perfetto.json", "JSON (*.json)")
        if path:
            self.export_perfetto(path)


def install_trace_menu(main_window) -> TraceActions:
    """Add File ▸ Record…, Stop recording, Open trace…, Export Perfetto…, Lockstep C vs
    GL… to ``main_window`` (before Quit when there is one)."""
    actions = TraceActions(main_window)
    file_menu = None
    for act in main_window.menuBar().actions():
        if act.menu() is not None and act.text().replace("&", "") == "File":
            file_menu = act.menu()
            break
    if file_menu is None:
        file_menu = main_window.menuBar().addMenu("&File")
    before = getattr(main_window, "quit_action", None)

    def add(text: str, slot, key: str | None = None) -> QAction:
        a = QAction(text, main_window)
        if key:
            a.setShortcut(key)
        a.triggered.connect(slot)
        if before is not None:
            file_menu.insertAction(before, a)
        else:
            file_menu.addAction(a)
        return a

    actions.record_action = add("Record…", actions._record_dialog)
    actions.stop_action = add("Stop recording", actions.stop_recording)
    actions.stop_action.setEnabled(False)
    actions.open_action = add("Open trace…", actions._open_dialog, "Ctrl+O")
    actions.perfetto_action = add("Export Perfetto…", actions._export_dialog)
    actions.lockstep_action = add("Lockstep C vs GL…", lambda: actions.open_lockstep())
    if before is not None:
        file_menu.insertSeparator(before)

    def on_recording(on: bool) -> None:
        actions.record_action.setEnabled(not on)
        actions.stop_action.setEnabled(on)

    actions.sigRecordingChanged.connect(on_recording)
    main_window.trace_actions = actions
    return actions
