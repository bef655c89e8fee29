"""The GL backend: a worker thread with its own OpenGL context applies updates on the GPU.

``why_not()`` says why the backend cannot run here (PyQt6 or PyOpenGL missing, no
display, no OpenGL 4.3 core context); ``open_manager`` is what
``app.open_manager("gl", ...)`` calls. ``GLBufferManager`` and
``surface_format`` are imported lazily, so importing this package pulls in
neither Qt nor OpenGL.
"""

from __future__ import annotations

__all__ = ["GLBufferManager", "open_manager", "surface_format", "why_not"]


def why_not() -> str | None:
    """None when a GL manager can be opened here, else the reason it cannot."""
    try:
        from . import _context
    except ImportError as exc:  # pragma: no cover - app.errors is always there
        return f"the GL backend cannot be imported: {exc}"
    return _context.probe()


def open_manager(shape, fill, max_pending, **options):
    """A ``GLBufferManager``; options: ``event_capacity``, ``share_context``."""
    from .gl_manager import GLBufferManager

    return GLBufferManager(shape, fill, max_pending, **options)


def surface_format():
    """The ``QSurfaceFormat`` a viewer sharing textures with a GL manager should use."""
    from ._context import surface_format as fmt

    return fmt()


def __getattr__(name: str):
    if name == "GLBufferManager":
        from .gl_manager import GLBufferManager

        return GLBufferManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
