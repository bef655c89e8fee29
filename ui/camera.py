"""``Camera``: how the buffer plane is placed in the view — zoom, pan, fit and the
transforms between framebuffer pixels and texels. Qt-free (pyqtgraph's ViewBox
without the widget).

Coordinates: framebuffer pixels with y down (``px``); texels with x = column and
y = row (``tc``); ``px = offset + tc * scale``. A 1-D buffer is one row, drawn
taller than wide so it stays visible.

While the camera is *fitted* (after ``fit()``, and at start) a new viewport or
image size fits again; a zoom or a pan ends that until the next ``fit()``.
"""

from __future__ import annotations

import math

MIN_SCALE, MAX_SCALE = 1e-3, 512.0


class Camera:
    """Zoom and pan of one image of ``(cols, rows)`` texels in a viewport of px."""

    def __init__(self) -> None:
        self.scale = (1.0, 1.0)     # px per texel, x and y
        self.offset = (0.0, 0.0)    # px of the image's top-left corner
        self.viewport = (0.0, 0.0)  # px
        self.image = (0, 0)         # (cols, rows)
        self.one_d = False
        self.fitted = True

    # -- what is shown -----------------------------------------------------------------
    def set_viewport(self, w: float, h: float) -> None:
        self.viewport = (float(w), float(h))
        if self.fitted:
            self._fit_now()

    def set_image(self, cols: int, rows: int, one_d: bool = False) -> None:
        """A new image size; fits when it differs from the last one or while fitted."""
        new = (int(cols), int(rows))
        if new != self.image or one_d != self.one_d:
            self.image, self.one_d = new, bool(one_d)
            self.fitted = True
        if self.fitted:
            self._fit_now()

    # -- moves -------------------------------------------------------------------------
    def fit(self) -> None:
        """The whole image in the viewport, centered; kept fitted on resizes."""
        self.fitted = True
        self._fit_now()

    def _fit_now(self) -> None:
        (w, h), (cols, rows) = self.viewport, self.image
        if not cols or not rows or w <= 0 or h <= 0:
            return
        if self.one_d:
            sx = w / cols
            self.scale = (sx, max(sx, min(h * 0.25, 64.0)))
        else:
            s = min(w / cols, h / rows)
            self.scale = (s, s)
        self.offset = ((w - self.scale[0] * cols) / 2.0, (h - self.scale[1] * rows) / 2.0)

    def zoom_by(self, factor: float, about: tuple[float, float] | None = None) -> None:
        """Zoom by ``factor`` about a px point (the viewport's center by default)."""
        px, py = about if about is not None else (self.viewport[0] / 2, self.viewport[1] / 2)
        new = tuple(min(max(s * factor, MIN_SCALE), MAX_SCALE) for s in self.scale)
        fx, fy = new[0] / self.scale[0], new[1] / self.scale[1]
        self.offset = (px - (px - self.offset[0]) * fx, py - (py - self.offset[1]) * fy)
        self.scale = new
        self.fitted = False

    def pan_by(self, dx: float, dy: float) -> None:
        self.offset = (self.offset[0] + dx, self.offset[1] + dy)
        self.fitted = False

    def pan_to(self, offset: tuple[float, float]) -> None:
        self.offset = (float(offset[0]), float(offset[1]))
        self.fitted = False

    # -- transforms ----------------------------------------------------------------------
    def to_texel(self, x: float, y: float) -> tuple[float, float]:
        """px -> fractional texel (column, row)."""
        return (x - self.offset[0]) / self.scale[0], (y - self.offset[1]) / self.scale[1]

    def to_px(self, col: float, row: float) -> tuple[float, float]:
        """Fractional texel (column, row) -> px."""
        return self.offset[0] + col * self.scale[0], self.offset[1] + row * self.scale[1]

    def texel_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) under px (x, y); None outside the image."""
        c, r = self.to_texel(x, y)
        col, row = math.floor(c), math.floor(r)
        if 0 <= row < self.image[1] and 0 <= col < self.image[0]:
            return row, col
        return None

    def texel_clamped(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) under px (x, y), clamped into the image."""
        c, r = self.to_texel(x, y)
        col = min(max(math.floor(c), 0), max(self.image[0] - 1, 0))
        row = min(max(math.floor(r), 0), max(self.image[1] - 1, 0))
        return row, col

    def texel_center(self, row: int, col: int) -> tuple[float, float]:
        """px at the center of texel (row, col)."""
        return self.to_px(col + 0.5, row + 0.5)
