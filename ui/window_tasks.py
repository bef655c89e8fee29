"""``LongOperations``: the main window's long operations — exports and the backend
switch — as a mixin over ``MainWindow`` (``ui.main_window``): the status-bar progress and
its Cancel, the export dialog and writers (.npy: the full float32 array; PNG: the shown
plane through the colormap), and ``wait_task`` for scripts and tests. The work itself
runs as a ``Session`` task on the session's worker thread (``ui.session_tasks``).
"""

from __future__ import annotations

import os

import numpy as np
from PyQt6.QtCore import QEventLoop, QTimer
from PyQt6.QtGui import QImage
from PyQt6.QtWidgets import QFileDialog, QLabel, QProgressBar, QSizePolicy, QToolButton

from app.atomic import write_via_path

from . import colormaps
from .sync_worker import Cancelled


def _npy_writer(front: np.ndarray):
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:     # a handle: np.save would add ".npy" to a name
            np.save(fh, front, allow_pickle=False)
    return write


def _png_writer(front: np.ndarray, levels, auto_levels: bool, colormap: str, z: int):
    """Renders the shown plane (any thread: QImage is reentrant)."""
    plane = np.asarray(front, dtype=np.float32)
    if auto_levels:
        levels = colormaps.finite_levels(plane) or levels
    if plane.ndim == 1:
        plane = plane.reshape(1, -1)
    elif plane.ndim == 3:
        plane = plane[z]
    rgb = np.ascontiguousarray(colormaps.apply(plane, levels, colormap))
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()

    def write(tmp: str) -> None:
        if not img.save(tmp, "PNG"):
            raise OSError(f"cannot write PNG {tmp}")
    return write


class LongOperations:
    """Export and switch for ``MainWindow`` (see the module docstring)."""

    def _build_busy(self) -> None:
        """Status-bar progress for the long operations (export, switch) and their Cancel."""
        self.busy_label = QLabel(self)
        self.busy_label.setObjectName("status_busy")
        # It shares the message's room (never widens the window); the bar and the
        # button are small: the status bar is already near the window's width.
        self.busy_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.busy_bar = QProgressBar(self)
        self.busy_bar.setObjectName("status_progress")
        self.busy_bar.setRange(0, 0)            # busy: how long is not known
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setFixedSize(50, 12)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("status_cancel")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running export or backend switch (Esc)")
        self.cancel_button.clicked.connect(self.session.cancel_tasks)
        self.statusbar.insertWidget(1, self.busy_label, 1)
        self.statusbar.insertWidget(2, self.busy_bar)
        self.statusbar.insertWidget(3, self.cancel_button)
        for wid in (self.busy_label, self.busy_bar, self.cancel_button):
            wid.hide()

    def _on_busy_changed(self, what: str) -> None:
        for wid in (self.busy_label, self.busy_bar, self.cancel_button):
            wid.setVisible(bool(what))
        text = f"{what}…" if what else ""
        self.busy_label.setToolTip(text)
        self.busy_label.setText(text)
        if hasattr(self, "cancel_action"):
            self.cancel_action.setEnabled(bool(what))
        b = self.panel.backend_buttons.get(self.session.backend)
        if not what and b is not None and not b.isChecked():
            b.setChecked(True)    # a switch that failed or was cancelled: show where we are

    def toggle_backend(self) -> bool:
        """Switch to the other backend (C ↔ GL), keeping contents and queued updates."""
        s = self.session
        return s.switch_backend("gl" if s.backend == "c" else "c")

    def wait_task(self, task_id: int | None, timeout: float = 30.0) -> bool:
        """For scripts and tests: run the event loop (the window stays live) until task
        ``task_id`` ended; True when it succeeded within ``timeout`` s."""
        if task_id is None:
            return False
        loop, outcome = QEventLoop(), {}

        def finished(tid: int, error: str) -> None:
            if tid == task_id:
                outcome["error"] = error
                loop.quit()

        self.session.sigTaskFinished.connect(finished)
        timer = QTimer(singleShot=True)
        timer.timeout.connect(loop.quit)
        timer.start(int(timeout * 1000))
        try:
            loop.exec()
        finally:
            timer.stop()
            self.session.sigTaskFinished.disconnect(finished)
        return outcome.get("error", "timeout") == ""

    # ------------------------------------------------------------------ export
    def _export_dialog(self, kind: str) -> None:
        filt = "NumPy array (*.npy)" if kind == "npy" else "PNG image (*.png)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export front as {kind}",
                                              f"front-epoch{self.session.epoch}.{kind}", filt)
        if path:
            self.start_export(kind, path)

    def start_export(self, kind: str, path: str) -> int | None:
        """Export the front as ``kind`` ("npy": the full float32 array; "png": the
        shown plane through the current colormap, one pixel per element) to
        ``path``, atomically. The read-back and the write run on the session's
        worker; the status bar shows progress, Esc cancels (nothing is written).
        Returns the task id (``Session.sigTaskFinished``), None when none started."""
        s = self.session
        if s.manager is None:
            s.say("export: no buffer manager is open")
            return None
        if kind not in ("npy", "png"):
            raise ValueError(f"export kind must be 'npy' or 'png', not {kind!r}")
        st = self.state
        look = (st.levels, st.auto_levels, st.colormap, st.z)

        def work(m, cancel) -> int:
            front = np.array(m.front(), copy=True)
            epoch = m.stats().epoch
            write = _npy_writer(front) if kind == "npy" else _png_writer(front, *look)

            def write_then_check(tmp: str) -> None:
                write(tmp)
                if cancel.is_set():
                    raise Cancelled("cancelled before the file was put in place")

            write_via_path(path, write_then_check)
            return epoch

        def done(res) -> None:
            if res.error is None:
                what = "front" if kind == "npy" else "front (plane)"
                epoch = res.value + res.job.epoch_offset
                self.statusbar.message(f"{what} of epoch {epoch} saved to {path}")
            elif isinstance(res.error, Cancelled):
                self.statusbar.message(f"export to {path} cancelled; nothing written")
            else:
                self.statusbar.message(
                    f"export to {path} failed: {type(res.error).__name__}: {res.error}")

        return s.run_task(f"exporting the front to {os.path.basename(path)}", work, done)

    def export_npy(self, path: str, timeout: float = 30.0) -> bool:
        """``start_export("npy", path)`` and wait for it (the event loop keeps running)."""
        return self.wait_task(self.start_export("npy", path), timeout)

    def export_png(self, path: str, timeout: float = 30.0) -> bool:
        """``start_export("png", path)`` and wait for it (the event loop keeps running)."""
        return self.wait_task(self.start_export("png", path), timeout)
