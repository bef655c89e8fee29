"""``LockstepView``: run one stream on two backends side by side and show where they differ.

A small window over ``app.lockstep.run_lockstep``: two backend choices (C and GL by
default), Run and Cancel, a progress bar, the verdict ("epochs 1–57 identical on c
and gl", or the first differing element with the update that last wrote it) and,
for the last epoch compared, |a − b| per element as an image (black: equal; the
colormap from 0 to the largest difference; magenta where exactly one side is NaN;
the first difference ringed in red) with a list of the first differing elements. The run happens on a
``TaskThread``; closing the window cancels it and joins the thread.

Signals
-------
sigFinished(object)   a run ended: its ``LockstepResult`` (None: cancelled or failed)
"""

from __future__ import annotations

import threading

import numpy as np
from PyQt6.QtCore import QPointF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.backends import BACKENDS, REFERENCE_BACKENDS
from app.keyframes import Cancelled
from app.lockstep import LockstepResult, differing, run_lockstep

from . import colormaps
from .task_thread import TaskThread

MAX_LISTED = 200


class LockstepView(QWidget):
    sigFinished = pyqtSignal(object)
    _sigProgress = pyqtSignal(int, int)

    def __init__(self, source, backends: tuple[str, str] = ("c", "gl"), opener=None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("bufferscope — lockstep")
        self.source = source
        self.opener = opener            # tests plant a difference through it
        self.result: LockstepResult | None = None
        self._cancel = threading.Event()
        self._tasks = TaskThread("bufferscope-lockstep", self)
        self._tasks.sigDone.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self._sigProgress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)

        v = QVBoxLayout(self)
        top = QHBoxLayout()
        names = [*BACKENDS, *REFERENCE_BACKENDS]
        self.combo_a, self.combo_b = QComboBox(), QComboBox()
        for combo, name in ((self.combo_a, backends[0]), (self.combo_b, backends[1])):
            combo.addItems(names)
            combo.setCurrentText(name)
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("lockstep_run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("lockstep_cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        top.addWidget(QLabel("compare"))
        top.addWidget(self.combo_a)
        top.addWidget(QLabel("with"))
        top.addWidget(self.combo_b)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        top.addStretch(1)
        v.addLayout(top)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        v.addWidget(self.progress)
        self.verdict = QLabel(f"source: {getattr(source, 'path', None) or source}")
        self.verdict.setObjectName("lockstep_verdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.verdict)
        body = QHBoxLayout()
        self.image = QLabel("|a − b| of the last epoch compared")
        self.image.setObjectName("lockstep_image")
        self.image.setMinimumSize(320, 320)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setStyleSheet("background: #26262c; color: #aaa")
        self.listing = QListWidget()
        self.listing.setObjectName("lockstep_list")
        body.addWidget(self.image, 2)
        body.addWidget(self.listing, 1)
        v.addLayout(body, 1)
        self.resize(900, 560)

    @property
    def running(self) -> bool:
        return self._tasks.busy

    def run(self) -> None:
        a, b = self.combo_a.currentText(), self.combo_b.currentText()
        self._cancel.set()
        cancel = self._cancel = threading.Event()
        self.result = None
        self.progress.setValue(0)
        self.listing.clear()
        self.verdict.setText(f"running {a} and {b} in lockstep…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        src, opener = self.source, self.opener
        self._tasks.submit("run", lambda: run_lockstep(
            src, (a, b), progress=self._sigProgress.emit, cancel=cancel.is_set, opener=opener))

    def cancel(self) -> None:
        self._cancel.set()

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setValue(int(1000 * done / total))

    def _on_done(self, _key: str, result, error) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if isinstance(error, Cancelled):
            self.verdict.setText("lockstep cancelled")
        elif error is not None:
            self.verdict.setText(f"lockstep failed: {type(error).__name__}: {error}")
        else:
            self.progress.setValue(1000)
            self.result = result
            self.verdict.setText(result.summary())
            self._show_difference(result)
        self.sigFinished.emit(self.result)

    def _show_difference(self, res: LockstepResult) -> None:
        d = res.abs_difference()
        if d is None:
            return
        mask = differing(res.front_a, res.front_b, res.flush_subnormals)
        a, b = res.backends
        for i in np.argwhere(mask)[:MAX_LISTED]:
            index = tuple(int(x) for x in i)
            self.listing.addItem(f"{index}: {a} {str(res.front_a[index])}  {b} {str(res.front_b[index])}")
        if not mask.any():
            self.listing.addItem("no element differs")
        # One plane: a 1-D buffer as one row, a 3-D one as the largest difference over z.
        plane = d if d.ndim == 2 else (d.reshape(1, -1) if d.ndim == 1 else d.max(axis=0))
        pmask = mask if mask.ndim == 2 else (mask.reshape(1, -1) if mask.ndim == 1 else mask.any(axis=0))
        finite = plane[np.isfinite(plane) & pmask]
        hi = float(finite.max()) if finite.size else 1.0
        rgb = colormaps.apply(plane.astype(np.float32), (0.0, hi if hi > 0 else 1.0), "viridis")
        rgb[~pmask] = (0, 0, 0)
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        pix = QPixmap.fromImage(img).scaled(self.image.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.FastTransformation)
        if res.difference is not None:       # ring the first difference: one texel is small
            i = res.difference.index
            r, c = (0, i[0]) if len(i) == 1 else i[-2:]
            sx, sy = pix.width() / w, pix.height() / h
            painter = QPainter(pix)
            painter.setPen(QPen(QColor(255, 60, 60), 2))
            rad = max(6.0, 2 * sx)
            painter.drawEllipse(QPointF((c + 0.5) * sx, (r + 0.5) * sy), rad, rad)
            painter.end()
        self.image.setPixmap(pix)

    def close_view(self) -> None:
        self._cancel.set()
        self._tasks.close()

    def closeEvent(self, ev) -> None:
        self.close_view()
        super().closeEvent(ev)
