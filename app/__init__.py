"""bufferscope core: update types, the manager contract, the reference model,
the trace format and the command line. Qt-free: Qt and OpenGL are imported only
when a GL manager is opened or the GUI starts.
"""

from .backends import BACKENDS, open_manager, why_not
from .errors import BackendError, BackendUnavailableError, ManagerClosedError
from .manager import BufferManager, Capabilities, Event, ManagerStats
from .reference import ReferenceModel
from .updates import Add, Fill, Scale, Set, Update, Write

__version__ = "0.1.0"

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
    "open_manager",
    "why_not",
]
