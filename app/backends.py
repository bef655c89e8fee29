"""The registry of manager backends: ``open_manager`` picks one by name.

Each entry names a module that provides ``open_manager(shape, fill, max_pending,
**options)`` and ``why_not() -> str | None`` (None when the backend can run
here). The app lists backends with the reason any of them is unavailable.
With ``BUFFERSCOPE_LISTEN`` set, every manager opened here is published for a
viewer (``app.live``); the publisher holds it weakly and stops when it closes.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from . import live
from .errors import BackendUnavailableError
from .manager import DEFAULT_MAX_PENDING, BufferManager, check_open_args


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str
    title: str


BACKENDS: dict[str, BackendInfo] = {
    "c": BackendInfo("c", "c_backend", "C library (pthread worker, cffi)"),
    "gl": BackendInfo("gl", "gl_backend", "OpenGL (worker thread with its own context)"),
}

# Backends that open_manager accepts but the app does not offer: "numpy" runs the
# GL backend's scheduler on two numpy arrays (the protocol tested without OpenGL).
REFERENCE_BACKENDS: dict[str, BackendInfo] = {
    "numpy": BackendInfo("numpy", "app.numpy_executor", "numpy reference (scheduler on the CPU)"),
}


def _module(name: str):
    info = BACKENDS.get(name) or REFERENCE_BACKENDS.get(name)
    if info is None:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(info.module)
    except ImportError as exc:
        raise BackendUnavailableError(f"backend {name!r} cannot be imported: {exc}") from exc


def why_not(name: str) -> str | None:
    """None when backend ``name`` can run here, else the reason it cannot."""
    try:
        return _module(name).why_not()
    except ValueError:
        raise
    except Exception as exc:  # a backend that cannot even say why: that is the reason
        return f"{type(exc).__name__}: {exc}"


def open_manager(
    backend: str,
    shape: object,
    fill: float = 0.0,
    max_pending: int = DEFAULT_MAX_PENDING,
    **options: object,
) -> BufferManager:
    """Open a buffer manager on ``backend`` ("c" or "gl"). See SPEC §3."""
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a name, one of {', '.join(BACKENDS)}; got {backend!r}")
    shp, f, mp = check_open_args(shape, fill, max_pending)
    m = _module(backend).open_manager(shp, f, mp, **options)
    if os.environ.get(live.ENV):   # live attach (SPEC §5): publish it for a viewer
        live.publish_from_environment(m)
    return m
