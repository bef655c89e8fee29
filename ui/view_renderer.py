"""``ViewRenderer``: the buffer view's GL objects and the draw call (OpenGL 3.3 core).

One program (``assets/shaders/view_vertex.glsl`` + ``view_fragment.glsl``, built
with ``gl_backend.glutil``), a data texture (R32F, one texel per element) that an
``UploadSource`` fills row run by row run, a 256×1 LUT texture, and a sampler
object that makes any texture sampled nearest and complete — the GL backend's
shared texture included, whatever its own parameters are.

Overlays (``ui.overlays``): a mark mask texture (R8, one texel per element, or per
tile of elements on planes wider than ``MARK_MAX`` so it stays small; only the
rows that changed are uploaded) read by the same fragment shader, and a second
program (``view_boxes_*.glsl``) that outlines boxes, one instance per box from a
small vertex buffer: drawing costs O(boxes + marked rows), never a pass per box.
Every method needs the view's context current. Qt-free.
"""

from __future__ import annotations

import ctypes

import numpy as np
from OpenGL import GL

from gl_backend import glutil

from . import colormaps
from .front_source import UploadSource, row_runs

SHADERS = ("view_vertex.glsl", "view_fragment.glsl")
BOX_SHADERS = ("view_boxes_vertex.glsl", "view_boxes_fragment.glsl")
MARK_MAX = 2048               # widest mark mask texture; coarser tiles beyond it
BOX_MIN_PX = 5.0              # a box is drawn at least this big
HOVER_COLOR = (0.92, 0.92, 0.92, 1.0)
GRID_MIN_PX = 12.0            # draw the texel grid from this zoom on


def rgba(c: tuple[int, int, int], a: float = 1.0) -> tuple[float, float, float, float]:
    return (c[0] / 255.0, c[1] / 255.0, c[2] / 255.0, a)


