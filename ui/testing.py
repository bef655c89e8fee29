"""Test helpers for the Qt side (used by ``tests/test_ui_*.py``; imports pytest lazily).

Importing this module prepares Qt (shared GL contexts, GL 3.3 core) so it must be
imported before pytest-qt creates the QApplication — test modules import it at the
top, which happens at collection time.
"""

from __future__ import annotations

import contextlib
import functools
import os

from .launch import prepare_qt

prepare_qt()


@functools.cache
def gl_problem() -> str | None:
    """None when an OpenGL 3.3 core context can be made and used here, else why not.

    Probed once per process, and the probe's context and surface are destroyed
    right away: a QOpenGLContext left to the garbage collector can be destroyed
    in the middle of another widget's paint and leave no context current.
    """
    from PyQt6.QtGui import QGuiApplication

    from gl_backend._context import with_context

    from .buffer_view import view_format

    if QGuiApplication.instance() is None:
        return "no QGuiApplication"
    _, problem = with_context(view_format(), lambda ctx: None, need=(3, 3))
    return problem


def require_gl() -> None:
    """Skip a GL test where no context can be made — but FAIL on CI (CI=true)."""
    import pytest

    problem = gl_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but no OpenGL 3.3 context: {problem}")
    pytest.skip(f"no OpenGL 3.3 context: {problem}")


def pixel(image, x: int, y: int) -> tuple[int, int, int]:
    """RGB of a QImage pixel."""
    c = image.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


def close_enough(a, b, tol: int = 2) -> bool:
    return all(abs(int(p) - int(q)) <= tol for p, q in zip(a, b))


def open_window(qtbot, **kwargs):
    """A shown ``MainWindow`` (no scenario unless asked) with its first front drawn."""
    from .main_window import MainWindow

    kwargs.setdefault("scenario", None)
    w = MainWindow(**kwargs)
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    if w.session.manager is not None:   # the first front arrives from the sync thread
        qtbot.waitUntil(lambda: w.view.front() is not None, timeout=5000)
    return w


@contextlib.contextmanager
def shown_view(qtbot, size: int):
    """A bare ``BufferView`` of ``size``×``size`` pixels, shown and exposed (skips, or
    fails in CI, without GL); closed on exit. The view tests' ``view`` fixtures."""
    from .buffer_view import BufferView

    require_gl()
    v = BufferView()
    qtbot.addWidget(v)
    v.resize(size, size)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.close()


def sync(qtbot, session, timeout_ms: int = 5000) -> int:
    """Ask ``session`` for a synchronize and wait until that very request ended (it
    runs on the session's sync thread); the epoch it left."""
    done: dict[str, int] = {}

    def finished(req: int, epoch: int, error: str) -> None:
        if req >= done.get("want", 1 << 62):
            done["epoch"] = epoch

    session.sigSyncFinished.connect(finished)
    try:
        done["want"] = session.synchronize()
        qtbot.waitUntil(lambda: "epoch" in done, timeout=timeout_ms)
    finally:
        session.sigSyncFinished.disconnect(finished)
    return done["epoch"]
