"""``TimelineGeometry``: where things are on the timeline (``ui.timeline``) — lanes, the
time <-> pixel mapping, the visible window (fit, zoom, pan), and which update's mark is
under a pixel — as a mixin over ``TimelineView``'s state (``columns``, ``t_lo``/``t_hi``,
``auto_fit``, ``selected_row``). The view paints with it; its mouse handlers and the
tests hit-test with it.

Only what is in view is looked at: the rows of the visible time window are found by
binary search over the (time-ordered) columns.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF

from .history_columns import NO_TIME

LABEL_W = 150          # the lane names
LANE_H = 22
AXIS_H = 18
DEPTH_H = 44
MAX_MARKS = 4000       # more marks than this in view: draw densities instead
MAX_FLOWS = 400        # enqueue -> apply lines drawn only when this few are in view
HIT_PX = 5


class TimelineGeometry:
    """Lanes, time axis, window and hit-testing for ``TimelineView``."""

    # -- geometry ------------------------------------------------------------------------
    def lanes(self) -> list[str]:
        return [*self.columns.producers, "worker"]

    def lane_y(self, lane: int) -> float:
        return AXIS_H + lane * LANE_H

    def plot_w(self) -> float:
        return max(1.0, self.width() - LABEL_W)

    def x_of(self, t_rel: np.ndarray | float):
        return LABEL_W + (np.asarray(t_rel, float) - self.t_lo) * self.plot_w() / (self.t_hi - self.t_lo)

    def t_of(self, x: float) -> float:
        return self.t_lo + (x - LABEL_W) * (self.t_hi - self.t_lo) / self.plot_w()
    def _span(self) -> tuple[float, float] | None:
        c = self.columns
        if c.t0 is None:
            return None
        ends = [0.0]
        if c.n:
            ends.append(float(c.t_enq[c.n - 1] - c.t0))
            if c.applied_rows:
                ends.append(float(c.t_app[c.applied_rows - 1] - c.t0))
        if len(c.swap_t):
            ends.append(float(c.swap_t[-1] - c.t0))
        return 0.0, max(ends)

    def fit(self) -> None:
        """Show everything (and keep doing so as updates arrive)."""
        self.auto_fit = True
        span = self._span()
        if span is None:
            return
        lo, hi = span
        pad = max((hi - lo) * 0.02, 1e5)
        self.t_lo, self.t_hi = lo - pad, hi + pad
        self.update()

    def set_window(self, t_lo: float, t_hi: float) -> None:
        """Show ``[t_lo, t_hi]`` (ns since the first event); stops fitting."""
        if t_hi - t_lo < 1e3:      # 1 µs: as far as zoom goes
            mid = (t_lo + t_hi) / 2
            t_lo, t_hi = mid - 500, mid + 500
        self.t_lo, self.t_hi = float(t_lo), float(t_hi)
        self.auto_fit = False
        self.update()

    def zoom(self, factor: float, about_x: float | None = None) -> None:
        """Zoom in by ``factor`` (> 1) about pixel ``about_x``."""
        t = self.t_of(about_x if about_x is not None else LABEL_W + self.plot_w() / 2)
        self.set_window(t - (t - self.t_lo) / factor, t + (self.t_hi - t) / factor)

    def select_row(self, k: int | None) -> None:
        """Mark history row ``k`` as selected (from the log)."""
        self.selected_row = k
        self.update()

    # -- what is where -------------------------------------------------------------------------
    def _window(self, times: np.ndarray, n: int) -> tuple[int, int]:
        """Rows [a, b) of the sorted ``times[:n]`` whose time is in view."""
        c = self.columns
        lo = c.t0 + self.t_lo
        hi = c.t0 + self.t_hi
        return (int(np.searchsorted(times[:n], lo, "left")),
                int(np.searchsorted(times[:n], hi, "right")))

    def row_at(self, x: float, y: float) -> int | None:
        """The history row whose mark is at pixel (x, y), or None."""
        c = self.columns
        if c.t0 is None or x < LABEL_W:
            return None
        lane = int((y - AXIS_H) // LANE_H)
        lanes = self.lanes()
        if not 0 <= lane < len(lanes):
            return None
        worker = lane == len(lanes) - 1
        times, n = (c.t_app, c.applied_rows) if worker else (c.t_enq, c.n)
        dt = HIT_PX * (self.t_hi - self.t_lo) / self.plot_w()
        t = c.t0 + self.t_of(x)
        a = int(np.searchsorted(times[:n], t - dt, "left"))
        b = int(np.searchsorted(times[:n], t + dt, "right"))
        if worker and c.applied_rows < c.n and c.t_app[c.applied_rows] != NO_TIME \
                and abs(c.t_app[c.applied_rows] - t) <= dt:
            a, b = min(a, c.applied_rows), c.applied_rows + 1     # the part-applied run
        if b <= a:
            return None
        ks = np.arange(a, b)
        if not worker:
            ks = ks[c.prod[a:b] == lane]
            if not len(ks):
                return None
        tt = (c.t_app if worker else c.t_enq)[ks]
        return int(ks[np.argmin(np.abs(tt - t))])

    def tooltip_text(self, k: int) -> str:
        """"seq 17, fill by racing-producer-1, enqueued +3.2 ms, applied +3.9 ms, visible at epoch 4"."""
        c = self.columns
        r = c.history.rows[k]
        seq = str(r.seq) if r.count == 1 else f"{r.seq}–{r.last_seq}"
        text = f"seq {seq}, {r.op} by {r.producer}, enqueued +{c.ms(r.t_enqueue_ns):.1f} ms"
        app = c.ms(r.t_apply_ns)
        text += f", applied +{app:.1f} ms" if app is not None else ", pending"
        if r.epoch_visible is not None:
            text += f", visible at epoch {r.epoch_visible}"
        return text

    def mark_pos(self, k: int, worker: bool = False) -> QPointF:
        """Where row ``k``'s enqueue (or apply) mark is drawn (for tests and tools)."""
        c = self.columns
        lane = len(self.lanes()) - 1 if worker else int(c.prod[k])
        t = (c.t_app if worker else c.t_enq)[k] - c.t0
        return QPointF(float(self.x_of(t)), self.lane_y(lane) + LANE_H / 2)


