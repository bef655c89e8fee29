"""``StatusBar``: backend, GL renderer, epoch, queue depth, updates/s and frames/s,
with the latest message (errors included) on the left.
"""

from __future__ import annotations

import time

from PyQt6.QtWidgets import QLabel, QStatusBar, QWidget


class StatusBar(QStatusBar):
    MESSAGE_MS = 8000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels: dict[str, QLabel] = {}
        for key, tip in (
            ("backend", "buffer manager backend"),
            ("renderer", "OpenGL renderer of the view"),
            ("epoch", "epoch of the front buffer shown"),
            ("queue", "updates waiting in the manager's queue"),
            ("ups", "element updates applied per second"),
            ("fps", "frames drawn by the view per second"),
        ):
            lab = QLabel(self)
            lab.setToolTip(tip)
            lab.setObjectName(f"status_{key}")
            self.addPermanentWidget(lab)
            self.labels[key] = lab
        self._last: tuple[float, int] | None = None
        self.updates_per_s = 0.0

    def setRenderer(self, text: str) -> None:
        self.labels["renderer"].setText(f"GL: {text}")

    def setStats(self, backend: str, epoch: int, pending: int | None, applied_seq: int | None,
                 fps: float, paused: bool = False) -> None:
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

    def resetRate(self) -> None:
        self._last = None
        self.updates_per_s = 0.0

    def message(self, text: str) -> None:
        self.showMessage(text, self.MESSAGE_MS)
