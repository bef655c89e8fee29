"""The GL worker's operations on a ``Gpu`` texture besides element sets (``_sets``).

``BoxGroup`` collects pairwise disjoint Fill/Add/Scale/Write boxes; ``BoxesOp``
runs such a group as one compute dispatch, ``RectsOp`` uploads a Write as texture
rectangles. The worker builds them from queue entries (``gl_executor``) and keeps
them until the catch-up after the next swap replays them onto the other texture,
or copies the rows they wrote when that is cheaper (``COST``: replaying one
element against copying one).

Used only by the worker, with its context current.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._gpu import Gpu

OP_CODES = {"fill": 1, "add": 2, "scale": 3, "write": 4}
GROUP_BOXES = 4096           # boxes per compute dispatch
GROUP_TOTAL = (1 << 31) - 1  # elements per compute dispatch (uint arithmetic in the shader)


class BoxGroup:
    """Disjoint boxes collected for one compute dispatch."""

    def __init__(self) -> None:
        self.starts = np.empty((GROUP_BOXES, 3), dtype=np.int64)
        self.stops = np.empty((GROUP_BOXES, 3), dtype=np.int64)
        self.records = np.empty((GROUP_BOXES, 8), dtype=np.uint32)
        self.clear()

    def clear(self) -> None:
        self.k = 0
        self.total = 0
        self.payload: list[np.ndarray] = []
        self.payload_len = 0

    def fits(self, start: tuple, stop: tuple, volume: int) -> bool:
        k = self.k
        if k == 0:
            return True
        if k == GROUP_BOXES or self.total + volume > GROUP_TOTAL:
            return False
        if k <= 8:  # a few boxes: plain Python is quicker than numpy
            for j in range(k):
                s, t = self.starts[j], self.stops[j]
                if (s[0] < stop[0] and start[0] < t[0] and s[1] < stop[1] and start[1] < t[1]
                        and s[2] < stop[2] and start[2] < t[2]):
                    return False
            return True
        hit = (self.starts[:k] < stop) & (self.stops[:k] > start)
        return not bool(np.any(np.all(hit, axis=1)))

    def add(self, op: str, enc, volume: int) -> None:
        k = self.k
        self.starts[k] = enc.start
        self.stops[k] = enc.stop
        if op == "write":
            arg = self.payload_len
            block = enc.data.reshape(-1)
            self.payload.append(block)
            self.payload_len += block.size
        else:
            arg = enc.bits
        self.records[k] = (self.total, enc.start[0], enc.start[1], enc.start[2],
                           enc.stop[1] - enc.start[1], enc.stop[2] - enc.start[2],
                           OP_CODES[op], arg)
        self.total += volume
        self.k = k + 1


class BoxesOp:
    """A group of disjoint Fill/Add/Scale/Write boxes as one compute dispatch."""

    COST = 8   # replaying an element against copying one (gl_executor.catch_up)
    __slots__ = ("boxes", "payload", "n_boxes", "total", "bands")

    def __init__(self, gpu: Gpu, boxes: np.ndarray, payload: list[np.ndarray], total: int) -> None:
        self.boxes = gpu.pooled_buffer(boxes)
        self.payload = gpu.pooled_buffer(np.concatenate(payload)) if payload else 0
        self.n_boxes = len(boxes)
        self.total = total
        # records: (first element, z0, r0, c0, rows, cols, op, arg); a box's depth
        # is its volume (the next box's first element minus its own) over rows * cols.
        b = boxes.astype(np.int64)
        vol = np.diff(np.append(b[:, 0], total))
        z0, r0, c0, h, w = b[:, 1], b[:, 2], b[:, 3], b[:, 4], b[:, 5]
        depth = vol // np.maximum(h * w, 1)
        rows, cols = gpu.shape3[1], gpu.shape3[2]
        first = (z0 * rows + r0) * cols + c0
        last = ((z0 + depth - 1) * rows + r0 + h - 1) * cols + c0 + w - 1
        self.bands = gpu.bands.of_spans(first, last)

    def apply(self, gpu: Gpu, slot: int) -> None:
        gpu.run_boxes(slot, self.boxes, self.payload, self.n_boxes, self.total)
        gpu.bands.mark(slot, self.bands)

    def buffers(self) -> list[int]:
        return [b for b in (self.boxes, self.payload) if b]


class RectsOp:
    """A Write uploaded as texture rectangles: ``[(x, y, w, h, bits), ...]``."""

    COST = 1
    __slots__ = ("rects", "bands")

    def __init__(self, rects: list[tuple[int, int, int, int, np.ndarray]]) -> None:
        self.rects = rects
        self.bands = None

    def apply(self, gpu: Gpu, slot: int) -> None:
        if self.bands is None:
            wd = gpu.width
            self.bands = gpu.bands.of_spans(
                np.array([y * wd + x for x, y, _w, _h, _b in self.rects]),
                np.array([(y + h - 1) * wd + x + w - 1 for x, y, w, h, _b in self.rects]))
        for x, y, w, h, bits in self.rects:
            gpu.write_rect(slot, x, y, w, h, bits)
        gpu.bands.mark(slot, self.bands)

    def buffers(self) -> list[int]:
        return []
