"""``StatusBar``: the latest message on the left; backend, GL renderer, epoch, queue
depth, updates/s and frames/s on the right; a "Log" button that opens the message
log.

Every message is kept with its time (``history``) and announced with
``sigMessage``: the ``MessageLog`` lists them all. The message stays until the
next one replaces it; a message too long for the bar is elided, and its full text
is the label's tooltip (and in the log).

Signals
-------
sigMessage(float, str)    a message was shown: its time (``time.time()``) and text
sigLogRequested()         the "Log" button was pressed
"""

from __future__ import annotations

import time

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFontMetrics
from PyQt6.QtWidgets import QLabel, QSizePolicy, QStatusBar, QToolButton, QWidget

MAX_HISTORY = 10_000


class StatusBar(QStatusBar):
    sigMessage = pyqtSignal(float, str)
    sigLogRequested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: list[tuple[float, str]] = []
        self._text = ""
        self.message_label = QLabel(self)
        self.message_label.setObjectName("status_message")
        self.message_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.addWidget(self.message_label, 1)
        self.log_button = QToolButton(self)
        self.log_button.setText("Log")
        self.log_button.setObjectName("status_log")
        self.log_button.setToolTip("Every message with its time (View ▸ Message log)")
        self.log_button.clicked.connect(self.sigLogRequested)
        self.addPermanentWidget(self.log_button)
        self.labels: dict[str, QLabel] = {}
        for key, tip, widest in (
            ("backend", "buffer manager backend", ""),
            ("renderer", "OpenGL renderer of the view", ""),
            ("epoch", "epoch of the front buffer shown", "epoch 0000000"),
            ("queue", "updates waiting in the manager's queue", "queue 000000"),
            ("ups", "element updates applied per second", "00,000,000 updates/s"),
            ("fps", "frames drawn by the view per second", "0000 frames/s"),
        ):
            lab = QLabel(self)
            lab.setToolTip(tip)
            if widest:   # room for the figures as they grow: no clipped "updat"
                lab.setMinimumWidth(QFontMetrics(lab.font()).horizontalAdvance(widest))
            lab.setObjectName(f"status_{key}")
            self.addPermanentWidget(lab)
            self.labels[key] = lab
        self._last: tuple[float, int] | None = None
        self.updates_per_s = 0.0

    def set_renderer(self, text: str) -> None:
        self.labels["renderer"].setText(f"GL: {text}")

    def set_stats(self, backend: str, epoch: int, pending: int | None,
                  applied_seq: int | None, fps: float, paused: bool = False) -> None:
        now = time.monotonic()
        if applied_seq is not None:
            if self._last is not None and now > self._last[0]:
                dt = now - self._last[0]
                self.updates_per_s = max(0, applied_seq - self._last[1]) / dt
            self._last = (now, applied_seq)
        self.labels["backend"].setText(f"backend: {backend or '—'}" + (" (paused)" if paused else ""))
        self.labels["epoch"].setText(f"epoch {epoch}")
        self.labels["queue"].setText("queue —" if pending is None else f"queue {pending}")
        self.labels["ups"].setText(f"{self.updates_per_s:,.0f} updates/s")
        self.labels["fps"].setText(f"{fps:.0f} frames/s")

    def reset_rate(self) -> None:
        self._last = None
        self.updates_per_s = 0.0

    # -- messages -----------------------------------------------------------------
    def message(self, text: str) -> None:
        """Show ``text`` until the next message, and keep it in the history."""
        t = time.time()
        self.history.append((t, text))
        del self.history[:-MAX_HISTORY]
        self._text = text
        self.message_label.setToolTip(text)
        self._show_elided()
        self.sigMessage.emit(t, text)

    def currentMessage(self) -> str:  # noqa: N802 - QStatusBar's own name
        """The full text of the latest message (never elided)."""
        return self._text

    def _show_elided(self) -> None:
        fm = QFontMetrics(self.message_label.font())
        width = max(40, self.message_label.width())
        self.message_label.setText(
            fm.elidedText(self._text.replace("\n", " "), Qt.TextElideMode.ElideRight, width))

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._show_elided()
