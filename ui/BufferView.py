"""``BufferView``: the front buffer drawn live through a colormap (OpenGL 3.3 core).

The buffer (or, for a 3-D buffer, its plane ``z``) is one R32F texture, one texel
per element, drawn by ``assets/shaders/view_fragment.glsl`` with ``texelFetch``:
nearest-texel at any zoom, a grid when a texel is large, NaN/+Inf/−Inf in their own
colors, levels exact per epoch or fixed.

Two sources of pixels:

* **upload** (any backend): ``setFront(front, epoch)`` compares the new front with
  the previous epoch's copy (bitwise, so NaN == NaN), copies only the changed rows
  into that copy and marks them dirty; ``paintGL`` uploads just the dirty row runs.
* **shared texture** (a manager with ``front_texture() -> (texture_id, epoch)``, the
  GL backend, in a context shared with this one): ``setTextureProvider(fn)`` makes the
  view sample that texture directly, no readback. The texture holds the buffer as
  rows of ``shape[-1]`` texels, the planes of a 3-D buffer one below the other.
  ``setFront`` is still used, at a lower rate, for the geometry and the readout
  (``data_epoch`` says which epoch those values are from). Auto levels then come
  from ``setRangeProvider(fn)`` (the GL backend's ``front_range``, reduced on the
  GPU): before drawing an epoch the view asks for that epoch's exact finite
  min/max, so the levels always belong to the epoch drawn (``levels_epoch ==
  drawn_epoch``), never to an older read-back.

Zoom with the wheel (about the cursor), pan by dragging, Shift+drag selects a
region, double-click fits the image to the widget.

Signals
-------
sigHover(object)            the element under the cursor: an index tuple, or None
sigRegionSelected(object)   a Shift+drag box in plane coordinates ((r0, r1), (c0, c1))
sigLevelsChanged(float, float)
sigGLInfo(dict)             renderer/vendor/version once the context exists
sigGLError(str)             the view could not draw (shader, texture size, ...)
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from importlib.resources import files

import numpy as np
from PyQt6.QtCore import QPointF, Qt, pyqtSignal
from PyQt6.QtGui import QMouseEvent, QOpenGLContext, QSurfaceFormat, QWheelEvent
from PyQt6.QtOpenGLWidgets import QOpenGLWidget

from . import colormaps

GRID_MIN_PX = 12.0            # draw the texel grid from this zoom on
MIN_SCALE, MAX_SCALE = 1e-3, 512.0

TextureProvider = Callable[[], tuple[int, int]]
RangeProvider = Callable[[], tuple[float | None, float | None, int]]
RANGE_TRIES = 3   # swaps between asking for the range and for the texture: ask again


def view_format() -> QSurfaceFormat:
    """OpenGL 3.3 core, the format of the view (and of contexts shared with it)."""
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(0)
    fmt.setStencilBufferSize(0)
    return fmt


def load_shader(name: str) -> str:
    return files("assets").joinpath("shaders", name).read_text(encoding="utf-8")


def _rgba(c: tuple[int, int, int], a: float = 1.0) -> tuple[float, float, float, float]:
    return (c[0] / 255.0, c[1] / 255.0, c[2] / 255.0, a)


def _runs(mask: np.ndarray, max_gap: int = 8) -> list[tuple[int, int]]:
    """Half-open runs of True in ``mask``, merging runs separated by < ``max_gap``."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    stops = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return list(zip(starts.tolist(), stops.tolist()))


