"""``TracePlayer``: a recorded trace in the app — open it, scrub to any epoch or seq, play.

The player owns its own ``DisplayState`` and ``BufferView`` (the live session's view
is not touched) and an ``app.keyframes.TraceIndex``. Everything slow runs on one
``TaskThread``: opening the trace (with a progress bar and Cancel; a malformed trace
names its line and leaves the previous trace loaded) and every scrub request (the
newest request replaces one still waiting, so dragging the slider never queues up
work). The GUI thread only draws the fronts that come back.

Controls: a slider over epochs (0 = the initial buffer), a seq spin box ("Go":
the back buffer right after that update), play/pause at a chosen rate (epochs/s).
Keys: Left/Right step an epoch, Home/End jump to the first/last epoch, Space plays.

``TracePlayerWindow`` is the player as a window with a status bar and a File menu
(``bufferscope open TRACE``; File ▸ Open trace… in the main window).

Signals
-------
sigLoaded(object)        a trace was opened: its ``TraceIndex``
sigShown(int, object)    a front is shown: its epoch, and the seq (None: an epoch)
sigMessage(str)          something the user should read (errors name the line)
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from app.keyframes import Cancelled, TraceIndex
from app.trace import TraceError

from .buffer_view import BufferView
from .color_bar import ColorBar
from .display_state import DisplayState
from .overlays import RACE_COLOR


class TaskThread(QObject):
    """One worker thread running callables in order; ``submit(key, fn)`` replaces a
    job with the same key that has not started yet. ``fn()``'s result (or exception)
    comes back on the GUI thread as ``sigDone(key, result, error)``. ``close()``
    joins the thread (jobs should watch a cancel flag to end promptly)."""

    sigDone = pyqtSignal(str, object, object)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._cv = threading.Condition()
        self._jobs: dict[str, Callable] = {}
        self._closing = False
        self._busy = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._busy or bool(self._jobs)

    def submit(self, key: str, fn: Callable) -> None:
        with self._cv:
            if self._closing:
                return
            self._jobs.pop(key, None)
            self._jobs[key] = fn
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
                key = next(iter(self._jobs))
                fn = self._jobs.pop(key)
                self._busy = True
            result = error = None
            try:
                result = fn()
            except BaseException as exc:   # reported on the GUI thread
                error = exc
            with self._cv:
                self._busy = False
            try:
                self.sigDone.emit(key, result, error)
            except RuntimeError:           # the receiver is gone (window closed)
                pass

    def close(self, timeout: float = 10.0) -> bool:
        with self._cv:
            self._closing = True
            self._jobs.clear()
            self._cv.notify_all()
            t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True


class TracePlayer(QWidget):
    sigLoaded = pyqtSignal(object)
    sigShown = pyqtSignal(int, object)
    sigMessage = pyqtSignal(str)
    _sigProgress = pyqtSignal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index: TraceIndex | None = None
        self.epoch = 0                 # the epoch asked for last
        self.shown: tuple[int, int | None] | None = None   # (epoch, seq) drawn
        self.error = ""
        self._cancel = threading.Event()
        self._tasks = TaskThread("bufferscope-trace", self)
        self._tasks.sigDone.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self._sigProgress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self.state = DisplayState()
        self.view = BufferView(self.state)
        self.colorbar = ColorBar(self.state)
        self._build()
        self._play = QTimer(self)
        self._play.timeout.connect(self._play_tick)
        self._set_enabled(False)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        v = QVBoxLayout(self)
        v.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        row.addWidget(self.view, 1)
        row.addWidget(self.colorbar)
        v.addLayout(row, 1)

        load = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setObjectName("trace_progress")
        self.progress.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("trace_cancel")
        self.cancel_button.clicked.connect(self.cancel_open)
        load.addWidget(self.progress, 1)
        load.addWidget(self.cancel_button)
        self.load_row = QWidget()
        self.load_row.setLayout(load)
        self.load_row.hide()
        v.addWidget(self.load_row)

        scrub = QHBoxLayout()
        self.play_button = QPushButton("Play")
        self.play_button.setObjectName("trace_play")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self.set_playing)
        self.speed = QDoubleSpinBox()
        self.speed.setObjectName("trace_speed")
        self.speed.setRange(0.5, 240.0)
        self.speed.setValue(10.0)
        self.speed.setSuffix(" epochs/s")
        self.speed.valueChanged.connect(self._on_speed)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("trace_slider")
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)   # the keys below drive it
        self.slider.valueChanged.connect(self.show_epoch)
        self.epoch_label = QLabel("epoch –")
        self.epoch_label.setObjectName("trace_epoch")
        self.epoch_label.setMinimumWidth(170)
        scrub.addWidget(self.play_button)
        scrub.addWidget(self.speed)
        scrub.addWidget(self.slider, 1)
        scrub.addWidget(self.epoch_label)
        v.addLayout(scrub)

        seqrow = QHBoxLayout()
        seqrow.addWidget(QLabel("seq"))
        self.seq_box = QSpinBox()
        self.seq_box.setObjectName("trace_seq")
        self.seq_box.setRange(0, 2**31 - 1)
        self.seq_box.setKeyboardTracking(False)
        self.seq_box.setMinimumWidth(110)
        self.seq_box.valueChanged.connect(self.show_seq)
        seqrow.addWidget(self.seq_box)
        self.race_button = QPushButton("Next race ▶")
        self.race_button.setObjectName("trace_next_race")
        self.race_button.setToolTip("Jump to the next epoch in which updates from different "
                                    "producers wrote the same elements and do not commute (N)")
        self.race_button.clicked.connect(self.next_race)
        seqrow.addWidget(self.race_button)
        self.info = QLabel("no trace open")
        self.info.setObjectName("trace_info")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        seqrow.addWidget(self.info, 1)
        v.addLayout(seqrow)

        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def keyPressEvent(self, ev) -> None:
        """Left/Right step an epoch, Home/End jump, Space plays, N: next race (keys the focused child
        does not use itself reach the player)."""
        keys = {Qt.Key.Key_Left: lambda: self.step(-1),
                Qt.Key.Key_Right: lambda: self.step(1),
                Qt.Key.Key_Home: lambda: self.show_epoch(0),
                Qt.Key.Key_End: lambda: self.show_epoch(self.last_epoch),
                Qt.Key.Key_Space: lambda: self.play_button.toggle(),
                Qt.Key.Key_N: self.next_race}
        fn = keys.get(Qt.Key(ev.key())) if ev.modifiers() == Qt.KeyboardModifier.NoModifier else None
        if fn is None or self.index is None:
            super().keyPressEvent(ev)
            return
        fn()
        ev.accept()

    def _set_enabled(self, on: bool) -> None:
        for w in (self.play_button, self.speed, self.slider, self.seq_box):
            w.setEnabled(on)

    # ------------------------------------------------------------------ opening
    @property
    def loading(self) -> bool:
        return self.load_row.isVisible()

    @property
    def history(self):
        """The loaded trace as an ``app.history.UpdateHistory`` (rows per update,
        visible marks) for the debug docks; None before a trace is open."""
        return None if self.index is None else self.index.history

    @property
    def last_epoch(self) -> int:
        return 0 if self.index is None else self.index.n_epochs

    def open_trace(self, path: str) -> None:
        """Read ``path`` on the worker thread (progress bar, Cancel); the current trace
        stays until the new one is fully read."""
        self.set_playing(False)
        self._cancel.set()            # a read still running ends
        cancel = self._cancel = threading.Event()
        self.progress.setValue(0)
        self.progress.setFormat(f"reading {os.path.basename(path)}: %p%")
        self.load_row.show()
        self.sigMessage.emit(f"opening {path}…")

        def progress(done: int, total: int) -> None:
            self._sigProgress.emit(done, total)

        self._tasks.submit("open", lambda: TraceIndex.open(path, progress=progress, cancel=cancel.is_set))

    def cancel_open(self) -> None:
        self._cancel.set()

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setValue(int(1000 * done / total))

    def _loaded(self, idx: TraceIndex) -> None:
        self.index = idx
        self.error = ""
        self._set_enabled(True)
        self.slider.blockSignals(True)
        self.slider.setRange(0, idx.n_epochs)
        self.slider.setValue(idx.n_epochs)
        self.slider.blockSignals(False)
        self.seq_box.blockSignals(True)
        if idx.n_updates:
            self.seq_box.setRange(idx.first_seq, min(idx.last_seq, 2**31 - 1))
            self.seq_box.setValue(self.seq_box.maximum())
        self.seq_box.setEnabled(bool(idx.n_updates))
        self.seq_box.blockSignals(False)
        kf = f"keyframe every {idx.keyframe_every} epochs ({len(idx.keyframes)} kept, " \
             f"{idx.memory_bytes() / 2**20:.1f} MiB)"
        rows = "" if idx.history_complete else \
            f"; the update history holds the first {len(idx.history.rows)} updates"
        self.sigMessage.emit(
            f"opened {idx.path}: {idx.n_updates} updates, {idx.n_epochs} epochs, shape "
            f"{idx.shape} in {idx.open_seconds:.2f} s; {kf}{rows}")
        self.sigLoaded.emit(idx)
        self.show_epoch(idx.n_epochs)

    # ------------------------------------------------------------------ scrubbing
    def show_epoch(self, epoch: int) -> None:
        """Show the front visible at ``epoch`` (computed on the worker thread)."""
        idx = self.index
        if idx is None:
            return
        epoch = max(0, min(int(epoch), idx.n_epochs))
        self.epoch = epoch
        if self.slider.value() != epoch:
            self.slider.blockSignals(True)
            self.slider.setValue(epoch)
            self.slider.blockSignals(False)
        self._tasks.submit("scrub", lambda: ("epoch", epoch, None, idx.front_at(epoch)))

    def show_seq(self, seq: int) -> None:
        """Show the back buffer right after update ``seq`` was applied."""
        idx = self.index
        if idx is None or not idx.n_updates:
            return
        seq = int(seq)
        self.set_playing(False)
        self._tasks.submit("scrub", lambda: ("seq", None, seq, idx.state_at_seq(seq)))

    def step(self, n: int) -> None:
        self.show_epoch(self.epoch + n)

    def set_playing(self, on: bool) -> None:
        on = bool(on) and self.index is not None
        if self.play_button.isChecked() != on:
            self.play_button.setChecked(on)
            return
        self.play_button.setText("Pause" if on else "Play")
        if on:
            if self.epoch >= self.last_epoch:
                self.show_epoch(0)
            self._play.start(int(1000 / self.speed.value()))
        else:
            self._play.stop()

    @property
    def playing(self) -> bool:
        return self._play.isActive()

    def _on_speed(self, hz: float) -> None:
        self._play.setInterval(int(1000 / hz))

    def _play_tick(self) -> None:
        if self._tasks.busy:
            return                      # the previous frame is not drawn yet: skip
        if self.epoch >= self.last_epoch:
            self.set_playing(False)
            return
        self.step(1)

    # ------------------------------------------------------------------ results
    def _on_done(self, key: str, result, error) -> None:
        if key == "open":
            self.load_row.hide()
            if isinstance(error, Cancelled):
                self.sigMessage.emit("opening the trace was cancelled")
            elif error is not None:
                text = str(error) if isinstance(error, (TraceError, OSError)) else \
                    f"{type(error).__name__}: {error}"
                self.error = text
                self.sigMessage.emit(f"cannot open the trace: {text}")
            else:
                self._loaded(result)
            return
        if error is not None:
            self.error = str(error)
            self.sigMessage.emit(f"scrubbing: {error}")
            self.set_playing(False)
            return
        kind, epoch, seq, value = result
        idx = self.index
        if kind == "epoch":
            self.view.set_front(value, epoch)
            self.shown = (epoch, None)
            what = "the initial buffer" if epoch == 0 else f"line {idx.line_of_epoch(epoch)}"
            self.epoch_label.setText(f"epoch {epoch} / {idx.n_epochs}")
            self.info.setText(f"front at epoch {epoch} ({what}){self._show_races(epoch)}")
        else:
            self.view.set_front(value.back, value.epoch)
            self.shown = (value.epoch, seq)
            self.epoch = value.epoch
            self.slider.blockSignals(True)
            self.slider.setValue(value.epoch)
            self.slider.blockSignals(False)
            self.epoch_label.setText(f"epoch {value.epoch} / {idx.n_epochs} (+ updates)")
            self.info.setText(f"back buffer right after seq {value.applied_seq} "
                              f"(front: epoch {value.epoch}; visible at epoch {idx.epoch_of_seq(seq)})")
        self.sigShown.emit(*self.shown)

    # ------------------------------------------------------------------ races
    def _show_races(self, epoch: int) -> str:
        """Outline the races of ``epoch`` on the view (the live app's race flag); the
        text that names them, "" when none."""
        h = self.history
        races = h.races(epoch) if h is not None and epoch > 0 else []
        self.view.overlays.set("races", [r.overlap for r in races], RACE_COLOR)
        if not races:
            return ""
        r = races[-1]
        return (f" — {len(races)} race{'s' if len(races) > 1 else ''}: e.g. seq {r.winner.seq} "
                f"({r.winner.producer}) won over seq {r.loser.seq} ({r.loser.producer})")

    def next_race(self) -> int | None:
        """Show the next epoch after the one shown that has races; its number, or None."""
        h = self.history
        if h is None:
            return None
        current = self.shown[0] if self.shown else 0
        for epoch in range(current + 1, self.last_epoch + 1):
            if h.races(epoch):
                self.show_epoch(epoch)
                return epoch
        self.sigMessage.emit(f"no race after epoch {current}"
                             + ("" if self.index.history_complete else
                                " (in the updates this player indexed)"))
        return None

    # ------------------------------------------------------------------ teardown
    def close_player(self) -> None:
        """Stop playing, cancel a read, join the worker thread. Idempotent."""
        self._play.stop()
        self._cancel.set()
        self._tasks.close()

    def closeEvent(self, ev) -> None:
        self.close_player()
        super().closeEvent(ev)


class TracePlayerWindow(QMainWindow):
    """The player as a window: status bar, File ▸ Open trace…, Export Perfetto…,
    Lockstep…, Close."""

    def __init__(self, path: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("bufferscope — trace")
        self.player = TracePlayer(self)
        self.setCentralWidget(self.player)
        self.setStatusBar(QStatusBar(self))
        self.player.sigMessage.connect(lambda t: self.statusBar().showMessage(t))
        self.player.sigLoaded.connect(lambda idx: self.setWindowTitle(f"bufferscope — {idx.path}"))
        self.lockstep_windows: list = []
        m = self.menuBar().addMenu("&File")
        for text, slot, key in (("Open trace…", self._open_dialog, "Ctrl+O"),
                                ("Export Perfetto…", self._export_dialog, None),
                                ("Lockstep C vs GL…", self.open_lockstep, None),
                                ("Close", self.close, "Ctrl+W")):
            act = QAction(text, self)
            if key:
                act.setShortcut(QKeySequence(key))
            act.triggered.connect(slot)
            m.addAction(act)
        self.resize(1100, 800)
        if path:
            self.player.open_trace(path)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open trace", "", "Traces (*.jsonl);;All files (*)")
        if path:
            self.player.open_trace(path)

    def _export_dialog(self) -> None:
        idx = self.player.index
        if idx is None:
            self.statusBar().showMessage("open a trace first")
            return
        out, _ = QFileDialog.getSaveFileName(self, "Export Perfetto JSON", "trace.json", "JSON (*.json)")
        if out:
            self.export_perfetto(out)

    def export_perfetto(self, out: str) -> bool:
        from app.perfetto import write_perfetto

        idx = self.player.index
        try:
            n = write_perfetto(idx.path, out)
        except (OSError, TraceError) as exc:
            self.statusBar().showMessage(f"export failed: {exc}")
            return False
        self.statusBar().showMessage(f"wrote {n} trace events to {out} (open it in ui.perfetto.dev)")
        return True

    def open_lockstep(self):
        from .lockstep_view import LockstepView

        idx = self.player.index
        if idx is None:
            self.statusBar().showMessage("open a trace first")
            return None
        w = LockstepView(idx.path)
        w.show()
        self.lockstep_windows.append(w)
        return w

    def closeEvent(self, ev) -> None:
        for w in self.lockstep_windows:
            w.close()
        self.player.close_player()
        self.player.view.release_gl()
        super().closeEvent(ev)


def run_open(path: str) -> int:
    """``bufferscope open TRACE``: the player window on ``path``; the exit code."""
    from app.display import display_problem

    from .launch import _application

    problem = display_problem()
    if problem:
        print(f"bufferscope: error: cannot open the window: {problem}", file=sys.stderr)
        return 1
    qapp = _application()
    win = TracePlayerWindow(path)
    win.show()
    try:
        return int(qapp.exec())
    finally:
        win.player.close_player()
