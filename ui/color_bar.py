"""``ColorBar``: the legend beside the buffer view — the colormap from the high level
(top) to the low level (bottom), and the swatches of NaN, +Inf and −Inf.

It observes the view's ``DisplayState`` (colormap, levels, auto or fixed) and holds
no copy of it.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRect, QSize, Qt
from PyQt6.QtGui import QColor, QFontMetrics, QImage, QPainter
from PyQt6.QtWidgets import QSizePolicy, QWidget

from . import colormaps
from .display_state import DisplayState


def format_value(v: float) -> str:
    """A compact, exact-enough rendering of a float32 value."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "−Inf"
    return f"{v:.6g}"


class ColorBar(QWidget):
    def __init__(self, state: DisplayState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        state.sigColormapChanged.connect(lambda _n: self.update())
        state.sigLevelsChanged.connect(lambda *_a: self.update())

    def sizeHint(self) -> QSize:
        return QSize(96, 300)

    def levels(self) -> tuple[float, float]:
        """The (low, high) levels the bar shows."""
        return self.state.levels

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        fm = QFontMetrics(self.font())
        line = fm.height()
        swatches = list(colormaps.SPECIAL_COLORS.items())
        bottom_space = len(swatches) * (line + 4) + line + 8
        bar = QRect(8, line + 6, 22, max(20, self.height() - bottom_space - 2 * line - 12))
        # the gradient, top = high
        table = colormaps.lut(self.state.colormap)[::-1]
        rgba = np.ascontiguousarray(
            np.concatenate([table, np.full((256, 1), 255, np.uint8)], axis=1).reshape(256, 1, 4))
        img = QImage(rgba.data, 1, 256, 4, QImage.Format.Format_RGBA8888)
        p.drawImage(bar, img)
        p.setPen(self.palette().windowText().color())
        p.drawRect(bar.adjusted(0, 0, -1, -1))
        lo, hi = self.state.levels
        x = bar.right() + 6
        p.drawText(QRect(4, 2, self.width() - 8, line), Qt.AlignmentFlag.AlignLeft,
                   "levels: auto" if self.state.auto_levels else "levels: fixed")
        p.drawText(x, bar.top() + fm.ascent() // 2, format_value(hi))
        p.drawText(x, bar.bottom() + fm.ascent() // 2, format_value(lo))
        mid = (lo + hi) / 2
        p.drawText(x, bar.center().y() + fm.ascent() // 2, format_value(mid))
        y = bar.bottom() + line + 6
        for name, (r, g, b) in swatches:
            box = QRect(8, y, 22, line)
            p.fillRect(box, QColor(r, g, b))
            p.drawRect(box.adjusted(0, 0, -1, -1))
            p.drawText(x, y + fm.ascent(), name)
            y += line + 4
        p.end()
