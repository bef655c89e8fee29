"""``MainWindow``: the bufferscope application window (SPEC §7).

The buffer view with its color bar, z-slider (3-D buffers) and hover readout in the
middle, the control panel docked on the right, the status bar below, and the File
and Help menus. It opens on a live scenario and, when closed, stops the scenario's
threads and closes the manager.
"""

from __future__ import annotations

import html
import time

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QCloseEvent, QFont, QImage, QKeySequence, QOpenGLContext
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.atomic import write_via_path
from app.scenarios import DEFAULT_SCENARIO, get_scenario

from . import colormaps
from .BufferView import BufferView
from .ColorBar import ColorBar, format_value
from .ControlPanel import ControlPanel
from .Session import Session, backend_problem
from .StatusBar import StatusBar

# When the view samples the GL backend's texture the front is read back only this
# often, for the hover readout (which names the epoch its value is from); the auto
# levels come from the backend's GPU reduction (front_range) for every epoch drawn.
TEXTURE_MODE_READBACK_HZ = 5.0
READOUT_HZ = 4.0


class MainWindow(QMainWindow):
    def __init__(
        self,
        backend: str = "c",
        shape: tuple[int, ...] | None = None,
        scenario: str | None = DEFAULT_SCENARIO,
        autosync_hz: float = 60.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("bufferscope")
        self.session = Session(self, share_context=QOpenGLContext.globalShareContext())
        self.session.set_autosync(True, autosync_hz)
        self.view = BufferView()
        self.colorbar = ColorBar()
        self.statusbar = StatusBar(self)
        self.setStatusBar(self.statusbar)
        self._hover_index: tuple[int, ...] | None = None
        self._last_readback = 0.0
        self._data_visible_seq: int | None = None   # seqs visible in the view's values
        self._readout_due = False
        self._build_center()
        self.panel = ControlPanel(self.session, self.view, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel)
        self._build_menus()

        s = self.session
        s.sigMessage.connect(self.statusbar.message)
        s.sigManagerChanged.connect(self._on_manager_changed)
        s.sigFrontChanged.connect(self._on_front_changed)
        s.sigPausedChanged.connect(lambda _p: self._update_status())
        self.view.sigHover.connect(self._on_hover)
        self.view.sigLevelsChanged.connect(
            lambda lo, hi: self.colorbar.setLevels(lo, hi, self.view.autoLevels()))
        self.view.sigGLInfo.connect(self._on_gl_info)
        self.view.sigGLError.connect(self.statusbar.message)
        self.panel.cmap_combo.currentTextChanged.connect(self.colorbar.setColormap)

        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._update_status)
        self._status_timer.start(int(1000 / READOUT_HZ))

        self._open_initial(backend, shape, scenario)
        self.resize(1400, 900)

    # ------------------------------------------------------------------ layout
    def _build_center(self) -> None:
        center = QWidget()
        v = QVBoxLayout(center)
        v.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        row.addWidget(self.view, 1)
        row.addWidget(self.colorbar)
        v.addLayout(row, 1)
        zrow = QHBoxLayout()
        self.z_label = QLabel("z 0")
        self.z_slider = QSlider(Qt.Orientation.Horizontal)
        self.z_slider.setObjectName("z_slider")
        self.z_slider.valueChanged.connect(self._on_z_changed)
        zrow.addWidget(self.z_label)
        zrow.addWidget(self.z_slider, 1)
        self.z_row = QWidget()
        self.z_row.setLayout(zrow)
        v.addWidget(self.z_row)
        self.readout = QLabel("hover over the buffer to read an element")
        self.readout.setObjectName("readout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        f = QFont("monospace")
        f.setStyleHint(QFont.StyleHint.Monospace)
        self.readout.setFont(f)
        v.addWidget(self.readout)
        self.setCentralWidget(center)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.export_npy_action = QAction("Export front as .npy…", self)
        self.export_npy_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_npy_action.triggered.connect(lambda: self._export_dialog("npy"))
        self.export_png_action = QAction("Export front as PNG…", self)
        self.export_png_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
        self.export_png_action.triggered.connect(lambda: self._export_dialog("png"))
        self.quit_action = QAction("Quit", self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.export_npy_action)
        file_menu.addAction(self.export_png_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        view_menu = self.menuBar().addMenu("&View")
        fit = QAction("Fit to window", self)
        fit.setShortcut(QKeySequence("Ctrl+0"))
        fit.triggered.connect(self.view.fit)
        zin = QAction("Zoom in", self)
        zin.setShortcut(QKeySequence.StandardKey.ZoomIn)
        zin.triggered.connect(lambda: self.view.zoomBy(1.5))
        zout = QAction("Zoom out", self)
        zout.setShortcut(QKeySequence.StandardKey.ZoomOut)
        zout.triggered.connect(lambda: self.view.zoomBy(1 / 1.5))
        for a in (fit, zin, zout):
            view_menu.addAction(a)

        # The manager's controls, as keys: a debugger is driven from the keyboard.
        run_menu = self.menuBar().addMenu("&Run")
        enqueue = QAction("Enqueue the form's update", self)
        enqueue.setShortcut(QKeySequence("Ctrl+Shift+Return"))
        enqueue.triggered.connect(self.panel.enqueue_button.click)
        sync = QAction("Synchronize", self)
        sync.setShortcut(QKeySequence("Ctrl+Return"))
        sync.triggered.connect(lambda: self.session.synchronize())
        self.pause_action = QAction("Pause / resume the worker", self)
        self.pause_action.setShortcut(QKeySequence("Ctrl+P"))
        self.pause_action.triggered.connect(self.panel.pause_button.toggle)
        self.step_action = QAction("Step (apply the next update)", self)
        self.step_action.setShortcut(QKeySequence("F10"))
        self.step_action.triggered.connect(self.panel.step_button.click)
        for a in (enqueue, sync, self.pause_action, self.step_action):
            run_menu.addAction(a)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("About bufferscope", self)
        about.triggered.connect(self.showAbout)
        help_menu.addAction(about)

    # ------------------------------------------------------------------ start-up
    def _open_initial(self, backend: str, shape, scenario: str | None) -> None:
        sc = get_scenario(scenario) if scenario else None
        shp = tuple(shape) if shape else (sc.shape if sc else (256, 256))
        problem = backend_problem(backend)
        if problem and backend != "c":
            self.statusbar.message(f"{backend} backend unavailable ({problem}); using the C backend")
            backend = "c"
        if not self.session.open(backend, shp):
            if backend != "c":
                self.session.open("c", shp)
        if sc is not None and self.session.manager is not None:
            self.session.start_scenario(sc.name)

    # ------------------------------------------------------------------ session events
    def _on_manager_changed(self) -> None:
        m = self.session.manager
        shape = self.session.shape
        self.statusbar.resetRate()
        self.view.setTextureProvider(None)
        self.view.setRangeProvider(None)
        if m is not None and self._can_sample_texture(m, shape):
            self.view.setTextureProvider(m.front_texture)
            if hasattr(m, "front_range"):
                self.view.setRangeProvider(m.front_range)
        depth = shape[0] if len(shape) == 3 else 1
        self.z_row.setVisible(len(shape) == 3)
        self.z_slider.setRange(0, depth - 1)
        self.view.setFront(None, 0)
        self._last_readback = 0.0
        self._refresh_front(force=True)
        self.view.fit()

    def _can_sample_texture(self, m, shape: tuple[int, ...]) -> bool:
        """Whether the view can draw ``m.front_texture()`` directly (GL backend)."""
        if not hasattr(m, "front_texture"):
            return False
        try:
            if not getattr(m, "shares_context", True):
                self.statusbar.message("the GL backend's context is not shared with the view; "
                                       "the view uploads the front instead")
                return False
            rows = 1 if len(shape) == 1 else shape[-2]
            depth = shape[0] if len(shape) == 3 else 1
            layout = tuple(getattr(m, "texture_size", (shape[-1], depth * rows)))
            return layout == (shape[-1], depth * rows)
        except Exception as exc:
            self.statusbar.message(f"cannot sample the GL backend's texture: {exc}")
            return False

    def _on_front_changed(self, epoch: int) -> None:
        self._refresh_front()

    def _refresh_front(self, force: bool = False) -> None:
        s = self.session
        if s.manager is None:
            return
        now = time.monotonic()
        if self.view.usingSharedTexture and not force:
            # The view samples the GL backend's texture; read back only now and then
            # (for the readout). The levels are the GPU's, for this very epoch.
            if now - self._last_readback < 1.0 / TEXTURE_MODE_READBACK_HZ:
                self.view.epoch = s.epoch
                self.view.updateTextureLevels()
                self.view.update()
                self._readout_due = True   # the readout says how old its value is
                return
        front = s.front()
        if front is None:
            return
        self._last_readback = now
        st = s.last_stats
        self._data_visible_seq = st.visible_seq if st is not None and st.epoch == s.epoch else None
        self.view.setFront(front, s.epoch)
        self.view.updateTextureLevels()
        self._readout_due = True

    def _on_z_changed(self, z: int) -> None:
        self.view.setSlice(z)
        self.z_label.setText(f"z {z}")
        self._readout_due = True

    def _on_gl_info(self, info: dict) -> None:
        self.statusbar.setRenderer(info.get("renderer", "unavailable"))

    def _on_hover(self, index) -> None:
        self._hover_index = index
        self._update_readout()

    def _update_status(self) -> None:
        s = self.session
        st = s.last_stats
        self.statusbar.setStats(
            s.backend, s.epoch,
            None if st is None else st.pending,
            None if st is None else st.applied_seq,
            self.view.framesPerSecond(), s.paused,
        )
        if self._readout_due:
            self._update_readout()

    def readoutText(self, index: tuple[int, ...] | None) -> str:
        """What the readout says about element ``index`` of the shown front."""
        if index is None:
            return "hover over the buffer to read an element"
        value = self.view.valueAt(index)
        if value is None:
            return ""
        text = f"index {index}  value {format_value(value)}  epoch {self.view.data_epoch}"
        shown = self.view.drawn_epoch if self.view.usingSharedTexture else None
        if shown is None and self.view.usingSharedTexture:
            shown = self.session.epoch
        if shown is not None and shown != self.view.data_epoch:
            # Sampling the GL texture: the value was read back at an earlier epoch.
            text += f" (read back; the view shows epoch {shown})"
        m, st = self.session.manager, self.session.last_stats
        if m is not None and st is not None:
            try:
                w = m.last_writer(index, self._data_visible_seq)
            except Exception as exc:
                w = None
                text += f"  (history unavailable: {exc})"
            if w is not None:
                text += f"  last write: seq {w.seq} {w.op} by {w.producer}"
            elif m.forgotten_seq:
                text += f"  last write: before seq {m.forgotten_seq} (history full)"
            else:
                text += "  last write: none since the buffer was opened"
        return text

    def _update_readout(self) -> None:
        self._readout_due = False
        self.readout.setText(self.readoutText(self._hover_index))

    # ------------------------------------------------------------------ export
    def _export_dialog(self, kind: str) -> None:
        filt = "NumPy array (*.npy)" if kind == "npy" else "PNG image (*.png)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export front as {kind}",
                                              f"front-epoch{self.session.epoch}.{kind}", filt)
        if path:
            (self.exportNpy if kind == "npy" else self.exportPng)(path)

    def exportNpy(self, path: str) -> bool:
        """Save the front (full array, float32) to ``path``."""
        front = self.session.front()
        if front is None:
            return False
        data = np.array(front, copy=True)
        try:
            write_via_path(path, lambda tmp: np.save(tmp, data, allow_pickle=False))
        except OSError as exc:
            self.statusbar.message(f"export failed: {exc}")
            return False
        self.statusbar.message(f"front of epoch {self.session.epoch} saved to {path}")
        return True

    def exportPng(self, path: str) -> bool:
        """Save the shown plane through the current colormap, one pixel per element."""
        if self.view.usingSharedTexture:
            self._refresh_front(force=True)   # the read-back copy may be epochs old
        plane = self.view.front()
        if plane is None:
            return False
        levels = self.view.levels()
        if self.view.autoLevels() and self.view.levels_epoch != self.view.data_epoch:
            levels = colormaps.finite_levels(plane) or levels
        if plane.ndim == 1:
            plane = plane.reshape(1, -1)
        elif plane.ndim == 3:
            plane = plane[self.view.slice()]
        rgb = np.ascontiguousarray(colormaps.apply(plane, levels, self.view.colormap()))
        h, w = rgb.shape[:2]
        img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()

        def save(tmp: str) -> None:
            if not img.save(tmp, "PNG"):
                raise OSError(f"cannot write PNG {tmp}")

        try:
            write_via_path(path, save)
        except OSError as exc:
            self.statusbar.message(f"export failed: {exc}")
            return False
        self.statusbar.message(f"front (plane) saved to {path}")
        return True

    # ------------------------------------------------------------------ about
    def aboutText(self) -> str:
        import OpenGL
        from PyQt6.QtCore import PYQT_VERSION_STR, QT_VERSION_STR, qVersion

        import app

        try:
            from c_backend import abi_version

            abi = str(abi_version())
        except Exception as exc:
            abi = f"unavailable ({exc})"
        gl = self.view.gl_info
        rows = [
            ("bufferscope", app.__version__),
            ("Qt", f"{qVersion()} (built with {QT_VERSION_STR})"),
            ("PyQt6", PYQT_VERSION_STR),
            ("PyOpenGL", OpenGL.__version__),
            ("numpy", np.__version__),
            ("C library ABI", abi),
            ("GL renderer", gl.get("renderer", "not initialized")),
            ("GL version", gl.get("version", "—")),
        ]
        for name in ("c", "gl"):
            p = backend_problem(name)
            rows.append((f"{name} backend", "available" if p is None else f"unavailable: {p}"))
        return "\n".join(f"{k}: {v}" for k, v in rows)

    def showAbout(self) -> None:
        QMessageBox.about(self, "About bufferscope",
                          "<b>bufferscope</b> — see what a double-buffered buffer manager does."
                          "<pre>" + html.escape(self.aboutText()) + "</pre>")

    # ------------------------------------------------------------------ teardown
    def closeEvent(self, ev: QCloseEvent) -> None:
        self._status_timer.stop()
        self.session.close()
        self.view.releaseGL()
        super().closeEvent(ev)
