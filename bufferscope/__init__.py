"""bufferscope — the public Python API for programs that use the buffer managers.

``import bufferscope as bs``; then ``bs.open_manager("c", (256, 256))``, ``bs.Set``,
``bs.Fill``, … This is a thin face of ``app`` (the Qt-free core); it adds nothing
and hides nothing that the documented API offers.
"""

from app import (
    BACKENDS,
    Add,
    BackendError,
    BackendUnavailableError,
    BufferManager,
    Event,
    Fill,
    ManagerClosedError,
    ManagerStats,
    ReferenceModel,
    Scale,
    Set,
    Update,
    Write,
    __version__,
    open_manager,
    why_not,
)
from app.manager import Capabilities

__all__ = [
    "BACKENDS",
    "Add",
    "BackendError",
    "BackendUnavailableError",
    "BufferManager",
    "Capabilities",
    "Event",
    "Fill",
    "ManagerClosedError",
    "ManagerStats",
    "ReferenceModel",
    "Scale",
    "Set",
    "Update",
    "Write",
    "__version__",
    "open_manager",
    "why_not",
]
