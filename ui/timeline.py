"""``TimelineDock``: the updates on a time axis (Perfetto's tracks), read from the
app's one ``UpdateHistory`` through the shared ``HistoryColumns``.

One lane per producer (an enqueue mark for each of its updates), a worker lane
(an apply mark per update, red triangles where a watch stopped the worker),
vertical lines at swaps (faint for epochs that made no update visible), and a
queue-depth area chart (updates enqueued minus updates applied, at each pixel's
time). Wheel zooms about the cursor, drag pans, double-click fits everything
(and keeps fitting as new updates arrive, until the next zoom or pan).

A ``cursor`` (``set_cursor``: a time, drawn as a blue line) marks where a trace
player stands; a history without apply times (a recorded trace keeps only when
updates were enqueued) has no worker marks and says so instead of a queue depth.

Only what is in view is drawn: the marks of the visible time window are found by
binary search over the (time-ordered) columns, and when there are more of them
than pixels they are drawn as per-pixel density bars instead of one mark each —
100 000+ updates stay smooth; new rows repaint it at most ``REPAINT_HZ`` times a
second. Hovering a mark names its update; clicking selects
it (``sigSeqClicked``), which the app routes to the update log. This module
paints and handles the mouse; where things are (lanes, the time axis, the window,
hit-testing) is the ``TimelineGeometry`` mixin (``ui.timeline_geometry``).

Signals
-------
TimelineView.sigSeqClicked(int)    a mark was clicked: the seq of its update
"""

from __future__ import annotations

import time

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QWheelEvent,
)
from PyQt6.QtWidgets import QDockWidget, QToolTip, QWidget

from app.manager import OP_NAMES

from .history_columns import NO_TIME, HistoryColumns
from .timeline_geometry import (  # noqa: F401  (re-exported)
    AXIS_H,
    DEPTH_H,
    HIT_PX,
    LABEL_W,
    LANE_H,
    MAX_FLOWS,
    MAX_MARKS,
    TimelineGeometry,
    mark_image,
)

OP_COLORS = {
    "set": QColor(60, 120, 220), "fill": QColor(40, 160, 80), "add": QColor(220, 140, 30),
    "scale": QColor(160, 80, 200), "write": QColor(200, 60, 60),
}
OP_BY_CODE = [OP_COLORS[name] for name in OP_NAMES]
_MARK_ARGB = np.array([q.rgba() for q in OP_BY_CODE] + [QColor(0, 0, 0).rgba()], np.uint32)
REPAINT_HZ = 15.0     # most repaints a second for new rows (see TimelineView._on_rows)


