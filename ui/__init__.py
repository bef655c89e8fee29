"""The bufferscope Qt application: widgets (one per snake_case module, ``ui/buffer_view.py``
holding ``BufferView``), the Qt-free parts they share (``display_state``, ``camera``,
``front_source``, ``sync_worker``) and the entry points ``gui`` and ``screenshot``
(in ``ui.launch``).

A widget whose module grew past ~400 lines keeps its class in that module and takes
cohesive parts from mixins in their own modules (``view_interaction`` for
``BufferView``, ``timeline_geometry``, ``session_tasks``, ``window_tasks``,
``debug_stepping``/``back_buffer_toggle``), each saying at its top what it is for.

Naming: modules, functions and methods are snake_case (PEP 8); only Qt's own
virtual methods keep Qt's names (``paintGL``, ``mousePressEvent``), and signals are
``sigSomethingChanged``.

Importing ``ui`` imports PyQt6; ``app`` and the backends never import ``ui``.
"""

from .buffer_view import BufferView
from .color_bar import ColorBar
from .control_panel import ControlPanel
from .display_state import DisplayState
from .launch import gui, prepare_qt, screenshot
from .main_window import MainWindow
from .message_log import MessageLog
from .session import Session, backend_problem
from .status_bar import StatusBar
from .update_form import UpdateForm

__all__ = [
    "BufferView",
    "ColorBar",
    "ControlPanel",
    "DisplayState",
    "MainWindow",
    "MessageLog",
    "Session",
    "StatusBar",
    "UpdateForm",
    "backend_problem",
    "gui",
    "prepare_qt",
    "screenshot",
]
