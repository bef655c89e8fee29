"""The bufferscope Qt application: widgets (one per module, named after its class)
and the entry points ``gui`` and ``screenshot`` (in ``ui.launch``).

Importing ``ui`` imports PyQt6; ``app`` and the backends never import ``ui``.
"""

from .BufferView import BufferView
from .ColorBar import ColorBar
from .ControlPanel import ControlPanel
from .launch import gui, prepare_qt, screenshot
from .MainWindow import MainWindow
from .Session import Session, backend_problem
from .StatusBar import StatusBar
from .UpdateRecorder import UpdateRecorder

__all__ = [
    "BufferView",
    "ColorBar",
    "ControlPanel",
    "MainWindow",
    "Session",
    "StatusBar",
    "UpdateRecorder",
    "backend_problem",
    "gui",
    "prepare_qt",
    "screenshot",
]