class TimelineView(TimelineGeometry, QWidget):
    """The lanes, drawn with ``paintEvent`` (see the module docstring).

    Signals
    -------
    sigSeqClicked(int)
        a mark was clicked: its update's first sequence number
    """

    sigSeqClicked = pyqtSignal(int)

    def __init__(self, columns: HistoryColumns, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = columns
        self.setMouseTracking(True)
        self.setMinimumHeight(AXIS_H + 2 * LANE_H + DEPTH_H + 22)
        self.t_lo = 0.0                 # the window, ns since columns.t0
        self.t_hi = 1e9
        self.auto_fit = True
        self.selected_row: int | None = None
        self.cursor_t: int | None = None   # a time to mark (ns, as the columns), or None
        self._drag: tuple[float, float] | None = None
        self._pressed_at: QPointF | None = None
        self.marks_drawn = 0            # marks drawn by the last paint (for tests)
        self._last_rows_paint = -1e9     # time.monotonic() of the last repaint for new rows
        self._rows_timer = QTimer(self)
        self._rows_timer.setSingleShot(True)
        self._rows_timer.timeout.connect(self._on_rows)
        columns.sigRowsChanged.connect(self._on_rows)
        columns.sigReset.connect(self._on_reset)

    def sizeHint(self):  # noqa: N802
        from PyQt6.QtCore import QSize
        return QSize(800, AXIS_H + (len(self.lanes()) + 1) * LANE_H + DEPTH_H)

    # -- following the columns -------------------------------------------------------------
    def _on_reset(self) -> None:
        self.selected_row = None
        self.cursor_t = None
        self.auto_fit = True
        self.t_lo, self.t_hi = 0.0, 1e9
        self.update()

    def _on_rows(self, *_a) -> None:
        """New rows: repaint, at most ``REPAINT_HZ`` times a second (rows arrive with
        every epoch; a timeline is read at a glance, and each of its paints would
        otherwise delay the buffer view's next frame on the GUI thread)."""
        now = time.monotonic()
        wait = self._last_rows_paint + 1.0 / REPAINT_HZ - now
        if wait > 0:
            if not self._rows_timer.isActive():
                self._rows_timer.start(max(1, int(wait * 1000)))
            return
        self._last_rows_paint = now
        if self.auto_fit:
            self.fit()
        self.updateGeometry()
        self.update()

    # -- drawing -------------------------------------------------------------------------------
    def paintEvent(self, ev) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(252, 252, 252))
        c = self.columns
        lanes = self.lanes()
        w, h = self.width(), self.height()
        # lane backgrounds and names
        for i, name in enumerate(lanes):
            y = self.lane_y(i)
            p.fillRect(QRectF(0, y, w, LANE_H), QColor(244, 246, 250) if i % 2 else
                       QColor(252, 252, 252))
            p.setPen(QColor(40, 40, 40) if name != "worker" else QColor(20, 20, 120))
            p.drawText(QRectF(4, y, LABEL_W - 8, LANE_H),
                       int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                       p.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, LABEL_W - 8))
        depth_y = self.lane_y(len(lanes))
        p.setPen(QColor(40, 40, 40))
        p.drawText(QRectF(4, depth_y, LABEL_W - 8, DEPTH_H),
                   int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), "queue depth")
        x = 4.0
        legend_y = depth_y + DEPTH_H + 14
        for name, color in OP_COLORS.items():
            p.fillRect(QRectF(x, legend_y - 8, 8, 8), color)
            p.setPen(QColor(60, 60, 60))
            p.drawText(QPointF(x + 11, legend_y), name)
            x += 16 + p.fontMetrics().horizontalAdvance(name)
        p.setPen(QPen(QColor(200, 40, 40, 170), 1))
        p.drawLine(QPointF(x + 4, legend_y - 9), QPointF(x + 4, legend_y + 1))
        p.setPen(QColor(60, 60, 60))
        p.drawText(QPointF(x + 9, legend_y), "swap (eN: epoch N became visible; dotted: "
                   "nothing new)   ▼ stopped by a watch")
        p.setPen(QColor(200, 200, 200))
        p.drawLine(QPointF(LABEL_W, 0), QPointF(LABEL_W, depth_y + DEPTH_H))
        self.marks_drawn = 0
        if c.t0 is None:
            p.setPen(QColor(120, 120, 120))
            p.drawText(QRectF(LABEL_W, 0, w - LABEL_W, h), int(Qt.AlignmentFlag.AlignCenter),
                       "no updates yet")
            p.end()
            return
        p.setClipRect(QRectF(LABEL_W, 0, w - LABEL_W, h))
        self._draw_axis(p)
        self._draw_swaps(p, depth_y + DEPTH_H)
        self._draw_depth(p, depth_y)
        self._draw_marks(p, lanes)
        self._draw_cursor(p, depth_y + DEPTH_H)
        p.end()

    def set_cursor(self, t_ns: int | None) -> None:
        """Mark time ``t_ns`` (the columns' clock, not relative) with a line — where a
        trace player stands; None: no line. A zoomed-in window pans to keep it in view."""
        self.cursor_t = None if t_ns is None else int(t_ns)
        c = self.columns
        if self.cursor_t is not None and c.t0 is not None and not self.auto_fit:
            t = self.cursor_t - c.t0
            if not self.t_lo <= t <= self.t_hi:
                half = (self.t_hi - self.t_lo) / 2
                self.set_window(t - half, t + half)
        self.update()

    def _draw_cursor(self, p: QPainter, bottom: float) -> None:
        c = self.columns
        if self.cursor_t is None or c.t0 is None:
            return
        x = float(self.x_of(self.cursor_t - c.t0))
        p.setPen(QPen(QColor(20, 90, 230), 2))
        p.drawLine(QPointF(x, 0), QPointF(x, bottom))

    def _draw_axis(self, p: QPainter) -> None:
        span_ms = (self.t_hi - self.t_lo) / 1e6
        raw = span_ms / max(1.0, self.plot_w() / 90)
        step = 10 ** np.floor(np.log10(raw))
        for m in (1, 2, 5, 10):
            if m * step >= raw:
                step *= m
                break
        first = np.ceil(self.t_lo / 1e6 / step) * step
        p.setPen(QColor(90, 90, 90))
        t = first
        decimals = max(0, int(-np.floor(np.log10(step)))) if step < 1 else 0
        while t * 1e6 <= self.t_hi:
            t = 0.0 if abs(t) < step / 2 else t
            x = float(self.x_of(t * 1e6))
            p.drawLine(QPointF(x, AXIS_H - 4), QPointF(x, AXIS_H))
            p.drawText(QPointF(x + 2, AXIS_H - 5), f"{t:.{decimals}f} ms")
            t += step

    def _draw_swaps(self, p: QPainter, bottom: float) -> None:
        c = self.columns
        if not len(c.swap_t):
            return
        a, b = self._window(c.swap_t, len(c.swap_t))
        if b <= a:
            return
        epochs = c.swap_epoch[a:b]
        xs = self.x_of(c.swap_t[a:b] - c.t0)
        busy = np.isin(epochs, c.epoch[:c.visible_rows])
        crowded = b - a > self.plot_w() / 4      # too many to tell apart: only the busy ones
        keep = np.flatnonzero(busy) if crowded else np.arange(b - a)
        if len(keep) > self.plot_w():            # still more than pixels: one per pixel
            _, first = np.unique(xs[keep].astype(np.int64), return_index=True)
            keep = keep[first]
        label_end = -1e9
        for j in keep:
            x, e, has = float(xs[j]), int(epochs[j]), bool(busy[j])
            p.setPen(QPen(QColor(200, 40, 40, 170) if has else QColor(200, 40, 40, 45), 1,
                          Qt.PenStyle.SolidLine if has else Qt.PenStyle.DotLine))
            p.drawLine(QPointF(x, AXIS_H), QPointF(x, bottom))
            label = f"e{e}"
            if has and x > label_end:      # a label only where it does not cover the last
                p.drawText(QPointF(x + 2, AXIS_H + 10), label)
                label_end = x + 8 + p.fontMetrics().horizontalAdvance(label)

    def _draw_depth(self, p: QPainter, top: float) -> None:
        c = self.columns
        if not c.n:
            return
        if c.applied_rows and not c.apply_timed:
            p.setPen(QColor(90, 90, 90))
            p.drawText(QPointF(LABEL_W + 4, top + 15),
                       "not recorded: the history has no apply times (a trace keeps only "
                       "when each update was enqueued)")
            return
        xs = np.arange(LABEL_W, self.width(), 2, dtype=float)
        ts = c.t0 + (self.t_lo + (xs - LABEL_W) * (self.t_hi - self.t_lo) / self.plot_w())
        enq = np.searchsorted(c.t_enq[:c.n], ts, "right")
        app = np.searchsorted(c.t_app[:c.applied_rows], ts, "right")
        depth = (enq - app).astype(float)
        peak = max(1.0, float(depth.max()))
        ys = top + DEPTH_H - 2 - depth * (DEPTH_H - 6) / peak
        poly = QPolygonF([QPointF(float(xs[0]), top + DEPTH_H - 2)]
                         + [QPointF(float(x), float(y)) for x, y in zip(xs, ys)]
                         + [QPointF(float(xs[-1]), top + DEPTH_H - 2)])
        p.setPen(QPen(QColor(70, 110, 170), 1))
        p.setBrush(QColor(70, 110, 170, 70))
        p.drawPolygon(poly)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QColor(60, 60, 60))
        p.drawText(QPointF(LABEL_W + 4, top + 11), f"max {int(peak)} in view")

    def _draw_marks(self, p: QPainter, lanes: list[str]) -> None:
        c = self.columns
        worker_lane = len(lanes) - 1
        ea, eb = self._window(c.t_enq, c.n)
        aa, ab = self._window(c.t_app, c.applied_rows)
        if c.applied_rows < c.n and c.t_app[c.applied_rows] != NO_TIME:
            ab = max(ab, c.applied_rows + 1) if ab >= c.applied_rows else ab
        total = (eb - ea) + (ab - aa)
        if total > MAX_MARKS:
            self._draw_density(p, c.t_enq[ea:eb], c.prod[ea:eb], lanes)
            self._draw_density(p, c.t_app[aa:ab], np.full(ab - aa, worker_lane), lanes)
            self.marks_drawn = 2 * int(self.plot_w())
        else:
            if total <= MAX_FLOWS:
                self._draw_flows(p, ea, eb)
            self._draw_ticks(p, np.arange(ea, eb), c.t_enq, c.prod[ea:eb])
            ks = np.arange(aa, ab)
            self._draw_ticks(p, ks, c.t_app, np.full(len(ks), worker_lane))
            self.marks_drawn = total
        for t, _seq in c.breaks:
            if self.t_lo <= t - c.t0 <= self.t_hi:
                x = float(self.x_of(t - c.t0))
                y = self.lane_y(worker_lane)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(220, 30, 30))
                p.drawPolygon(QPolygonF([QPointF(x - 5, y + 1), QPointF(x + 5, y + 1),
                                         QPointF(x, y + 9)]))
                p.setBrush(Qt.BrushStyle.NoBrush)
        k = self.selected_row
        if k is not None and k < c.n:
            p.setPen(QPen(QColor(0, 0, 0), 2))
            x = float(self.x_of(c.t_enq[k] - c.t0))
            y = self.lane_y(int(c.prod[k]))
            p.drawRect(QRectF(x - 4, y + 2, 8, LANE_H - 4))
            if c.t_app[k] != NO_TIME:
                xa = float(self.x_of(c.t_app[k] - c.t0))
                ya = self.lane_y(worker_lane)
                p.drawRect(QRectF(xa - 4, ya + 2, 8, LANE_H - 4))
                p.setPen(QPen(QColor(0, 0, 0), 1, Qt.PenStyle.DashLine))
                p.drawLine(QPointF(x, y + LANE_H - 2), QPointF(xa, ya + 2))

    def _draw_ticks(self, p: QPainter, ks: np.ndarray, times: np.ndarray, lanes: np.ndarray) -> None:
        """A 3-px mark per update in its op's colour (a later mark over an earlier one),
        rasterized at once (``mark_image``): thousands of marks a paint, where a
        ``fillRect`` each held the GUI thread for tens of milliseconds."""
        c = self.columns
        if not len(ks):
            return
        x0 = np.floor(self.x_of(times[ks] - c.t0) - 1.0).astype(np.int64)   # QRectF(x-1.5, ., 3)
        lo_lane, image = mark_image(x0, lanes, c.op[ks], _MARK_ARGB, self.width())
        qimg = QImage(image.data, image.shape[1], image.shape[0], 4 * image.shape[1],
                      QImage.Format.Format_ARGB32_Premultiplied)
        p.drawImage(QPointF(0, self.lane_y(lo_lane) + 4), qimg)

    def _draw_flows(self, p: QPainter, a: int, b: int) -> None:
        c = self.columns
        worker_y = self.lane_y(len(self.lanes()) - 1) + 4
        p.setPen(QPen(QColor(120, 120, 120, 110), 1))
        for k in range(a, min(b, c.applied_rows)):
            x0 = float(self.x_of(c.t_enq[k] - c.t0))
            x1 = float(self.x_of(c.t_app[k] - c.t0))
            y0 = self.lane_y(int(c.prod[k])) + LANE_H - 4
            path = QPainterPath(QPointF(x0, y0))
            path.lineTo(QPointF(x1, worker_y))
            p.drawPath(path)

    def _draw_density(self, p: QPainter, times: np.ndarray, lanes: np.ndarray,
                      names: list[str]) -> None:
        """Marks aggregated per pixel column: a bar as tall as that column's share."""
        if not len(times):
            return
        c = self.columns
        width = int(self.plot_w())
        px = np.clip(self.x_of(times - c.t0).astype(np.int64) - LABEL_W, 0, width - 1)
        for lane in np.unique(lanes):
            counts = np.bincount(px[lanes == lane], minlength=width)
            peak = max(1, int(counts.max()))
            y = self.lane_y(int(lane))
            for x in np.flatnonzero(counts):
                hgt = max(2.0, (LANE_H - 6) * counts[x] / peak)
                p.fillRect(QRectF(LABEL_W + float(x), y + LANE_H - 3 - hgt, 1, hgt),
                           QColor(60, 90, 140))

    # -- interaction ---------------------------------------------------------------------------
    def wheelEvent(self, ev: QWheelEvent) -> None:  # noqa: N802
        steps = ev.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.25 ** steps, ev.position().x())
        ev.accept()

    def mousePressEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            self._drag = (ev.position().x(), self.t_lo)
            self._pressed_at = ev.position()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        pos = ev.position()
        if self._drag is not None and ev.buttons() & Qt.MouseButton.LeftButton:
            x0, t_lo0 = self._drag
            if abs(pos.x() - x0) > 2:
                dt = (pos.x() - x0) * (self.t_hi - self.t_lo) / self.plot_w()
                width = self.t_hi - self.t_lo
                self.set_window(t_lo0 - dt, t_lo0 - dt + width)
            return
        k = self.row_at(pos.x(), pos.y())
        if k is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(ev.globalPosition().toPoint(), self.tooltip_text(k), self)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        pressed, self._pressed_at = self._pressed_at, None
        self._drag = None
        if ev.button() != Qt.MouseButton.LeftButton or pressed is None:
            return
        if (ev.position() - pressed).manhattanLength() > 3:
            return       # a pan, not a click
        k = self.row_at(ev.position().x(), ev.position().y())
        if k is not None:
            self.select_row(k)
            self.sigSeqClicked.emit(int(self.columns.seq[k]))

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        self.fit()


class TimelineDock(QDockWidget):
    """A dock holding the ``TimelineView`` (``self.view``)."""

    def __init__(self, columns: HistoryColumns, parent: QWidget | None = None) -> None:
        super().__init__("Timeline", parent)
        self.setObjectName("Timeline")
        self.view = TimelineView(columns)
        self.view.setToolTip("")
        self.setWidget(self.view)
