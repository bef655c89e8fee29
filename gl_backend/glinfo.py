"""``python -m gl_backend.glinfo``: print what OpenGL this machine gives us.

Vendor, renderer, version, GLSL version and the limits that bound a GL buffer
(texture sizes, array layers, shader storage, compute work groups), so a CI log
or a bug report says which driver ran. Qt and PyOpenGL are imported inside the
functions, so importing ``gl_backend`` stays free of them. Exit status 1, with the reason,
when no context can be made.
"""

from __future__ import annotations

import sys

# (label, GL enum name, index for glGetIntegeri_v or None)
LIMITS = [
    ("max texture size", "GL_MAX_TEXTURE_SIZE", None),
    ("max 3D texture size", "GL_MAX_3D_TEXTURE_SIZE", None),
    ("max array texture layers", "GL_MAX_ARRAY_TEXTURE_LAYERS", None),
    ("max texture buffer size", "GL_MAX_TEXTURE_BUFFER_SIZE", None),
    ("max shader storage block size", "GL_MAX_SHADER_STORAGE_BLOCK_SIZE", None),
    ("max compute work group count x", "GL_MAX_COMPUTE_WORK_GROUP_COUNT", 0),
]


def _formats():
    """Surface formats to try, best first: 4.3 core (what the GL backend needs), 3.3 core, default."""
    from PyQt6.QtGui import QSurfaceFormat

    out = []
    for version in ((4, 3), (3, 3)):
        fmt = QSurfaceFormat()
        fmt.setVersion(*version)
        fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
        out.append(fmt)
    out.append(QSurfaceFormat())
    return out


def collect() -> dict[str, object]:
    """GL facts from an offscreen context; raises RuntimeError saying why none can be made."""
    try:
        import PyQt6.QtGui  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"PyQt6 cannot be imported: {exc}") from None
    try:
        from OpenGL import GL
    except Exception as exc:
        raise RuntimeError(f"PyOpenGL cannot be used: {exc}") from None
    from ._context import ensure_app, with_context

    try:
        ensure_app()
    except Exception as exc:
        raise RuntimeError(str(exc)) from None
    for fmt in _formats():
        info, _ = with_context(fmt, lambda ctx: _query(GL, ctx))
        if info is not None:
            return info
    raise RuntimeError("no OpenGL context can be made (tried 4.3 core, 3.3 core and the default)")


def _query(GL, ctx) -> dict[str, object]:
    def text(name: str) -> str:
        value = GL.glGetString(getattr(GL, name))
        return value.decode("utf-8", "replace") if value else "?"

    fmt = ctx.format()
    info: dict[str, object] = {
        "vendor": text("GL_VENDOR"),
        "renderer": text("GL_RENDERER"),
        "version": text("GL_VERSION"),
        "glsl version": text("GL_SHADING_LANGUAGE_VERSION"),
        "context": f"{fmt.majorVersion()}.{fmt.minorVersion()} "
                   f"{fmt.profile().name.replace('Profile', '').lower()}",
    }
    while GL.glGetError() != GL.GL_NO_ERROR:
        pass
    for label, enum, index in LIMITS:
        try:
            value = (GL.glGetIntegerv(getattr(GL, enum)) if index is None
                     else GL.glGetIntegeri_v(getattr(GL, enum), index))
            info[label] = int(value if not hasattr(value, "__len__") else value[0])
        except Exception:  # not in this GL version
            while GL.glGetError() != GL.GL_NO_ERROR:
                pass
            info[label] = "n/a"
    return info


def main(argv: list[str] | None = None) -> int:
    try:
        info = collect()
    except RuntimeError as exc:
        print(f"glinfo: no OpenGL context: {exc}", file=sys.stderr)
        return 1
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
