"""Qt plumbing for the GL backend: the application, the surface format, and offscreen contexts.

Everything Qt-specific that is not the worker lives here: making sure a
``QGuiApplication`` exists (and that one *can* exist: without a display Qt aborts
the process instead of raising, so we check first), the ``QSurfaceFormat`` every
bufferscope context uses, and the probe behind ``why_not()``.
"""

from __future__ import annotations

import sys

from app.display import display_problem
from app.errors import BackendUnavailableError

# Compute shaders, image load/store, texture views and glCopyImageSubData.
GL_VERSION = (4, 3)


def ensure_app():
    """The running ``QGuiApplication`` (or ``QApplication``), created when there is none."""
    from PyQt6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is not None:
        return app
    problem = display_problem()
    if problem:
        raise BackendUnavailableError(f"cannot start Qt for the GL backend: {problem}")
    # Kept for the life of the process: Qt objects must not outlive their application.
    _created_app.append(
        QGuiApplication([sys.argv[0] if sys.argv and sys.argv[0] else "bufferscope"])
    )
    return _created_app[0]


_created_app: list = []


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
    from PyQt6.QtGui import QOffscreenSurface, QOpenGLContext

    ensure_app()
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


def dispose(surface, ctx) -> None:
    """Destroy a pair made by ``create_offscreen`` (on the thread the objects live in)."""
    _dispose(surface, ctx)


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
