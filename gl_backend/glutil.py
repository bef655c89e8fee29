"""The one GL helper module: shader sources, programs, uniforms and textures.

Used by the viewer (``ui/``) and by the GL backend's worker alike, so the functions
take no widget and no manager: each works on whatever context is current. Qt-free;
imports PyOpenGL.

* ``shader_source(name)`` — the text of ``assets/shaders/<name>``;
* ``compile_program(stages)`` — compile and link ``[(GL_*_SHADER, name), ...]``;
  the error names the file and carries the driver's info log;
* ``uniform_locations(program, sources)`` — the uniforms the sources declare, by
  name (PyOpenGL's ``glGetActiveUniform`` now and then returns an empty name);
* ``make_texture_2d`` / ``set_texture_params`` — textures sampled nearest, clamped.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from OpenGL import GL

_UNIFORM = re.compile(r"^\s*uniform\s+\w+\s+(\w+)\s*(?:\[[^\]]*\])?\s*;", re.MULTILINE)


def shader_source(name: str) -> str:
    """The GLSL source ``assets/shaders/<name>`` (from the installed package, or the
    source tree when ``assets`` is not importable)."""
    try:
        return resources.files("assets").joinpath("shaders", name).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, TypeError):
        path = Path(__file__).resolve().parent.parent / "assets" / "shaders" / name
        return path.read_text("utf-8")


def compile_shader(kind: int, source: str, name: str) -> int:
    """One compiled shader object; RuntimeError with the info log when it fails."""
    sh = GL.glCreateShader(kind)
    GL.glShaderSource(sh, source)
    GL.glCompileShader(sh)
    if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
        log = GL.glGetShaderInfoLog(sh)
        GL.glDeleteShader(sh)
        log = log.decode("utf-8", "replace") if isinstance(log, bytes) else str(log)
        raise RuntimeError(f"shader {name} does not compile: {log}")
    return int(sh)


def compile_program(stages: list[tuple[int, str]], sources: dict[str, str] | None = None) -> int:
    """A linked program from ``[(GL_VERTEX_SHADER, "file.glsl"), ...]``.

    ``sources`` may give the text of a stage by name (else it is read with
    ``shader_source``). RuntimeError naming the file(s) and the info log when a
    stage does not compile or the program does not link; nothing is leaked.
    """
    shaders: list[int] = []
    try:
        for kind, name in stages:
            text = sources[name] if sources and name in sources else shader_source(name)
            shaders.append(compile_shader(kind, text, name))
        prog = GL.glCreateProgram()
        for sh in shaders:
            GL.glAttachShader(prog, sh)
        GL.glLinkProgram(prog)
        if not GL.glGetProgramiv(prog, GL.GL_LINK_STATUS):
            log = GL.glGetProgramInfoLog(prog)
            log = log.decode("utf-8", "replace") if isinstance(log, bytes) else str(log)
            GL.glDeleteProgram(prog)
            raise RuntimeError(f"program {[n for _, n in stages]} does not link: {log}")
        return int(prog)
    finally:
        for sh in shaders:
            GL.glDeleteShader(sh)


def declared_uniforms(source: str) -> list[str]:
    """The names of the ``uniform`` variables a GLSL source declares."""
    return _UNIFORM.findall(source)


def uniform_locations(program: int, sources: list[str] | tuple[str, ...]) -> dict[str, int]:
    """``{name: location}`` of the uniforms declared in ``sources`` that ``program``
    keeps (the compiler drops unused ones: those are left out)."""
    out: dict[str, int] = {}
    for src in sources:
        for name in declared_uniforms(src):
            loc = int(GL.glGetUniformLocation(program, name))
            if loc >= 0:
                out[name] = loc
    return out


def set_texture_params(target: int = GL.GL_TEXTURE_2D, filt: int = GL.GL_NEAREST,
                       wrap: int = GL.GL_CLAMP_TO_EDGE) -> None:
    """Filter and wrap of the texture bound to ``target``."""
    GL.glTexParameteri(target, GL.GL_TEXTURE_MIN_FILTER, filt)
    GL.glTexParameteri(target, GL.GL_TEXTURE_MAG_FILTER, filt)
    GL.glTexParameteri(target, GL.GL_TEXTURE_WRAP_S, wrap)
    GL.glTexParameteri(target, GL.GL_TEXTURE_WRAP_T, wrap)


def make_texture_2d(filt: int = GL.GL_NEAREST, wrap: int = GL.GL_CLAMP_TO_EDGE) -> int:
    """A new ``GL_TEXTURE_2D`` name, sampled ``filt`` and clamped (no storage yet)."""
    tex = int(GL.glGenTextures(1))
    GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
    set_texture_params(GL.GL_TEXTURE_2D, filt, wrap)
    GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    return tex


def make_sampler(filt: int = GL.GL_NEAREST, wrap: int = GL.GL_CLAMP_TO_EDGE) -> int:
    """A sampler object: whatever texture is bound with it is sampled ``filt``, clamped,
    and complete (its own parameters and mipmaps do not matter)."""
    s = int(GL.glGenSamplers(1))
    for pname, value in ((GL.GL_TEXTURE_MIN_FILTER, filt), (GL.GL_TEXTURE_MAG_FILTER, filt),
                         (GL.GL_TEXTURE_WRAP_S, wrap), (GL.GL_TEXTURE_WRAP_T, wrap)):
        GL.glSamplerParameteri(s, pname, value)
    return s


def gl_strings() -> dict[str, str]:
    """Renderer, vendor, version and GLSL version of the current context."""
    def get(name: int) -> str:
        v = GL.glGetString(name)
        return v.decode(errors="replace") if v else ""

    return {"renderer": get(GL.GL_RENDERER), "vendor": get(GL.GL_VENDOR),
            "version": get(GL.GL_VERSION), "glsl": get(GL.GL_SHADING_LANGUAGE_VERSION)}
