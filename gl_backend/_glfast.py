"""Unchecked entry points for the GL calls on the worker's hot paths.

PyOpenGL wraps every call in argument conversion and, with its error checking
on, a ``glGetError`` after each one: 1.5 to 5 µs a call, and generating,
filling and deleting a buffer through it costs about 90 µs. A batch of 4096
element sets is a handful of calls, so that overhead alone would cost more
than the scatter. ``FastGL`` holds plain ctypes function pointers (about 0.3 µs
a call) for the few calls the worker makes per batch, resolved once through
PyOpenGL's platform (``glXGetProcAddress`` / ``eglGetProcAddress``) with the
worker's context current. They check nothing: the worker calls ``check(what)``
(one ``glGetError``) after each group of calls, so an error such as
``GL_OUT_OF_MEMORY`` is still raised, naming the work that failed. When a
pointer cannot be resolved the PyOpenGL function is used instead (so callers pass
pointers as ``ctypes.c_void_p`` and name arrays as ctypes arrays, which both take).
"""

from __future__ import annotations

import ctypes

_u, _i, _p, _sz = ctypes.c_uint, ctypes.c_int, ctypes.c_void_p, ctypes.c_ssize_t

#: name: (PyOpenGL's raw module, return type, argument types)
SIGNATURES = {
    "glGetError": ("GL_1_1", _u),
    "glUseProgram": ("GL_2_0", None, _u),
    "glUniform1ui": ("GL_3_0", None, _i, _u),
    "glBindImageTexture": ("GL_4_2", None, _u, _u, _i, ctypes.c_ubyte, _i, _u, _u),
    "glBindBufferBase": ("GL_3_0", None, _u, _u, _u),
    "glDispatchCompute": ("GL_4_3", None, _u, _u, _u),
    "glMemoryBarrier": ("GL_4_2", None, _u),
    "glGenBuffers": ("GL_1_5", None, _i, ctypes.POINTER(_u)),
    "glDeleteBuffers": ("GL_1_5", None, _i, ctypes.POINTER(_u)),
    "glBindBuffer": ("GL_1_5", None, _u, _u),
    "glBufferData": ("GL_1_5", None, _u, _sz, _p, _u),
    "glBufferSubData": ("GL_1_5", None, _u, _sz, _sz, _p),
    "glBindTexture": ("GL_1_1", None, _u, _u),
    "glTexSubImage2D": ("GL_1_1", None, _u, _i, _i, _i, _i, _i, _u, _u, _p),
    "glActiveTexture": ("GL_1_3", None, _u),
    "glTexBuffer": ("GL_3_1", None, _u, _u, _u),
}


def address(name: str) -> int | None:
    """The entry point ``name`` of the current context's GL, or None."""
    from OpenGL import platform

    try:
        return platform.PLATFORM.getExtensionProcedure(name.encode()) or None
    except Exception:  # noqa: BLE001 - any failure: use PyOpenGL's function
        return None


class FastGL:
    """The functions of ``SIGNATURES`` as attributes, for the context current now."""

    def __init__(self) -> None:
        import importlib

        for name, (module, restype, *argtypes) in SIGNATURES.items():
            addr = address(name)
            if addr:
                fn = ctypes.CFUNCTYPE(restype, *argtypes)(addr)
            else:
                fn = getattr(importlib.import_module(f"OpenGL.raw.GL.VERSION.{module}"), name)
            setattr(self, name, fn)

    def gen_buffer(self) -> int:
        name = (_u * 1)()
        self.glGenBuffers(1, name)
        return int(name[0])

    def delete_buffers(self, names: list[int]) -> None:
        arr = (_u * len(names))(*names)
        self.glDeleteBuffers(len(names), arr)
