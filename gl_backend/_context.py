"""Qt plumbing for the GL backend: the application, the surface format, and offscreen contexts.

Everything Qt-specific that is not the worker lives here: making sure a
``QGuiApplication`` exists (and that one *can* exist: without a display Qt aborts
the process instead of raising, so we check first), the ``QSurfaceFormat`` every
bufferscope context uses, and the probe behind ``why_not()``.
"""

from __future__ import annotations

import os
import sys
import threading

from app.display import display_problem
from app.errors import BackendUnavailableError

# Compute shaders, image load/store, texture views and glCopyImageSubData.
GL_VERSION = (4, 3)


def ensure_app():
    """The running ``QGuiApplication`` (or ``QApplication``), created when there is none.

    Made on the main thread when called there. Called from another thread (a
    script that opens its first GL manager in a worker thread), the application
    is made on a "Qt home" thread of ours that lives as long as the process, and
    every Qt surface and context is then created and destroyed there
    (``on_app_thread``): an application whose thread has ended crashes Qt when it
    is destroyed at exit.
    """
    from PyQt6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is not None:
        return app
    problem = display_problem()
    if problem:
        raise BackendUnavailableError(f"cannot start Qt for the GL backend: {problem}")
    if threading.current_thread() is threading.main_thread():
        # Kept for the life of the process: Qt objects must not outlive their application.
        _created_app.append(QGuiApplication(_app_argv()))
        return _created_app[0]
    with _home_lock:
        if not _home:
            _home.append(_QtHome())
    return _home[0].app


def _app_argv() -> list[str]:
    return [sys.argv[0] if sys.argv and sys.argv[0] else "bufferscope"]


_created_app: list = []
_home: list = []
_home_lock = threading.Lock()


class _QtHome:
    """A thread that makes the QGuiApplication and then runs calls for others."""

    def __init__(self) -> None:
        import queue

        self.calls: queue.Queue = queue.Queue()
        self.app = None
        self.error: BaseException | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,),
                                       name="bufferscope-qt-home", daemon=True)
        self.thread.start()
        if not ready.wait(60.0):
            raise BackendUnavailableError("the Qt home thread did not start")
        if self.error is not None:
            raise BackendUnavailableError(f"cannot start Qt for the GL backend: {self.error}")

    def _run(self, ready: threading.Event) -> None:
        from PyQt6.QtGui import QGuiApplication

        try:
            os.environ.setdefault("QT_NO_GLIB", "1")   # no GLib main context to unwind at exit
            self.app = QGuiApplication(_app_argv())
        except BaseException as exc:
            self.error = exc
            ready.set()
            return
        ready.set()
        while True:
            fn, box, done = self.calls.get()
            try:
                box.append((fn(), None))
            except BaseException as exc:
                box.append((None, exc))
            done.set()

    def call(self, fn):
        box: list = []
        done = threading.Event()
        self.calls.put((fn, box, done))
        while not done.wait(0.05):   # returns to Python often (Ctrl+C)
            pass
        result, exc = box[0]
        if exc is not None:
            raise exc
        return result


def on_app_thread(fn):
    """``fn()`` on the thread of the application we made on the Qt home thread, or
    here when the application is not ours (the app's own GUI thread calls us)."""
    if _home and threading.current_thread() is not _home[0].thread:
        return _home[0].call(fn)
    return fn()


def surface_format():
    """The ``QSurfaceFormat`` of bufferscope's contexts: OpenGL 4.3 core.

    A viewer that shares objects with a GL manager should use it too, e.g.
    ``QSurfaceFormat.setDefaultFormat(gl_backend.surface_format())`` before the
    ``QApplication`` is created.
    """
    from PyQt6.QtGui import QSurfaceFormat

    fmt = QSurfaceFormat()
    fmt.setRenderableType(QSurfaceFormat.RenderableType.OpenGL)
    fmt.setVersion(*GL_VERSION)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    return fmt


def create_offscreen(share_context=None):
    """A created ``(QOffscreenSurface, QOpenGLContext)`` pair, not current anywhere.

    Call on the GUI thread. ``share_context`` (a ``QOpenGLContext``) makes the new
    context share textures and buffers with it; without it the application's
    global share context is used when there is one (``AA_ShareOpenGLContexts``).
    Raises ``BackendUnavailableError`` when no 4.3 core context can be made.
    """
    ensure_app()
    return on_app_thread(lambda: _create_offscreen(share_context))


