"""bufferscope — the public Python API for programs that use the buffer managers.

``import bufferscope as bs``; then ``bs.open_manager("c", (256, 256))``, ``bs.Set``,
``bs.Fill``, … This is a thin face of ``app`` (the Qt-free core): the same names,
nothing added, nothing hidden.
"""

from app import *  # noqa: F403 (the public names of the core, listed in its __all__)
from app import __all__, __version__  # noqa: F401
