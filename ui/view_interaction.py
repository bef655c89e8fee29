"""``ViewInteraction``: how the buffer view (``ui.buffer_view``) is looked at and driven —
zoom, pan and fit through its ``Camera``, widget point <-> texel <-> buffer index, and
the mouse and key handlers — as a mixin over ``BufferView``'s state (``camera``,
``source``, ``state``, the hover and drag fields) and signals.

Wheel zooms about the cursor, drag pans, Shift+drag selects a region (Escape or a plain
click clears it), double-click fits (and keeps the image fitted when the widget is
resized, until the next zoom or pan); a plain click on an element or Ctrl+double-click
says which one (``sigElementClicked``).
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, Qt
from PyQt6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent


class ViewInteraction:
    """Camera, hit-testing and input for ``BufferView`` (see the module docstring)."""

    # ------------------------------------------------------------------ camera
    def fit(self) -> None:
        self.camera.fit()
        self.update()

    def zoom_by(self, factor: float, about: QPointF | None = None) -> None:
        """Zoom by ``factor`` about a widget point (the center by default)."""
        r = self.devicePixelRatioF()
        self.camera.zoom_by(factor, None if about is None else (about.x() * r, about.y() * r))
        self.update()

    def pan_by(self, dx: float, dy: float) -> None:
        r = self.devicePixelRatioF()
        self.camera.pan_by(dx * r, dy * r)
        self.update()

    def scale(self) -> tuple[float, float]:
        return self.camera.scale

    def texel_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) of the plane at widget point (x, y); None outside the image."""
        if self.source.front is None:
            return None
        r = self.devicePixelRatioF()
        return self.camera.texel_at(x * r, y * r)

    def texel_center(self, row: int, col: int) -> tuple[int, int]:
        """Framebuffer pixel (x, y) at the center of texel (row, col)."""
        x, y = self.camera.texel_center(row, col)
        return int(np.floor(x)), int(np.floor(y))

    def element_index(self, row: int, col: int) -> tuple[int, ...]:
        """The buffer index of plane texel (row, col)."""
        front = self.source.front
        nd = front.ndim if front is not None else 2
        return {1: (col,), 2: (row, col)}.get(nd, (self.state.z, row, col))

    @property
    def hover_index(self) -> tuple[int, ...] | None:
        """The buffer index under the cursor (None: not over the image)."""
        return None if self._hover_cell is None else self.element_index(*self._hover_cell)
    # ------------------------------------------------------------------ mouse and keys
    def wheelEvent(self, ev: QWheelEvent) -> None:
        steps = ev.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25 ** steps, ev.position())
        ev.accept()

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                cell = self.texel_at(ev.position().x(), ev.position().y())
                if cell is not None:
                    self._select_from = cell
                    self._drag = ("select", ev.position(), self.camera.offset)
                    self.state.set_selection(((cell[0], cell[0] + 1), (cell[1], cell[1] + 1)))
            else:
                self._drag = ("pan", ev.position(), self.camera.offset)
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        if self._drag is not None and self._drag[0] == "pan":
            d = (pos - self._drag[1]) * self.devicePixelRatioF()
            o = self._drag[2]
            self.camera.pan_to((o[0] + d.x(), o[1] + d.y()))
            self.update()
        elif self._drag is not None and self._drag[0] == "select" and self._select_from:
            self.state.set_selection(self._box_to(pos))
        cell = self.texel_at(pos.x(), pos.y())
        if cell != self._hover_cell:
            self._hover_cell = cell
            self.update()
            self.sigHover.emit(None if cell is None else self.element_index(*cell))
        ev.accept()

    def _box_to(self, pos: QPointF):
        r = self.devicePixelRatioF()
        row, col = self.camera.texel_clamped(pos.x() * r, pos.y() * r)
        r0, c0 = self._select_from
        return ((min(r0, row), max(r0, row) + 1), (min(c0, col), max(c0, col) + 1))

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        drag = self._drag
        if drag is not None and drag[0] == "select" and self._select_from:
            box = self._box_to(ev.position())
            self.state.set_selection(box)
            self.sigRegionSelected.emit(box)
        elif drag is not None and drag[0] == "pan" and (ev.position() - drag[1]).manhattanLength() < 3:
            self.state.set_selection(None)       # a plain click clears the selection
            cell = self.texel_at(ev.position().x(), ev.position().y())
            if cell is not None:                 # ... and names the element clicked
                self.sigElementClicked.emit(self.element_index(*cell))
        self._drag = None
        self._select_from = None
        self.unsetCursor()
        ev.accept()

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            cell = self.texel_at(ev.position().x(), ev.position().y())
            if cell is not None:
                self.sigElementClicked.emit(self.element_index(*cell))
            ev.accept()
            return
        self.fit()
        ev.accept()

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if ev.key() == Qt.Key.Key_Escape and self.state.selection is not None:
            self.state.set_selection(None)
            ev.accept()
            return
        super().keyPressEvent(ev)

    def leaveEvent(self, ev) -> None:
        if self._hover_cell is not None:
            self._hover_cell = None
            self.update()
            self.sigHover.emit(None)
        super().leaveEvent(ev)
