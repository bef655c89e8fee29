"""``MainWindow``: the bufferscope application window (SPEC §7).

The buffer view with its color bar, z-slider (3-D buffers) and hover readout in the
middle, the control panel docked on the right, the message log docked below
(hidden until asked for), the status bar, and the File, View, Run and Help menus.
The window owns the ``Session`` and the ``DisplayState``; its actions call them
directly, and every widget follows their signals. It opens on a live scenario
and, when closed, stops the scenario's threads and closes the manager. Exports and
the backend switch (long operations on the session's worker, with progress and
Cancel in the status bar) are the ``LongOperations`` mixin (``ui.window_tasks``).

Features that add docks, menus or actions install themselves at the end of
``__init__``, next to ``install_debug_docks(self)``: after the menus, docks and
signal wiring they extend exist, before the initial manager is opened.
"""

from __future__ import annotations

import html

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QCloseEvent, QFont, QKeySequence, QOpenGLContext
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.scenarios import DEFAULT_SCENARIO, get_scenario

from .actions import make_action
from .attach_view import add_attach_action
from .buffer_view import BufferView
from .color_bar import ColorBar, format_value
from .control_panel import ControlPanel
from .debug_docks import install_debug_docks
from .display_state import DisplayState
from .history_docks import install_history_docks
from .history_feed import HistoryFeed
from .message_log import MessageLog
from .session import Session, backend_problem
from .status_bar import StatusBar
from .trace_menu import install_trace_menu
from .window_tasks import LongOperations

READOUT_HZ = 4.0


