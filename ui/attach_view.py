"""Live attach in the app: a window on a running program's published manager (SPEC §5, §7).

``open_attached_window(target)`` opens a ``MainWindow`` whose session shows an
``app.attach.RemoteManager`` instead of a local manager: the view draws the
program's front as it arrives, the status bar says "attached to <path> (pid N,
backend c)" and, when the program ends, says so (the last front stays shown).
File ▸ Detach (or closing the window, or picking a local backend, which copies the
shown front into it) lets go of the program, which runs on. ``add_attach_action``
adds File ▸ Attach to a running program… to any ``MainWindow``; ``gui(target)`` is
what ``bufferscope attach PATH|PORT`` runs.
"""

from __future__ import annotations

import sys

from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QInputDialog, QMenu, QWidget

from app.attach import CONNECT_TIMEOUT_S, AttachError, RemoteManager, read_token
from app.live import ProtocolError

ATTACHED_BACKEND = "attached"   # the session's backend name while it shows a remote program
WATCH_MS = 250
ATTACH_HZ = 30.0


def attach(window, target: str, token: str | None = None,
           timeout: float = CONNECT_TIMEOUT_S) -> RemoteManager | None:
    """Show the program at ``target`` in ``window`` (a ``MainWindow``) in place of its
    manager; None (and a status message) when attaching fails."""
    try:
        remote = RemoteManager(target, token if token is not None else read_token(target), timeout)
    except (AttachError, ProtocolError, OSError) as exc:
        window.statusbar.message(f"cannot attach to {target}: {exc}")
        return None
    s = window.session
    s.stop_scenario()
    s.set_autosync(True, ATTACH_HZ)   # each "sync" just picks up the latest front received
    s.adopt(remote, ATTACHED_BACKEND)
    window.setWindowTitle(f"bufferscope — attached to {remote.description}")
    window.statusbar.message(f"attached to {remote.description}")
    watcher = QTimer(window)
    watcher.setObjectName("attach_watcher")

    def watch() -> None:
        current = s.manager
        if current is not remote:       # detached, or replaced by a local manager
            watcher.stop()
            watcher.deleteLater()
            if not remote.closed:
                remote.close()
            window.statusbar.message(f"detached from {remote.description}; the program runs on")
            return
        if remote.ended:
            watcher.stop()
            watcher.deleteLater()
            window.statusbar.message(f"{remote.description}: {remote.ended}; its last front stays shown")
            controls = getattr(window, "debug_controls", None)
            if controls is not None:
                controls._enable()        # "ended", and nothing to pause or step

    watcher.timeout.connect(watch)
    watcher.start(WATCH_MS)
    return remote


def detach(window) -> bool:
    """Let go of the attached program (it runs on), keeping its last front in a
    local C manager. False when the window shows no attached program."""
    s = window.session
    if s.backend != ATTACHED_BACKEND:
        return False
    if not s.switch_backend("c"):
        s.open("c", s.shape)
    return True


def open_attached_window(target: str, token: str | None = None,
                         timeout: float = CONNECT_TIMEOUT_S, parent: QWidget | None = None):
    """A new ``MainWindow`` attached to ``target``; raises ``AttachError`` when it cannot be."""
    from .main_window import MainWindow

    win = MainWindow(backend="c", shape=None, scenario=None, parent=parent)
    if attach(win, target, token, timeout) is None:
        reason = win.statusbar.currentMessage()
        win.close()
        win.deleteLater()
        raise AttachError(reason)
    add_detach_action(win)
    return win


def _file_menu(window) -> QMenu:
    for act in window.menuBar().actions():
        if act.menu() is not None and act.text().replace("&", "") == "File":
            return act.menu()
    return window.menuBar().addMenu("&File")


def add_detach_action(window) -> QAction:
    act = QAction("Detach from the program", window)
    act.setObjectName("detach_action")
    act.triggered.connect(lambda: detach(window))
    menu = _file_menu(window)
    first = menu.actions()[0] if menu.actions() else None
    menu.insertAction(first, act)
    return act


def add_attach_action(main_window) -> QAction:
    """File ▸ Attach to a running program…: asks for a socket path or port and opens
    a window on it (the current window and its manager are left as they are)."""
    act = QAction("Attach to a running program…", main_window)
    act.setObjectName("attach_action")
    windows: list = []

    def ask() -> None:
        target, ok = QInputDialog.getText(
            main_window, "Attach to a running program",
            "Socket path or port the program publishes on (BUFFERSCOPE_LISTEN):")
        target = target.strip()
        if ok and target:
            try:
                w = open_attached_window(target)
            except AttachError as exc:
                main_window.statusbar.message(str(exc))
                return
            windows.append(w)     # kept alive as long as the main window
            w.destroyed.connect(lambda *_a, w=w: windows.remove(w) if w in windows else None)
            w.show()

    act.triggered.connect(ask)
    menu = _file_menu(main_window)
    first = menu.actions()[0] if menu.actions() else None
    menu.insertAction(first, act)
    return act


def gui(target: str, token: str | None = None, timeout: float = CONNECT_TIMEOUT_S) -> int:
    """``bufferscope attach PATH|PORT``: the app on the program; the exit code."""
    from app.display import display_problem

    from .launch import _application

    problem = display_problem()
    if problem:
        print(f"bufferscope attach: error: cannot open the window: {problem}", file=sys.stderr)
        return 1
    app = _application()
    try:
        win = open_attached_window(target, token, timeout)
    except AttachError as exc:
        print(f"bufferscope attach: error: {exc}", file=sys.stderr)
        return 1
    win.show()
    try:
        return int(app.exec())
    finally:
        win.session.close()