class BufferView(QOpenGLWidget):
    sigHover = pyqtSignal(object)
    sigRegionSelected = pyqtSignal(object)
    sigLevelsChanged = pyqtSignal(float, float)
    sigGLInfo = pyqtSignal(dict)
    sigGLError = pyqtSignal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFormat(view_format())
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 150)
        # data
        self._front: np.ndarray | None = None   # our copy of the last front (full ndim)
        self.epoch = 0                          # epoch drawn
        self.data_epoch = 0                     # epoch of the values in front()
        self.drawn_epoch: int | None = None     # epoch of the picture last drawn
        self.levels_epoch: int | None = None    # epoch the auto levels were computed for
        self._z = 0
        self._dirty_rows: np.ndarray | None = None  # rows of the shown plane to upload
        self._realloc = True                        # texture size/plane changed
        # look
        self._cmap = "viridis"
        self._auto_levels = True
        self._levels = (0.0, 1.0)
        self._grid = True
        self._selection: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._hover_cell: tuple[int, int] | None = None
        # view transform: framebuffer px = offset + texel * scale
        self._scale = np.array([1.0, 1.0])
        self._offset = np.array([0.0, 0.0])
        self._fit_pending = True
        self._drag: tuple[str, QPointF, np.ndarray] | None = None
        self._select_from: tuple[int, int] | None = None
        # GL
        self._gl_ok = False
        self._released = False                  # releaseGL() freed the objects
        self.gl_info: dict[str, str] = {}
        self._program = 0
        self._vao = 0
        self._sampler = 0
        self._data_tex = 0
        self._lut_tex = 0
        self._lut_dirty = True
        self._tex_size = (0, 0)
        self._uniforms: dict[str, int] = {}
        self._provider: TextureProvider | None = None
        self._provider_error = ""
        self._range_provider: RangeProvider | None = None
        self._range_error = ""
        self._painting = False
        self.uploaded_rows = 0           # rows uploaded by the last frame (for tests/bench)
        self._frame_times: deque[float] = deque(maxlen=1000)

    # ------------------------------------------------------------------ public API
    def setFront(self, front: np.ndarray | None, epoch: int) -> None:
        """Show ``front`` (the manager's front at ``epoch``); uploads only what changed."""
        self.epoch = self.data_epoch = int(epoch)
        if front is None:
            self._front = None
            self._realloc = True
            self.update()
            return
        new = np.asarray(front, dtype=np.float32)
        if self._front is None or self._front.shape != new.shape:
            self._front = np.array(new, copy=True, order="C")
            if self._z >= self._depth():
                self._z = 0
            self._realloc = True
            self._fit_pending = True
        else:
            old2 = self._front.reshape(-1, self._front.shape[-1])
            new2 = new.reshape(-1, new.shape[-1])
            changed = np.any(old2.view(np.uint32) != new2.view(np.uint32), axis=1)
            if changed.any():
                old2[changed] = new2[changed]
                rows = self._rows()
                plane = changed[self._z * rows:(self._z + 1) * rows]
                if self._dirty_rows is None or len(self._dirty_rows) != rows:
                    self._dirty_rows = plane.copy()
                else:
                    self._dirty_rows |= plane
        if self._auto_levels and not self._levels_from_texture():
            self._compute_levels()
        self.update()

    def front(self) -> np.ndarray | None:
        """The view's copy of the front it shows (do not modify)."""
        return self._front

    def setTextureProvider(self, provider: TextureProvider | None) -> None:
        """Sample ``provider()``'s texture (shared GL context) instead of uploading."""
        self._provider = provider
        self._provider_error = ""
        self.drawn_epoch = None
        self.levels_epoch = None
        self.update()

    def setRangeProvider(self, provider: RangeProvider | None) -> None:
        """Take auto levels from ``provider() -> (min, max, epoch)`` of the texture's
        finite values (None, None when there are none) while sampling a shared
        texture, instead of from the read-back copy (which may be older)."""
        self._range_provider = provider
        self._range_error = ""
        self.levels_epoch = None
        if self._auto_levels and not self._levels_from_texture():
            self._compute_levels()
        self.update()

    def _levels_from_texture(self) -> bool:
        return (self._range_provider is not None and not self._range_error
                and self.usingSharedTexture)

    def updateTextureLevels(self) -> bool:
        """Auto levels of the shared texture's current epoch (shared-texture mode).

        Returns True when the levels now belong to the epoch the texture shows.
        Does nothing (False) with fixed levels or without a range provider.
        """
        if not self._auto_levels or not self._levels_from_texture():
            return False
        tex = self._texture_levels()
        return tex is not None

    def _texture_levels(self) -> tuple[int, int] | None:
        """``(texture, epoch)`` of the shared front with the auto levels set for ``epoch``.

        Asks for the range first and the texture second: the front only moves
        forward, so equal epochs mean the range is that texture's. None when a
        provider failed (the view then falls back, see paintGL).
        """
        tex = None
        for _ in range(RANGE_TRIES):
            try:
                lo, hi, range_epoch = self._range_provider()
            except Exception as exc:
                self._range_error = f"{type(exc).__name__}: {exc}"
                self.sigGLError.emit("the GL backend's front range is unavailable "
                                     f"({self._range_error}); levels from the read-back front")
                self.levels_epoch = None
                self._compute_levels()
                return None
            if lo is not None:
                self._set_levels(float(lo), float(hi))
            self.levels_epoch = int(range_epoch)
            try:
                tex = self._provider()
            except Exception:
                return None     # paintGL reports it and falls back to uploading
            if int(tex[1]) == self.levels_epoch:
                break
        return tex

    @property
    def usingSharedTexture(self) -> bool:
        return self._provider is not None and not self._provider_error

    def setColormap(self, name: str) -> None:
        colormaps.lut(name)  # raises ValueError for an unknown name
        self._cmap = name
        self._lut_dirty = True
        self.update()

    def colormap(self) -> str:
        return self._cmap

    def setLevels(self, lo: float, hi: float) -> None:
        """Fixed levels (turns auto levels off)."""
        self._auto_levels = False
        self._set_levels(float(lo), float(hi))

    def setAutoLevels(self, on: bool = True) -> None:
        self._auto_levels = bool(on)
        self.levels_epoch = None
        if on:
            if self._levels_from_texture():
                self.update()   # paintGL takes the levels of the epoch it draws
            else:
                self._compute_levels()

    def autoLevels(self) -> bool:
        return self._auto_levels

    def levels(self) -> tuple[float, float]:
        return self._levels

    def setGridVisible(self, on: bool) -> None:
        self._grid = bool(on)
        self.update()

    def setSlice(self, z: int) -> None:
        z = int(min(max(z, 0), self._depth() - 1))
        if z != self._z:
            self._z = z
            self._realloc = True
            self.update()

    def slice(self) -> int:
        return self._z

    def setSelection(self, box: tuple[tuple[int, int], tuple[int, int]] | None) -> None:
        self._selection = box
        self.update()

    def selection(self):
        return self._selection

    def fit(self) -> None:
        self._fit_pending = True
        self.update()

    def zoomBy(self, factor: float, about: QPointF | None = None) -> None:
        """Zoom by ``factor`` about a widget point (the center by default)."""
        r = self.devicePixelRatioF()
        p = np.array([self.width() / 2, self.height() / 2]) if about is None else np.array(
            [about.x(), about.y()])
        p = p * r
        new = np.clip(self._scale * factor, MIN_SCALE, MAX_SCALE)
        f = new / self._scale
        self._offset = p - (p - self._offset) * f
        self._scale = new
        self._fit_pending = False
        self.update()

    def panBy(self, dx: float, dy: float) -> None:
        self._offset = self._offset + np.array([dx, dy]) * self.devicePixelRatioF()
        self._fit_pending = False
        self.update()

    def scale(self) -> tuple[float, float]:
        return float(self._scale[0]), float(self._scale[1])

    def texelAt(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) of the plane at widget point (x, y); None outside the image."""
        if self._front is None:
            return None
        r = self.devicePixelRatioF()
        tc = (np.array([x * r, y * r]) - self._offset) / self._scale
        col, row = int(np.floor(tc[0])), int(np.floor(tc[1]))
        if 0 <= row < self._rows() and 0 <= col < self._cols():
            return row, col
        return None

    def texelCenter(self, row: int, col: int) -> tuple[int, int]:
        """Framebuffer pixel (x, y) at the center of texel (row, col)."""
        p = self._offset + (np.array([col, row]) + 0.5) * self._scale
        return int(np.floor(p[0])), int(np.floor(p[1]))

    def elementIndex(self, row: int, col: int) -> tuple[int, ...]:
        """The buffer index of plane texel (row, col)."""
        nd = self._front.ndim if self._front is not None else 2
        if nd == 1:
            return (col,)
        if nd == 2:
            return (row, col)
        return (self._z, row, col)

    def valueAt(self, index: tuple[int, ...]) -> float | None:
        if self._front is None:
            return None
        return float(self._front[index])

    def framesPerSecond(self) -> float:
        now = time.monotonic()
        recent = [t for t in self._frame_times if now - t <= 1.0]
        if len(recent) < 2:
            return float(len(recent))
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    # ------------------------------------------------------------------ internals
    def _depth(self) -> int:
        return self._front.shape[0] if self._front is not None and self._front.ndim == 3 else 1

    def _rows(self) -> int:
        if self._front is None:
            return 0
        return 1 if self._front.ndim == 1 else self._front.shape[-2]

    def _cols(self) -> int:
        return 0 if self._front is None else self._front.shape[-1]

    def _plane(self) -> np.ndarray:
        a = self._front
        if a.ndim == 1:
            return a.reshape(1, -1)
        if a.ndim == 2:
            return a
        return a[self._z]

    def _compute_levels(self) -> None:
        if self._front is None:
            return
        lv = colormaps.finite_levels(self._front)
        self.levels_epoch = self.data_epoch
        if lv is not None:
            self._set_levels(*lv)

    def _set_levels(self, lo: float, hi: float) -> None:
        if (lo, hi) != self._levels:
            self._levels = (lo, hi)
            self.sigLevelsChanged.emit(lo, hi)
        if not self._painting:   # paintGL draws with the new levels already
            self.update()

    def _fit_now(self) -> None:
        r = self.devicePixelRatioF()
        w, h = self.width() * r, self.height() * r
        rows, cols = self._rows(), self._cols()
        if not rows or not cols or w <= 0 or h <= 0:
            return
        if self._front is not None and self._front.ndim == 1:
            sx = w / cols
            sy = max(sx, min(h * 0.25, 64.0))
            self._scale = np.array([sx, sy])
        else:
            s = min(w / cols, h / rows)
            self._scale = np.array([s, s])
        size = self._scale * np.array([cols, rows])
        self._offset = (np.array([w, h]) - size) / 2.0
        self._fit_pending = False

    # ------------------------------------------------------------------ GL
    def initializeGL(self) -> None:
        from OpenGL import GL

        try:
            ctx = self.context()
            self.gl_info = {
                "renderer": GL.glGetString(GL.GL_RENDERER).decode(errors="replace"),
                "vendor": GL.glGetString(GL.GL_VENDOR).decode(errors="replace"),
                "version": GL.glGetString(GL.GL_VERSION).decode(errors="replace"),
                "glsl": GL.glGetString(GL.GL_SHADING_LANGUAGE_VERSION).decode(errors="replace"),
                "shared": str(bool(QOpenGLContext.globalShareContext() is not None
                                   and QOpenGLContext.areSharing(
                                       ctx, QOpenGLContext.globalShareContext()))),
            }
            self._max_texture = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE))
            self._program = self._build_program(GL)
            self._vao = GL.glGenVertexArrays(1)
            self._data_tex, self._lut_tex = (int(t) for t in GL.glGenTextures(2))
            # A sampler object makes any texture sampled nearest and complete, the GL
            # backend's shared texture included, whatever its own parameters are.
            self._sampler = int(GL.glGenSamplers(1))
            for pname, value in ((GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST),
                                 (GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST),
                                 (GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE),
                                 (GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)):
                GL.glSamplerParameteri(self._sampler, pname, value)
            for tex in (self._data_tex, self._lut_tex):
                GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
                GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
            self._tex_size = (0, 0)
            self._realloc = True
            self._lut_dirty = True
            self._gl_ok = True
            self._released = False
        except Exception as exc:
            self._gl_ok = False
            self.sigGLError.emit(f"the buffer view cannot use OpenGL: {exc}")
        self.sigGLInfo.emit(dict(self.gl_info))

    def _build_program(self, GL) -> int:
        def compile_one(kind, src, name):
            sh = GL.glCreateShader(kind)
            GL.glShaderSource(sh, src)
            GL.glCompileShader(sh)
            if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
                log = GL.glGetShaderInfoLog(sh).decode(errors="replace")
                raise RuntimeError(f"{name} does not compile: {log}")
            return sh

        sources = {name: load_shader(name) for name in ("view_vertex.glsl", "view_fragment.glsl")}
        vs = compile_one(GL.GL_VERTEX_SHADER, sources["view_vertex.glsl"], "view_vertex.glsl")
        fs = compile_one(GL.GL_FRAGMENT_SHADER, sources["view_fragment.glsl"],
                         "view_fragment.glsl")
        prog = GL.glCreateProgram()
        GL.glAttachShader(prog, vs)
        GL.glAttachShader(prog, fs)
        GL.glLinkProgram(prog)
        GL.glDeleteShader(vs)
        GL.glDeleteShader(fs)
        if not GL.glGetProgramiv(prog, GL.GL_LINK_STATUS):
            raise RuntimeError("the view shaders do not link: "
                               + GL.glGetProgramInfoLog(prog).decode(errors="replace"))
        # The uniforms the sources declare, looked up by name (PyOpenGL's
        # glGetActiveUniform now and then returns an empty name).
        self._uniforms = {}
        for src in sources.values():
            for name in re.findall(r"^\s*uniform\s+\w+\s+(\w+)\s*;", src, re.MULTILINE):
                loc = int(GL.glGetUniformLocation(prog, name))
                if loc >= 0:
                    self._uniforms[name] = loc
        return int(prog)

    def releaseGL(self) -> None:
        """Free our GL objects now, at a moment of our choosing (the window calls
        it when it closes). Not tied to the context's ``aboutToBeDestroyed``: that
        fires whenever the garbage collector destroys an old view, possibly while
        another widget is painting, and switching contexts under that widget's
        feet made Qt crash in its ``grabFramebuffer``. Painting again afterwards
        makes the objects anew."""
        if not self._gl_ok or self.context() is None:
            return
        from OpenGL import GL

        self.makeCurrent()
        try:
            GL.glDeleteTextures(2, [self._data_tex, self._lut_tex])
            GL.glDeleteVertexArrays(1, [self._vao])
            GL.glDeleteSamplers(1, [self._sampler])
            GL.glDeleteProgram(self._program)
        except Exception:
            pass  # a context that is going away frees them anyway
        finally:
            self.doneCurrent()
        self._gl_ok = False
        self._released = True

    def closeEvent(self, ev) -> None:
        self.releaseGL()
        super().closeEvent(ev)

    def _upload(self, GL) -> None:
        """Bring the data texture up to date: all of it, or only the dirty rows."""
        self.uploaded_rows = 0
        if self._front is None:
            return
        plane = self._plane()
        rows, cols = plane.shape
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self._data_tex)
        if self._realloc or self._tex_size != (cols, rows):
            if max(rows, cols) > self._max_texture:
                raise ValueError(
                    f"a plane of {rows}×{cols} exceeds this GL's texture limit "
                    f"{self._max_texture}×{self._max_texture}")
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_R32F, cols, rows, 0,
                            GL.GL_RED, GL.GL_FLOAT, np.ascontiguousarray(plane))
            self._tex_size = (cols, rows)
            self._realloc = False
            self._dirty_rows = None
            self.uploaded_rows = rows
            return
        if self._dirty_rows is None:
            return
        for r0, r1 in _runs(self._dirty_rows):
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, r0, cols, r1 - r0,
                               GL.GL_RED, GL.GL_FLOAT, np.ascontiguousarray(plane[r0:r1]))
            self.uploaded_rows += r1 - r0
        self._dirty_rows = None

    def _upload_lut(self, GL) -> None:
        table = np.concatenate([colormaps.lut(self._cmap),
                                np.full((256, 1), 255, np.uint8)], axis=1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self._lut_tex)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, 256, 1, 0, GL.GL_RGBA,
                        GL.GL_UNSIGNED_BYTE, np.ascontiguousarray(table))
        self._lut_dirty = False

    def paintGL(self) -> None:
        if self._released:
            self.initializeGL()  # shown again after releaseGL(): make the objects anew
        self._painting = True
        try:
            self._paint()
        finally:
            self._painting = False

    def _paint(self) -> None:
        from OpenGL import GL

        self._frame_times.append(time.monotonic())
        bg = _rgba(colormaps.BACKGROUND_COLOR)
        GL.glClearColor(*bg)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        if not self._gl_ok or self._front is None:
            return
        if self._fit_pending:
            self._fit_now()
        try:
            if self._lut_dirty:
                self._upload_lut(GL)
            data_tex, size, row_offset = self._data_tex, None, 0
            if self._provider is not None and not self._provider_error:
                try:
                    tex = None
                    if self._auto_levels and self._levels_from_texture():
                        tex = self._texture_levels()
                    if tex is None:
                        tex = self._provider()
                    tex_id, epoch = tex
                    self.drawn_epoch = int(epoch)
                    data_tex = int(tex_id)
                    size = (self._cols(), self._rows())
                    row_offset = self._z * self._rows()
                except Exception as exc:
                    self._provider_error = f"{type(exc).__name__}: {exc}"
                    self.sigGLError.emit("the GL backend's front texture cannot be sampled "
                                         f"({self._provider_error}); uploading instead")
                    self._realloc = True
                    if self._auto_levels:
                        self._compute_levels()
            if size is None:
                self._upload(GL)
                size = self._tex_size
                self.drawn_epoch = self.data_epoch
            self._draw(GL, data_tex, size, row_offset)
        except Exception as exc:
            self._gl_ok = False
            self.sigGLError.emit(f"the buffer view stopped drawing: {exc}")

    def _draw(self, GL, data_tex: int, size: tuple[int, int], row_offset: int = 0) -> None:
        u = self._uniforms
        r = self.devicePixelRatioF()
        GL.glViewport(0, 0, int(self.width() * r), int(self.height() * r))
        GL.glUseProgram(self._program)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, data_tex)
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self._lut_tex)
        GL.glBindSampler(0, self._sampler)
        GL.glBindSampler(1, self._sampler)

        def set1i(name, *v):
            if name in u:
                (GL.glUniform1i, GL.glUniform2i)[len(v) - 1](u[name], *v)

        def setf(name, *v):
            if name in u:
                (GL.glUniform1f, GL.glUniform2f, GL.glUniform3f, GL.glUniform4f)[len(v) - 1](
                    u[name], *v)

        set1i("u_data", 0)
        set1i("u_lut", 1)
        set1i("u_size", int(size[0]), int(size[1]))
        set1i("u_row_offset", int(row_offset))
        setf("u_offset", *self._offset)
        setf("u_scale", *self._scale)
        setf("u_fb_height", float(self.height() * r))
        setf("u_levels", *self._levels)
        setf("u_nan", *_rgba(colormaps.NAN_COLOR))
        setf("u_posinf", *_rgba(colormaps.POSINF_COLOR))
        setf("u_neginf", *_rgba(colormaps.NEGINF_COLOR))
        setf("u_background", *_rgba(colormaps.BACKGROUND_COLOR))
        setf("u_grid", 0.0, 0.0, 0.0, 0.35)
        setf("u_grid_min", GRID_MIN_PX if self._grid else 1e30)
        sel = self._selection
        if sel is None:
            setf("u_selection", 0.0, 0.0, 0.0, 0.0)
        else:
            (r0, r1), (c0, c1) = sel
            setf("u_selection", c0, r0, c1, r1)
        setf("u_selection_color", 1.0, 1.0, 1.0, 1.0)
        hover = self._hover_cell or (-1, -1)
        set1i("u_hover", hover[1], hover[0])
        setf("u_hover_color", 1.0, 0.2, 0.2, 1.0)
        GL.glBindVertexArray(self._vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
        GL.glBindVertexArray(0)
        GL.glBindSampler(0, 0)
        GL.glBindSampler(1, 0)
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glUseProgram(0)

    def resizeGL(self, w: int, h: int) -> None:
        if self._fit_pending:
            self._fit_now()

    # ------------------------------------------------------------------ mouse
    def wheelEvent(self, ev: QWheelEvent) -> None:
        steps = ev.angleDelta().y() / 120.0
        if steps:
            self.zoomBy(1.25 ** steps, ev.position())
        ev.accept()

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                cell = self.texelAt(ev.position().x(), ev.position().y())
                if cell is not None:
                    self._select_from = cell
                    self._drag = ("select", ev.position(), self._offset.copy())
                    self.setSelection(((cell[0], cell[0] + 1), (cell[1], cell[1] + 1)))
            else:
                self._drag = ("pan", ev.position(), self._offset.copy())
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        if self._drag is not None and self._drag[0] == "pan":
            d = (pos - self._drag[1]) * self.devicePixelRatioF()
            self._offset = self._drag[2] + np.array([d.x(), d.y()])
            self._fit_pending = False
            self.update()
        elif self._drag is not None and self._drag[0] == "select" and self._select_from:
            box = self._box_to(pos)
            if box is not None:
                self.setSelection(box)
        cell = self.texelAt(pos.x(), pos.y())
        if cell != self._hover_cell:
            self._hover_cell = cell
            self.update()
            self.sigHover.emit(None if cell is None else self.elementIndex(*cell))
        ev.accept()

    def _box_to(self, pos: QPointF):
        r = self.devicePixelRatioF()
        tc = (np.array([pos.x() * r, pos.y() * r]) - self._offset) / self._scale
        col = int(np.clip(np.floor(tc[0]), 0, self._cols() - 1))
        row = int(np.clip(np.floor(tc[1]), 0, self._rows() - 1))
        r0, c0 = self._select_from
        return ((min(r0, row), max(r0, row) + 1), (min(c0, col), max(c0, col) + 1))

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if self._drag is not None and self._drag[0] == "select" and self._select_from:
            box = self._box_to(ev.position())
            self.setSelection(box)
            self.sigRegionSelected.emit(box)
        self._drag = None
        self._select_from = None
        self.unsetCursor()
        ev.accept()

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        self.fit()
        ev.accept()

    def leaveEvent(self, ev) -> None:
        if self._hover_cell is not None:
            self._hover_cell = None
            self.update()
            self.sigHover.emit(None)
        super().leaveEvent(ev)
