"""``TracePlayerWindow``: the trace player (``ui.trace_player``) as a window —
``bufferscope open TRACE`` and File ▸ Open trace… in the main window.

The player (view, scrubber, play, Next race) in the middle; around it the debug
docks of the live window over the trace's updates (``ui.trace_docks``): the update
log on the right, the timeline below, the element history beside it once an element
is clicked — linked to the player both ways. A File menu (open, Export Perfetto…,
Lockstep C vs GL…, Close), a View menu for the docks, and a status bar.
"""

from __future__ import annotations

import sys

from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QFileDialog, QMainWindow, QStatusBar, QWidget

from app.trace import TraceError

from .trace_docks import TraceDocks
from .trace_player import TracePlayer


class TracePlayerWindow(QMainWindow):
    """The player as a window (see the module docstring); its docks are
    ``self.docks`` (a ``TraceDocks``)."""

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
        self.docks = TraceDocks(self)
        self.resize(1400, 900)
        self.docks.arrange()
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