def _create_offscreen(share_context):
    from PyQt6.QtGui import QOffscreenSurface, QOpenGLContext

    fmt = surface_format()
    surface = QOffscreenSurface()
    surface.setFormat(fmt)
    surface.create()
    if not surface.isValid():
        _dispose(surface, None)
        raise BackendUnavailableError("cannot create an offscreen surface for OpenGL")
    ctx = QOpenGLContext()
    ctx.setFormat(fmt)
    share = share_context if share_context is not None else QOpenGLContext.globalShareContext()
    if share is not None:
        ctx.setShareContext(share)
    if not ctx.create():
        _dispose(surface, ctx)
        raise BackendUnavailableError(
            f"cannot create an OpenGL {GL_VERSION[0]}.{GL_VERSION[1]} core context"
        )
    if share_context is not None and ctx.shareContext() is None:
        _dispose(surface, ctx)
        raise BackendUnavailableError("the OpenGL context cannot share objects with share_context")
    got = (ctx.format().majorVersion(), ctx.format().minorVersion())
    if got < GL_VERSION:
        _dispose(surface, ctx)
        raise BackendUnavailableError(
            f"the GL backend needs OpenGL {GL_VERSION[0]}.{GL_VERSION[1]} core "
            f"(compute shaders, image load/store); this driver gives {got[0]}.{got[1]}"
        )
    return surface, ctx


def with_context(fmt, work, need: tuple[int, int] = (0, 0)):
    """Make an offscreen context of ``fmt``, current here, run ``work(ctx)`` in it
    and destroy it at once; ``(result, None)``, or ``(None, why not)`` when no such
    context (of at least OpenGL ``need``) can be made. The one OpenGL probe of
    bufferscope (the GL backend's ``probe``, the viewer's tests and ``glinfo`` use it).
    A context left to the garbage collector can be destroyed in the middle of
    another widget's paint, hence the explicit disposal."""
    from PyQt6.QtGui import QOffscreenSurface, QOpenGLContext

    ensure_app()
    surface = QOffscreenSurface()
    surface.setFormat(fmt)
    surface.create()
    ctx = QOpenGLContext()
    ctx.setFormat(fmt)
    try:
        if not surface.isValid():
            return None, "cannot create an offscreen surface for OpenGL"
        if not ctx.create():
            return None, "QOpenGLContext.create() failed"
        if not ctx.makeCurrent(surface):
            return None, "cannot make an OpenGL context current"
        try:
            got = (ctx.format().majorVersion(), ctx.format().minorVersion())
            if got < need:
                return None, f"OpenGL {got[0]}.{got[1]} < {need[0]}.{need[1]}"
            return work(ctx), None
        finally:
            ctx.doneCurrent()
    finally:
        dispose(surface, ctx)


def dispose(surface, ctx) -> None:
    """Destroy a pair made by ``create_offscreen`` (on the thread the objects live in)."""
    on_app_thread(lambda: _dispose(surface, ctx))


def _dispose(surface, ctx) -> None:
    from PyQt6 import sip
    from PyQt6.QtCore import QThread

    for obj in (ctx, surface):
        if obj is None or sip.isdeleted(obj):
            continue
        if obj.thread() is QThread.currentThread() or obj.thread() == QThread.currentThread():
            if obj is surface:
                surface.destroy()
            sip.delete(obj)
        else:
            # Not our thread: let the owner's event loop delete it.
            sip.transferto(obj, None)
            obj.deleteLater()


_probe_result: list[str | None] = []


def probe() -> str | None:
    """None when an offscreen 4.3 core context can be made here, else why not (cached)."""
    if _probe_result:
        return _probe_result[0]
    try:
        import OpenGL.GL  # noqa: F401
    except Exception as exc:  # ImportError, or PyOpenGL failing to load libGL
        return _remember(f"PyOpenGL cannot be used: {exc}")
    try:
        from PyQt6.QtGui import QGuiApplication  # noqa: F401
    except ImportError as exc:
        return _remember(f"PyQt6 cannot be imported: {exc}")
    try:
        surface, ctx = create_offscreen()
    except BackendUnavailableError as exc:
        return _remember(str(exc))
    dispose(surface, ctx)
    return _remember(None)


def _remember(reason: str | None) -> str | None:
    _probe_result[:] = [reason]
    return reason