class ViewRenderer:
    """GL resources of one view; ``ok`` is False until ``create`` succeeded."""

    def __init__(self) -> None:
        self.ok = False
        self.info: dict[str, str] = {}
        self.max_texture = 0
        self.program = self.vao = self.sampler = self.data_tex = self.lut_tex = 0
        self.uniforms: dict[str, int] = {}
        self.tex_size = (0, 0)
        self.lut_name: str | None = None
        self.uploaded_rows = 0                   # texture rows the last upload sent
        self.uploaded_bytes = 0                  # ... and bytes
        self.total_uploaded = [0, 0]             # rows, bytes since creation (the bench)
        self.box_program = self.box_vao = self.box_vbo = self.mark_tex = 0
        self.box_uniforms: dict[str, int] = {}
        self.box_count = 0
        self.marks_tile = 0                      # 0: no marks to draw
        self.mark_color = (1.0, 0.0, 1.0, 1.0)
        self._mark_plane: np.ndarray | None = None   # the mask uploaded (uint8, tiles)

    @staticmethod
    def mark_tile(rows: int, cols: int) -> int:
        """Elements per mark texel along each axis for a plane of rows × cols."""
        return max(1, -(-max(rows, cols) // MARK_MAX))

    def create(self) -> None:
        """Make the objects (RuntimeError with the info log when a shader fails)."""
        self.info = glutil.gl_strings()
        self.max_texture = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE))
        sources = {name: glutil.shader_source(name) for name in SHADERS}
        self.program = glutil.compile_program(
            [(GL.GL_VERTEX_SHADER, SHADERS[0]), (GL.GL_FRAGMENT_SHADER, SHADERS[1])], sources)
        self.uniforms = glutil.uniform_locations(self.program, list(sources.values()))
        self.vao = int(GL.glGenVertexArrays(1))
        self.data_tex = glutil.make_texture_2d()
        self.lut_tex = glutil.make_texture_2d()
        self.sampler = glutil.make_sampler()
        self.tex_size = (0, 0)
        self.lut_name = None
        box_sources = {name: glutil.shader_source(name) for name in BOX_SHADERS}
        self.box_program = glutil.compile_program(
            [(GL.GL_VERTEX_SHADER, BOX_SHADERS[0]), (GL.GL_FRAGMENT_SHADER, BOX_SHADERS[1])],
            box_sources)
        self.box_uniforms = glutil.uniform_locations(self.box_program, list(box_sources.values()))
        self.box_vao = int(GL.glGenVertexArrays(1))
        self.box_vbo = int(GL.glGenBuffers(1))
        GL.glBindVertexArray(self.box_vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.box_vbo)
        for loc in (0, 1):
            GL.glEnableVertexAttribArray(loc)
            GL.glVertexAttribPointer(loc, 4, GL.GL_FLOAT, GL.GL_FALSE, 32,
                                     ctypes.c_void_p(16 * loc))
            GL.glVertexAttribDivisor(loc, 1)
        GL.glBindVertexArray(0)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        self.box_count = 0
        self.mark_tex = glutil.make_texture_2d()
        self.marks_tile = 0
        self._mark_plane = None
        self.ok = True

    def release(self) -> None:
        try:
            GL.glDeleteTextures(3, [self.data_tex, self.lut_tex, self.mark_tex])
            GL.glDeleteVertexArrays(2, [self.vao, self.box_vao])
            GL.glDeleteBuffers(1, [self.box_vbo])
            GL.glDeleteSamplers(1, [self.sampler])
            GL.glDeleteProgram(self.program)
            GL.glDeleteProgram(self.box_program)
        except Exception:
            pass  # a context that is going away frees them anyway
        self.ok = False

    def upload(self, src: UploadSource) -> None:
        """Bring the data texture up to date: all of the plane, or its dirty rows."""
        self.uploaded_rows = self.uploaded_bytes = 0
        if src.front is None:
            return
        plane = src.plane()
        rows, cols = plane.shape
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.data_tex)
        if src.realloc or self.tex_size != (cols, rows):
            if max(rows, cols) > self.max_texture:
                raise ValueError(
                    f"a plane of {rows}×{cols} exceeds this GL's texture limit "
                    f"{self.max_texture}×{self.max_texture}")
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_R32F, cols, rows, 0,
                            GL.GL_RED, GL.GL_FLOAT, np.ascontiguousarray(plane))
            self.tex_size = (cols, rows)
            src.realloc = False
            src.dirty_rows = None
            self._count(rows, rows * cols * 4)
            return
        for r0, r1 in src.take_dirty_runs():
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, r0, cols, r1 - r0,
                               GL.GL_RED, GL.GL_FLOAT, np.ascontiguousarray(plane[r0:r1]))
            self._count(r1 - r0, (r1 - r0) * cols * 4)

    def _count(self, rows: int, nbytes: int) -> None:
        self.uploaded_rows += rows
        self.uploaded_bytes += nbytes
        self.total_uploaded[0] += rows
        self.total_uploaded[1] += nbytes

    def upload_lut(self, name: str) -> None:
        if name == self.lut_name:
            return
        table = np.concatenate([colormaps.lut(name), np.full((256, 1), 255, np.uint8)], axis=1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.lut_tex)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, 256, 1, 0, GL.GL_RGBA,
                        GL.GL_UNSIGNED_BYTE, np.ascontiguousarray(table))
        self.lut_name = name

    # -- overlays ----------------------------------------------------------------------
    def upload_boxes(self, boxes) -> None:
        """The boxes to outline: ``[(((r0, r1), (c0, c1)), (r, g, b), width, style), ...]``
        (style 0 solid, 1 dashed, 2 two-tone; width below 16 px)."""
        data = np.zeros((len(boxes), 8), np.float32)
        for k, (((r0, r1), (c0, c1)), color, width, style) in enumerate(boxes):
            packed = 16.0 * int(style) + min(max(float(width), 1.0), 15.0)
            data[k] = (c0, r0, c1, r1, color[0] / 255.0, color[1] / 255.0, color[2] / 255.0, packed)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.box_vbo)
        if len(data):
            GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, data, GL.GL_DYNAMIC_DRAW)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        self.box_count = len(data)

    def upload_marks(self, plane: np.ndarray | None, color=(255, 0, 255)) -> None:
        """The mark mask of the shown plane (bool rows × cols; None: no marks).
        Coarsened to tiles past ``MARK_MAX``; only rows that differ from the mask
        uploaded last are sent."""
        if plane is None or not plane.any():
            self.marks_tile = 0
            return
        rows, cols = plane.shape
        t = self.mark_tile(rows, cols)
        if t > 1:
            tr, tc = -(-rows // t), -(-cols // t)
            padded = np.zeros((tr * t, tc * t), bool)
            padded[:rows, :cols] = plane
            plane = padded.reshape(tr, t, tc, t).any(axis=(1, 3))
        m = np.ascontiguousarray(plane, dtype=np.uint8) * np.uint8(255)
        old = self._mark_plane
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.mark_tex)
        if old is None or old.shape != m.shape:
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_R8, m.shape[1], m.shape[0], 0,
                            GL.GL_RED, GL.GL_UNSIGNED_BYTE, m)
        else:
            for r0, r1 in row_runs(np.any(old != m, axis=1)):
                GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, r0, m.shape[1], r1 - r0,
                                   GL.GL_RED, GL.GL_UNSIGNED_BYTE, np.ascontiguousarray(m[r0:r1]))
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        self._mark_plane = m
        self.marks_tile = t
        self.mark_color = rgba(color)

    def draw_boxes(self, fb: tuple[int, int], offset, scale) -> None:
        """Outline the uploaded boxes over what ``draw`` drew."""
        if not self.box_count:
            return
        u = self.box_uniforms
        GL.glUseProgram(self.box_program)
        for name, v in (("u_offset", offset), ("u_scale", scale), ("u_fb", fb)):
            if name in u:
                GL.glUniform2f(u[name], float(v[0]), float(v[1]))
        if "u_min_px" in u:
            GL.glUniform1f(u["u_min_px"], BOX_MIN_PX)
        if "u_fb_height" in u:
            GL.glUniform1f(u["u_fb_height"], float(fb[1]))
        GL.glBindVertexArray(self.box_vao)
        GL.glDrawArraysInstanced(GL.GL_TRIANGLES, 0, 6, self.box_count)
        GL.glBindVertexArray(0)
        GL.glUseProgram(0)

    def clear(self) -> None:
        GL.glClearColor(*rgba(colormaps.BACKGROUND_COLOR))
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)

    def draw(self, fb: tuple[int, int], data_tex: int, size: tuple[int, int], row_offset: int,
             offset, scale, levels, grid: bool, selection, hover) -> None:
        """One full-screen triangle through the fragment shader."""
        u = self.uniforms
        GL.glViewport(0, 0, int(fb[0]), int(fb[1]))
        GL.glUseProgram(self.program)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, data_tex)
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.lut_tex)
        GL.glActiveTexture(GL.GL_TEXTURE2)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.mark_tex)
        GL.glBindSampler(0, self.sampler)
        GL.glBindSampler(1, self.sampler)
        GL.glBindSampler(2, self.sampler)

        def seti(name, *v):
            if name in u:
                (GL.glUniform1i, GL.glUniform2i)[len(v) - 1](u[name], *v)

        def setf(name, *v):
            if name in u:
                (GL.glUniform1f, GL.glUniform2f, GL.glUniform3f, GL.glUniform4f)[len(v) - 1](
                    u[name], *v)

        seti("u_data", 0)
        seti("u_lut", 1)
        seti("u_marks", 2)
        seti("u_marks_tile", int(self.marks_tile))
        setf("u_mark_color", *self.mark_color)
        seti("u_size", int(size[0]), int(size[1]))
        seti("u_row_offset", int(row_offset))
        setf("u_offset", *offset)
        setf("u_scale", *scale)
        setf("u_fb_height", float(fb[1]))
        setf("u_levels", *levels)
        setf("u_nan", *rgba(colormaps.NAN_COLOR))
        setf("u_posinf", *rgba(colormaps.POSINF_COLOR))
        setf("u_neginf", *rgba(colormaps.NEGINF_COLOR))
        setf("u_background", *rgba(colormaps.BACKGROUND_COLOR))
        setf("u_grid", 0.0, 0.0, 0.0, 0.35)
        setf("u_grid_min", GRID_MIN_PX if grid else 1e30)
        if selection is None:
            setf("u_selection", 0.0, 0.0, 0.0, 0.0)
        else:
            (r0, r1), (c0, c1) = selection
            setf("u_selection", c0, r0, c1, r1)
        setf("u_selection_color", 1.0, 1.0, 1.0, 1.0)
        hover = hover or (-1, -1)
        seti("u_hover", hover[1], hover[0])
        setf("u_hover_color", *HOVER_COLOR)
        GL.glBindVertexArray(self.vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
        GL.glBindVertexArray(0)
        GL.glBindSampler(0, 0)
        GL.glBindSampler(1, 0)
        GL.glBindSampler(2, 0)
        GL.glActiveTexture(GL.GL_TEXTURE2)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glUseProgram(0)
