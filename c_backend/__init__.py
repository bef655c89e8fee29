"""The C backend: a C library with a pthread worker, wrapped with cffi (API mode).

``why_not()`` says why the backend cannot run (the extension is not built);
``open_manager`` is what ``app.open_manager("c", ...)`` calls.
"""

from __future__ import annotations


def why_not() -> str | None:
    try:
        from . import _bufferscope_c  # noqa: F401
    except ImportError as exc:
        return (
            f"the C extension c_backend._bufferscope_c is not built ({exc}); "
            "install the package (`pip install -e .` or `make test`)"
        )
    return None


def open_manager(shape, fill, max_pending, **options):
    from .manager import CBufferManager

    return CBufferManager(shape, fill, max_pending, **options)


def abi_version() -> int:
    from ._bufferscope_c import lib

    return int(lib.bs_abi_version())
