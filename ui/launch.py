"""Entry points the CLI (``app/cli.py``) calls: ``gui`` and ``screenshot``.

Both prepare Qt the same way before any ``QApplication`` exists: contexts shared
(``AA_ShareOpenGLContexts``, so the GL backend's context can share textures with
the view) and OpenGL 3.3 core as the default surface format.
"""

from __future__ import annotations

import os
import sys

from app import BACKENDS
from app.display import display_problem, has_display
from app.errors import BackendUnavailableError
from app.scenarios import DEFAULT_SCENARIO, get_scenario


def prepare_qt() -> None:
    """Qt settings that must precede the QApplication (harmless to call twice)."""
    from PyQt6.QtCore import QCoreApplication, Qt
    from PyQt6.QtGui import QSurfaceFormat

    from .buffer_view import view_format

    if QCoreApplication.instance() is None:
        QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        QSurfaceFormat.setDefaultFormat(view_format())


def _application():
    from PyQt6.QtWidgets import QApplication

    if not (has_display() or os.environ.get("QT_QPA_PLATFORM")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"   # screenshots need no display
    prepare_qt()
    app = QApplication.instance()
    if app is not None and not isinstance(app, QApplication):
        raise RuntimeError(
            f"a {type(app).__name__} already exists (widgets need a QApplication): "
            "create the QApplication before opening a GL manager")
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("bufferscope")
        app.setOrganizationName("bufferscope")
    return app


def _check_names(backend: str, scenario: str | None) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if scenario is not None:
        get_scenario(scenario)  # ValueError naming the choices


def gui(backend: str, shape: tuple[int, ...] | None, scenario: str | None) -> int:
    """Open the main window on a live scenario and run the event loop; the exit code."""
    _check_names(backend, scenario)
    problem = display_problem()
    if problem:
        print(f"bufferscope: error: cannot open the window: {problem}", file=sys.stderr)
        return 1
    app = _application()
    from .main_window import MainWindow

    win = MainWindow(backend=backend, shape=shape, scenario=scenario or DEFAULT_SCENARIO)
    win.show()
    try:
        return int(app.exec())
    finally:
        win.session.close()


def screenshot(
    backend: str,
    scenario: str,
    out: str,
    shape: tuple[int, ...] | None = None,
    size: tuple[int, int] = (1400, 900),
    settle_s: float = 1.5,
) -> None:
    """Render the main window running ``scenario`` for ``settle_s`` and save it as PNG.

    Raises ValueError for an unknown backend or scenario, and
    ``app.BackendUnavailableError`` when ``backend`` cannot run here.
    """
    _check_names(backend, scenario)
    app = _application()  # before why_not("gl"), which would make a bare QGuiApplication
    from PyQt6.QtCore import QEventLoop, QTimer

    from .session import backend_problem

    problem = backend_problem(backend)
    if problem:
        raise BackendUnavailableError(f"backend {backend!r} is unavailable: {problem}")

    from app.atomic import write_via_path

    from .main_window import MainWindow

    win = MainWindow(backend=backend, shape=shape, scenario=scenario)
    try:
        if win.session.backend != backend:
            raise BackendUnavailableError(
                f"backend {backend!r} could not be opened: {win.session.last_error}")
        win.resize(*size)
        win.show()
        loop = QEventLoop()
        QTimer.singleShot(max(0, int(settle_s * 1000)), loop.quit)
        loop.exec()
        pixmap = win.grab()

        def save(tmp: str) -> None:
            if not pixmap.save(tmp, "PNG"):
                raise OSError(f"cannot write PNG {tmp}")

        write_via_path(out, save)
    finally:
        win.close()
        win.deleteLater()
        app.processEvents()
