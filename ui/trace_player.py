"""``TracePlayer``: a recorded trace in the app — open it, scrub to any epoch or seq, play.

The player owns its own ``DisplayState`` and ``BufferView`` (the live session's view
is not touched) and an ``app.keyframes.TraceIndex``. Everything slow runs on one
``TaskThread`` (``ui.task_thread``): opening the trace (with a progress bar and Cancel;
a malformed trace names its line and leaves the previous trace loaded) and every scrub
request (the newest request replaces one still waiting, so dragging the slider never
queues up work). The GUI thread only draws the fronts that come back.

Controls: a slider over epochs (0 = the initial buffer), a seq spin box ("Go":
the back buffer right after that update; it also shows the last update of what is
shown), play/pause at a chosen rate (epochs/s), Next race. Under the view, the hover
readout: index, value, and the last update that wrote the element by then (read from
the trace's ``UpdateHistory``, as in the live window).
Keys: Left/Right step an epoch, Home/End jump to the first/last epoch, Space plays,
N: next race.

``TracePlayerWindow`` (``ui.trace_window``, re-exported here) is the player as a
window with the update log, timeline and element history docked around it
(``bufferscope open TRACE``; File ▸ Open trace… in the main window).

Signals
-------
sigLoaded(object)        a trace was opened: its ``TraceIndex``
sigShown(int, object)    a front is shown: its epoch, and the seq (None: an epoch)
sigMessage(str)          something the user should read (errors name the line)
"""

from __future__ import annotations

import os
import threading

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.keyframes import Cancelled, TraceIndex
from app.trace import TraceError

from .buffer_view import BufferView
from .color_bar import ColorBar
from .display_state import DisplayState
from .task_thread import TaskThread
from .trace_races import PlayerRaces, RaceFinder
from .trace_readout import PlayerReadout

__all__ = ["TracePlayer", "TaskThread"]   # and, lazily, TracePlayerWindow and run_open


def __getattr__(name: str):
    # The window lives in ui.trace_window (which imports this module): re-exported
    # lazily, so ``from ui.trace_player import TracePlayerWindow`` keeps working.
    if name in ("TracePlayerWindow", "run_open"):
        from . import trace_window

        return getattr(trace_window, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TracePlayer(PlayerReadout, PlayerRaces, QWidget):
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
        # More work on an opened trace, done on the worker thread before it is shown
        # (the docks read its history into columns there): name -> fn(index); the
        # results are ``self.opened[name]`` when sigLoaded comes.
        self.open_extras: dict = {}
        self.opened: dict = {}
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
        self._hover: tuple[int, ...] | None = None
        self.races = RaceFinder(self)
        self.races.sigKnown.connect(self._on_races_known)
        self.races.sigFound.connect(self._on_race_found)
        self._info_base = ""
        self.view.sigHover.connect(self._on_hover)
        self._set_enabled(False)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        v = QVBoxLayout(self)
        v.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        row.addWidget(self.view, 1)
        row.addWidget(self.colorbar)
        v.addLayout(row, 1)
        self.readout = QLabel("hover over the buffer to read an element")
        self.readout.setObjectName("trace_readout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.readout.setFont(mono)
        v.addWidget(self.readout)

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

        extras = dict(self.open_extras)

        def read() -> tuple[TraceIndex, dict]:
            idx = TraceIndex.open(path, progress=progress, cancel=cancel.is_set)
            return idx, {name: fn(idx) for name, fn in extras.items()}

        self._tasks.submit("open", read)

    def cancel_open(self) -> None:
        self._cancel.set()

    def _on_progress(self, done: int, total: int) -> None:
        # A step of 1 % at least: each step repaints the bar at once (QProgressBar), and
        # in a window with a GL view that composes the whole window (tens of ms).
        value = int(1000 * done / total) if total > 0 else 0
        if value >= 1000 or value - self.progress.value() >= 10:
            self.progress.setValue(value)

    def _loaded(self, idx: TraceIndex) -> None:
        self.index = idx
        self.races.cancel_search()      # a Next race still looking through the last trace
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
                idx, self.opened = result
                self._loaded(idx)
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
            self._info_base = f"front at epoch {epoch} ({what})"
            self.info.setText(self._info_base + self._show_races(epoch))
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
        self._show_position_seq()
        self._update_readout()
        self.sigShown.emit(*self.shown)

    # ------------------------------------------------------------------ teardown
    def close_player(self) -> None:
        """Stop playing, cancel a read, join the worker thread. Idempotent."""
        self._play.stop()
        self._cancel.set()
        self.races.close()
        self._tasks.close()

    def closeEvent(self, ev) -> None:
        self.close_player()
        super().closeEvent(ev)
