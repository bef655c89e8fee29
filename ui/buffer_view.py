"""``BufferView``: the front buffer drawn live through a colormap (OpenGL 3.3 core).

The widget only puts the parts together (pyqtgraph's ImageItem/ViewBox split):

* what is shown — a ``DisplayState`` (colormap, levels, z, selection, grid) that
  the view observes, like the color bar and the control panel do;
* how it is looked at — a ``Camera`` (zoom, pan, fit, px ↔ texel);
* where the pixels come from — a front source: ``UploadSource`` (the read-back
  front, only changed rows uploaded) or ``TextureSource`` (the GL backend's own
  texture, sampled in a shared context, levels from its non-blocking GPU range);
* the GL objects and the draw call — a ``ViewRenderer``;
* what is drawn over the data — an ``Overlays`` (outlined boxes: race overlaps,
  the update log's selected row, the followed element; marked elements: the
  diff), observed like the display state and uploaded when it changes.

``paint`` never waits: in texture mode it draws with the newest levels known and
asks again on the next frame until they belong to the epoch drawn
(``levels_epoch == drawn_epoch``).

Camera, hit-testing, mouse and keys are the ``ViewInteraction`` mixin
(``ui.view_interaction``): wheel zooms about the cursor, drag pans, Shift+drag
selects a region, double-click fits; a plain click on an element or
Ctrl+double-click says which one (``sigElementClicked``, the element history
follows it).

Signals
-------
sigHover(object)            the element under the cursor: an index tuple, or None
sigRegionSelected(object)   a Shift+drag box in plane coordinates ((r0, r1), (c0, c1))
sigGLInfo(dict)             renderer/vendor/version once the context exists
sigGLError(str)             the view could not draw (shader, texture size, ...)
sigElementClicked(object)   a plain click on an element: its index tuple
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from PyQt6.QtCore import QPointF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QOpenGLContext, QSurfaceFormat
from PyQt6.QtOpenGLWidgets import QOpenGLWidget

from .camera import Camera
from .display_state import DisplayState
from .front_source import TextureProvider, TextureSource, UploadSource
from .overlays import Overlays, plane_of
from .view_interaction import ViewInteraction
from .view_renderer import ViewRenderer

LEVELS_RETRY_MS = 15   # texture mode: ask again for the drawn epoch's range this soon


def view_format() -> QSurfaceFormat:
    """OpenGL 3.3 core, the format of the view (and of contexts shared with it)."""
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(0)
    fmt.setStencilBufferSize(0)
    return fmt


class BufferView(ViewInteraction, QOpenGLWidget):
    sigHover = pyqtSignal(object)
    sigRegionSelected = pyqtSignal(object)
    sigGLInfo = pyqtSignal(dict)
    sigGLError = pyqtSignal(str)
    sigElementClicked = pyqtSignal(object)

    def __init__(self, state: DisplayState | None = None, parent=None,
                 overlays: Overlays | None = None) -> None:
        super().__init__(parent)
        self.setFormat(view_format())
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 150)
        self.state = state if state is not None else DisplayState()
        self.camera = Camera()
        self.source: UploadSource = UploadSource()
        self.renderer = ViewRenderer()
        self.overlays = overlays if overlays is not None else Overlays()
        self._overlays_due = True               # upload the overlays at the next paint
        self.epoch = 0                          # newest epoch known to be visible
        self.drawn_epoch: int | None = None     # epoch of the picture last drawn
        self._source_error = ""
        self._released = False
        self._in_paint = False
        self._hover_cell: tuple[int, int] | None = None
        self._drag: tuple[str, QPointF, tuple[float, float]] | None = None
        self._select_from: tuple[int, int] | None = None
        self._frame_times: deque[float] = deque(maxlen=1000)
        self._frames = 0
        self._levels_retry = QTimer(self)
        self._levels_retry.setSingleShot(True)
        self._levels_retry.timeout.connect(self.update)
        st = self.state
        st.sigColormapChanged.connect(lambda _n: self.update())
        st.sigLevelsChanged.connect(lambda *_a: self._on_levels_changed())
        st.sigGridChanged.connect(lambda _on: self.update())
        st.sigSelectionChanged.connect(lambda _b: self.update())
        st.sigSliceChanged.connect(self._on_slice_changed)
        self.overlays.sigOverlaysChanged.connect(lambda _name: self._on_overlays_changed())

    def _on_overlays_changed(self) -> None:
        self._overlays_due = True
        self.update()

    # ------------------------------------------------------------------ data
    def set_front(self, front: np.ndarray | None, epoch: int, changes: tuple | None = None,
                  owned: bool = False) -> None:
        """Show ``front`` (the manager's front at ``epoch``); uploads only what changed.
        ``changes``: the session's ``FrontChanges.take`` for it (the rows it changed).
        ``owned``: a copy made for the view (kept as is while it samples a texture)."""
        self.epoch = int(epoch)
        if owned and self.source.kind == "texture":
            new_image = self.source.set_front(front, epoch, changes, owned=True)
        else:
            new_image = self.source.set_front(front, epoch, changes)
        if self.state.z >= self.source.depth:
            self.state.set_z(0)
        self.source.set_z(self.state.z)
        if new_image:
            self._overlays_due = True
            self.camera.set_image(self.source.cols, self.source.rows,
                                  front is not None and np.ndim(front) == 1)
        if self.state.auto_levels and not self._levels_from_gpu():
            self._levels_from_copy()
        self.update()

    def set_epoch(self, epoch: int) -> None:
        """A newer epoch is visible (texture mode draws it without a read-back)."""
        self.epoch = int(epoch)
        self.update()

    def front(self) -> np.ndarray | None:
        """The view's copy of the front it shows (do not modify)."""
        return self.source.front

    @property
    def data_epoch(self) -> int:
        """The epoch of the values in ``front()``."""
        return self.source.data_epoch

    @property
    def levels_epoch(self) -> int | None:
        return self.state.levels_epoch

    @property
    def uploaded_rows(self) -> int:
        return self.renderer.uploaded_rows

    @property
    def gl_info(self) -> dict[str, str]:
        return self.renderer.info

    def set_texture_source(self, texture: TextureProvider | None,
                           request_range=None, readback_hz: float | None = None,
                           drawn=None) -> None:
        """Sample ``texture() -> (texture_id, epoch)`` (shared context) instead of
        uploading; auto levels from ``request_range()`` (non-blocking) when given;
        ``drawn(texture_id)`` after each draw that sampled it (view context current).
        None: upload the read-back front again."""
        old = self.source
        self.source = (UploadSource() if texture is None
                       else TextureSource(texture, request_range, readback_hz, drawn))
        if old.front is not None:
            self.source.set_front(old.front, old.data_epoch)
        self.source.set_z(self.state.z)
        self._source_error = ""
        self.drawn_epoch = None
        self.state.levels_epoch = None
        if self.state.auto_levels and not self._levels_from_gpu():
            self._levels_from_copy()
        self.update()

    @property
    def using_shared_texture(self) -> bool:
        return self.source.kind == "texture" and not self._source_error

    @property
    def texture_args(self) -> tuple | None:
        """What ``set_texture_source`` was given for the texture sampled now (None:
        none), to go back to it later."""
        src = self.source
        if src.kind != "texture":
            return None
        return src.texture, src.request_range, src.readback_hz, src.drawn

    def readback_due(self) -> bool:
        """Whether the session should hand over the front at the epoch now visible:
        always while uploading it, now and then for the readout while sampling a texture."""
        return not self.using_shared_texture or self.source.readback_due()

    def _levels_from_gpu(self) -> bool:
        return self.using_shared_texture and self.source.request_range is not None

    def _levels_from_copy(self) -> None:
        if self.source.front is None:
            return
        rng = self.source.finite_range()
        lo, hi = rng if rng is not None else (None, None)
        self.state.set_auto_range(lo, hi, self.source.data_epoch)

    def _on_levels_changed(self) -> None:
        if self.state.auto_levels and self.state.levels_epoch is None:
            if not self._levels_from_gpu():
                self._levels_from_copy()
        if not self._in_paint:      # (a paint drawing them now needs no other)
            self.update()

    def _on_slice_changed(self, z: int) -> None:
        z = min(z, self.source.depth - 1)
        if z != self.state.z:
            self.state.set_z(z)   # clamp; this handler runs again with the clamped z
            return
        self.source.set_z(z)
        self._overlays_due = True
        self.update()
    def value_at(self, index: tuple[int, ...]) -> float | None:
        front = self.source.front
        return None if front is None else float(front[index])

    def frames_per_second(self) -> float:
        now = time.monotonic()
        recent = [t for t in self._frame_times if now - t <= 1.0]
        if len(recent) < 2:
            return float(len(recent))
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def frame_count(self) -> int:
        """Frames drawn so far (at most the last 1000 are timed)."""
        return self._frames

    # ------------------------------------------------------------------ GL
    def initializeGL(self) -> None:
        try:
            self.renderer.create()
            share = QOpenGLContext.globalShareContext()
            self.renderer.info["shared"] = str(bool(
                share is not None and QOpenGLContext.areSharing(self.context(), share)))
            self.source.realloc = True
            self._overlays_due = True
            self._released = False
        except Exception as exc:
            self.renderer.ok = False
            self.sigGLError.emit(f"the buffer view cannot use OpenGL: {exc}")
        self.sigGLInfo.emit(dict(self.renderer.info))

    def release_gl(self) -> None:
        """Free our GL objects now, at a moment of our choosing (the window calls
        it when it closes). Not tied to the context's ``aboutToBeDestroyed``: that
        fires whenever the garbage collector destroys an old view, possibly while
        another widget is painting. Painting again afterwards makes them anew."""
        if not self.renderer.ok or self.context() is None:
            return
        self.makeCurrent()
        try:
            self.renderer.release()
        finally:
            self.doneCurrent()
        self._released = True

    def closeEvent(self, ev) -> None:
        self.release_gl()
        super().closeEvent(ev)

    def resizeGL(self, w: int, h: int) -> None:
        self.camera.set_viewport(w, h)   # re-fits while fitted

    def paintGL(self) -> None:
        self._in_paint = True    # levels taken while painting are drawn by this paint
        try:
            self._paint()
        finally:
            self._in_paint = False

    def _paint(self) -> None:
        if self._released:
            self.initializeGL()  # shown again after release_gl(): make the objects anew
        self._frame_times.append(time.monotonic())
        self._frames += 1
        rd = self.renderer
        rd.clear()
        src = self.source
        if not rd.ok or src.front is None:
            return
        r = self.devicePixelRatioF()
        fb = (int(self.width() * r), int(self.height() * r))
        if self.camera.viewport != fb:
            self.camera.set_viewport(*fb)
        try:
            rd.upload_lut(self.state.colormap)
            tex = self._texture_to_draw() if self.using_shared_texture else None
            if tex is None:
                rd.upload(src)
                tex = (rd.data_tex, rd.tex_size, 0)
                self.drawn_epoch = src.data_epoch
            if self._overlays_due:
                self._upload_overlays()
            st = self.state
            rd.draw(fb, tex[0], tex[1], tex[2], self.camera.offset, self.camera.scale,
                    st.levels, st.grid, st.selection, self._hover_cell)
            if tex[0] != rd.data_tex and getattr(src, "drawn", None) is not None:
                src.drawn(tex[0])     # fenced: its writer waits for this draw to end
            rd.draw_boxes(fb, self.camera.offset, self.camera.scale)
        except Exception as exc:
            rd.ok = False
            self.sigGLError.emit(f"the buffer view stopped drawing: {exc}")

    def _upload_overlays(self) -> None:
        """Hand the overlays of the shown plane to the renderer (context current)."""
        self._overlays_due = False
        z = self.state.z
        rd = self.renderer
        rd.upload_boxes(self.overlays.plane_boxes(z))
        marks = self.overlays.mark_sets()
        ms = marks[-1] if marks else None          # one mark set is drawn: the newest
        src = self.source
        if ms is None or ms.mask.shape != (src.front.shape if src.front is not None else None):
            rd.upload_marks(None)
        else:
            rd.upload_marks(plane_of(ms.mask, z), ms.color)

    def _texture_to_draw(self):
        """``(texture, (cols, rows), row_offset)`` of the shared front, its levels
        taken without waiting; None (and a message) when the texture cannot be had."""
        src: TextureSource = self.source  # type: ignore[assignment]
        try:
            tex_id, epoch = src.texture()
        except Exception as exc:
            self._source_error = f"{type(exc).__name__}: {exc}"
            self.sigGLError.emit("the GL backend's front texture cannot be sampled "
                                 f"({self._source_error}); uploading instead")
            src.realloc = True
            if self.state.auto_levels:
                self._levels_from_copy()
            return None
        self.drawn_epoch = int(epoch)
        if self.state.auto_levels and src.request_range is not None:
            self._take_gpu_levels(src, int(epoch))
        return int(tex_id), (src.cols, src.rows), src.row_offset()

    def _take_gpu_levels(self, src: TextureSource, epoch: int) -> None:
        try:
            rng = src.request_range()
        except Exception as exc:
            src.request_range = None
            self.sigGLError.emit("the GL backend's front range is unavailable "
                                 f"({type(exc).__name__}: {exc}); levels from the read-back front")
            self._levels_from_copy()
            return
        known = self.state.levels_epoch
        if rng is not None and (known is None or rng[2] >= known):
            self.state.set_auto_range(rng[0], rng[1], rng[2])
        if self.state.levels_epoch != epoch and not self._levels_retry.isActive():
            self._levels_retry.start(LEVELS_RETRY_MS)   # not there yet: ask next frame