def mark_image(x0: np.ndarray, lanes, ops, palette: np.ndarray,
               width: int) -> tuple[int, np.ndarray]:
    """The timeline's marks as one premultiplied ARGB32 image: mark k covers columns
    ``x0[k] .. x0[k] + 2`` and rows 0 .. ``LANE_H - 9`` of its lane's band
    (``LANE_H`` rows a lane, from the lowest lane given), in ``palette[ops[k]]``
    (the last entry for an op outside it); where marks meet, the later one shows,
    as if drawn one after the other. Returns (lowest lane, image)."""
    lanes = np.asarray(lanes, np.int64)
    ops = np.asarray(ops, np.int64)
    cols = (np.asarray(x0, np.int64)[:, None] + np.arange(3)).ravel()
    lane3 = np.repeat(lanes, 3)
    known = (ops >= 0) & (ops < len(palette) - 1)
    color3 = np.repeat(np.where(known, ops, len(palette) - 1), 3)
    ok = (cols >= 0) & (cols < width)
    lo = int(lanes.min())
    key = ((lane3 - lo) * width + cols)[ok][::-1]       # reversed: the last mark first
    key, first = np.unique(key, return_index=True)
    n = int(lanes.max()) - lo + 1
    strip = np.zeros(n * width, np.uint32)
    strip[key] = palette[color3[ok][::-1][first]]
    image = np.repeat(strip.reshape(n, 1, width), LANE_H, axis=1)
    image[:, LANE_H - 8:, :] = 0                        # the rows between lanes: clear
    return lo, np.ascontiguousarray(image.reshape(n * LANE_H, width))