class MainWindow(LongOperations, QMainWindow):
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
        self.state = DisplayState()
        self.view = BufferView(self.state)
        self.session.front_wanted = self.view.readback_due
        self.front_uploader = None     # made when first wanted (ui.front_upload)
        self.colorbar = ColorBar(self.state)
        self.statusbar = StatusBar(self)
        self.setStatusBar(self.statusbar)
        self._hover_index: tuple[int, ...] | None = None
        self._readout_due = False
        self._build_center()
        self.panel = ControlPanel(self.session, self.state, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel)
        self.message_log = MessageLog(self.statusbar, self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.message_log)
        self.message_log.hide()
        self._build_busy()
        self._build_menus()
        self.history_feed = HistoryFeed(self.session, self)   # the one history every dock reads
        install_history_docks(self)   # element history, race flag, diff: self.history_docks

        s = self.session
        s.sigMessage.connect(self.statusbar.message)
        s.sigManagerChanged.connect(self._on_manager_changed)
        s.sigFrontChanged.connect(self._on_front_changed)
        s.sigPausedChanged.connect(lambda _p: self._update_status())
        s.sigBusyChanged.connect(self._on_busy_changed)
        self.view.sigHover.connect(self._on_hover)
        self.view.sigRegionSelected.connect(
            lambda box: self.panel.form.set_plane_region(box, self.state.z))
        self.view.sigGLInfo.connect(
            lambda info: self.statusbar.set_renderer(info.get("renderer", "unavailable")))
        self.view.sigGLError.connect(self.statusbar.message)
        self.statusbar.sigLogRequested.connect(self.message_log.show_log)
        self.state.sigSliceChanged.connect(self._on_slice_changed)

        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._update_status)
        self._status_timer.start(int(1000 / READOUT_HZ))

        # Features install themselves here, in order: each gets the finished window.
        install_debug_docks(self)   # update log, timeline, stepping toolbar, Debug menu
        install_trace_menu(self)    # File: record, open trace, Perfetto, lockstep: self.trace_actions
        self.attach_action = add_attach_action(self)   # File: attach to a running program
        self._open_initial(backend, shape, scenario)
        self.resize(1400, 900)
        # The bottom docks share the width: the element history needs room for
        # "before → after" and who won a race, the log for its columns.
        self.resizeDocks([self.history_docks.dock, self.update_log, self.timeline],
                         [5, 5, 4], Qt.Orientation.Horizontal)

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
        self.z_slider.valueChanged.connect(self.state.set_z)
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

    def _action(self, menu, text: str, slot, *keys) -> QAction:
        """An action of this window calling ``slot``, shortcuts ``keys``, in ``menu``."""
        return make_action(self, text, slot, *keys, add_to=menu)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.export_npy_action = self._action(file_menu, "Export front as .npy…",
                                              lambda: self._export_dialog("npy"), "Ctrl+E")
        self.export_png_action = self._action(file_menu, "Export front as PNG…",
                                              lambda: self._export_dialog("png"), "Ctrl+Shift+E")
        file_menu.addSeparator()
        self.cancel_action = self._action(file_menu, "Cancel the running export or switch",
                                          self.session.cancel_tasks, "Esc")
        self.cancel_action.setEnabled(False)
        file_menu.addSeparator()
        self.quit_action = self._action(file_menu, "Quit", self.close, "Ctrl+Q")

        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "Fit to window", self.view.fit, "Ctrl+0")
        # Ctrl+= too: the "+" of the standard Ctrl++ needs Shift on most layouts.
        self.zoom_in_action = self._action(view_menu, "Zoom in", lambda: self.view.zoom_by(1.5),
                                           QKeySequence(QKeySequence.StandardKey.ZoomIn),
                                           "Ctrl+=", "Ctrl++")
        self.zoom_out_action = self._action(view_menu, "Zoom out",
                                            lambda: self.view.zoom_by(1 / 1.5),
                                            QKeySequence(QKeySequence.StandardKey.ZoomOut),
                                            "Ctrl+-")
        self._action(view_menu, "Clear the selection", lambda: self.state.set_selection(None))
        view_menu.addSeparator()
        self.log_action = self.message_log.toggleViewAction()
        self.log_action.setText("Message log")
        self.log_action.setShortcut(QKeySequence("Ctrl+L"))
        view_menu.addAction(self.log_action)

        # The manager's controls, as keys: a debugger is driven from the keyboard.
        s = self.session
        run_menu = self.menuBar().addMenu("&Run")
        self._action(run_menu, "Enqueue the form's update", self.panel.form.enqueue_from_form,
                     "Ctrl+Shift+Return")
        self._action(run_menu, "Synchronize", lambda: s.synchronize(), "Ctrl+Return")
        self.pause_action = self._action(run_menu, "Pause / resume the worker",
                                         lambda: s.set_paused(not s.paused), "Ctrl+P")
        self.step_action = self._action(run_menu, "Step (apply the next update)",
                                        lambda: s.step(1), "F10")
        run_menu.addSeparator()
        self.switch_action = self._action(run_menu, "Switch backend (C ↔ GL, keeps everything)",
                                          self.toggle_backend, "Ctrl+Shift+B")

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "About bufferscope", self.show_about)

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
        self.statusbar.reset_rate()
        self.view.set_front(None, 0)
        s = self.session
        s.front_uploader, s.copy_fronts = None, False
        if m is not None and self._can_sample_texture(m, shape):
            caps = m.capabilities
            # epochs as session epochs: they continue across switches
            self.view.set_texture_source(
                s.front_texture, s.request_front_range if caps.gpu_range else None)
            s.copy_fronts = True          # the readout's copy is made on the worker
        elif m is not None and (up := self._uploader_for(shape)) is not None:
            self.view.set_texture_source(up.texture, up.levels, drawn=up.drawn)
            s.front_uploader, s.copy_fronts = up, True
        else:
            self.view.set_texture_source(None)
        self.state.set_selection(None)
        depth = shape[0] if len(shape) == 3 else 1
        self.z_row.setVisible(len(shape) == 3)
        self.z_slider.setRange(0, depth - 1)
        self.view.fit()

    def _uploader_for(self, shape: tuple[int, ...]):
        """The ``FrontUploader`` that fills the view's texture on the sync worker, when
        a buffer of ``shape`` can be shown that way (None: the view uploads)."""
        if self.session.front_changes is None:     # (an attached program's manager)
            return None
        up = self.front_uploader
        if up is None:
            try:
                from .front_upload import FrontUploader

                thread = self.session.worker_thread()
                if thread is None:
                    raise RuntimeError("the sync worker did not start")
                up = FrontUploader(thread)
            except Exception as exc:
                self.statusbar.message(f"the view uploads the front itself: {exc}")
                self.front_uploader = False
                return None
            self.front_uploader = up
            self.session.add_worker_exit_hook(up.release)
        if up is False or up.failed or not up.usable(shape):
            return None
        return up

    def _can_sample_texture(self, m, shape: tuple[int, ...]) -> bool:
        """Whether the view can draw ``m.front_texture()`` directly (GL backend)."""
        if not m.capabilities.front_texture:
            return False
        try:
            if not m.shares_context:
                self.statusbar.message("the GL backend's context is not shared with the view; "
                                       "the view uploads the front instead")
                return False
            rows = 1 if len(shape) == 1 else shape[-2]
            depth = shape[0] if len(shape) == 3 else 1
            return tuple(m.texture_size) == (shape[-1], depth * rows)
        except Exception as exc:
            self.statusbar.message(f"cannot sample the GL backend's texture: {exc}")
            return False

    def _on_front_changed(self, epoch: int, front) -> None:
        """A new epoch is visible; ``front`` is its read-back (None in texture mode
        between read-backs: the view samples the texture, the readout says how old
        its value is)."""
        if front is None:
            self.view.set_epoch(epoch)
        else:
            self.view.set_front(front, epoch, self.session.changes,
                                owned=self.session.copy_fronts)
        self._readout_due = True

    def _on_slice_changed(self, z: int) -> None:
        if self.z_slider.value() != z:
            self.z_slider.setValue(z)
        self.z_label.setText(f"z {z}")
        self._readout_due = True

    def _on_hover(self, index) -> None:
        self._hover_index = index
        self._update_readout()

    def _update_status(self) -> None:
        s = self.session
        st = s.last_stats
        self.statusbar.set_stats(
            s.backend, s.epoch,
            None if st is None else st.pending,
            None if st is None else st.applied_seq,
            self.view.frames_per_second(), s.paused,
        )
        if self._readout_due:
            self._update_readout()

    def readout_text(self, index: tuple[int, ...] | None) -> str:
        """What the readout says about element ``index`` of the shown front."""
        if index is None:
            return "hover over the buffer to read an element"
        value = self.view.value_at(index)
        if value is None:
            return ""
        v = self.view
        text = f"index {index}  value {format_value(value)}  epoch {v.data_epoch}"
        if v.using_shared_texture:
            shown = v.drawn_epoch if v.drawn_epoch is not None else self.session.epoch
            if shown != v.data_epoch:
                # Sampling the GL texture: the value was read back at an earlier epoch.
                text += f" (read back; the view shows epoch {shown})"
        if self.session.manager is not None:
            text += self.history_docks.last_write_text(index, v.data_epoch)
        return text

    def _update_readout(self) -> None:
        self._readout_due = False
        self.readout.setText(self.readout_text(self._hover_index))

    # ------------------------------------------------------------------ about
    def about_text(self) -> str:
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

    def show_about(self) -> None:
        QMessageBox.about(self, "About bufferscope",
                          "<b>bufferscope</b> — see what a double-buffered buffer manager does."
                          "<pre>" + html.escape(self.about_text()) + "</pre>")

    # ------------------------------------------------------------------ teardown
    def closeEvent(self, ev: QCloseEvent) -> None:
        self._status_timer.stop()
        self.history_docks.races.close()
        self.session.close()             # (the worker releases the uploader's objects)
        if self.front_uploader:
            self.front_uploader.dispose()
            self.front_uploader = None
        self.view.release_gl()
        super().closeEvent(ev)
