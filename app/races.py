"""Race detection over the rows one epoch made visible (SPEC §7 "Race flag"). Qt-free.

``find_races`` compares every pair of rows' boxes, ops and values with numpy, in
blocks of ``RACE_BLOCK`` rows, then checks element sets (``set_many``) element by
element; ``UpdateHistory.races`` caches its answer per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .history import UpdateRow

RACE_BLOCK = 256       # later rows compared with all earlier ones per numpy step
MAX_SET_TRIES = 8      # earlier element sets tried for a shared element


@dataclass
class Race:
    """Two updates from different producers, visible in the same epoch, that wrote
    overlapping elements and do not commute: the later one (``winner``) decided
    what the front shows there."""

    epoch: int
    winner: UpdateRow
    loser: UpdateRow
    overlap: tuple[tuple[int, int], ...]


def find_races(epoch: int, visible: list[UpdateRow]) -> list[Race]:
    """The races among ``visible`` (the rows made visible at ``epoch``, in row order):
    see ``UpdateHistory.races``."""
    rows = [r for r in visible if r.detailed and r.bbox() is not None]
    n = len(rows)
    if n < 2:
        return []
    boxes = np.array([r.bbox() for r in rows], dtype=np.int64)        # (n, ndim, 2)
    prod: dict[str, int] = {}
    pid = np.array([prod.setdefault(r.producer, len(prod)) for r in rows])
    if len(prod) < 2:
        return []
    ops = {"add": 1, "scale": 2}
    op = np.array([ops.get(r.op, 0) for r in rows])
    const = np.array([r.op in ("set", "fill") and r.indices is None for r in rows])
    bits = np.array([np.float32(r.value if r.value is not None else 0.0).view(np.uint32)
                     for r in rows])
    sets = np.array([r.indices is not None for r in rows])
    out = []

    def latest_conflicts(js: np.ndarray, c0: int, c1: int):
        """For later rows ``js``: per producer, the latest earlier row in [c0, c1)
        that overlaps and does not commute. Yields (j, p, ok matrix row, lo, hi)."""
        lo = np.maximum(boxes[js, None, :, 0], boxes[None, c0:c1, :, 0])
        hi = np.minimum(boxes[js, None, :, 1], boxes[None, c0:c1, :, 1])
        hit = np.all(lo < hi, axis=2) & (js[:, None] > np.arange(c0, c1)[None, :])
        commute = (op[js, None] == op[None, c0:c1]) & (op[js, None] > 0)
        commute |= const[js, None] & const[None, c0:c1] & (bits[js, None] == bits[None, c0:c1])
        hit &= ~commute
        return hit, lo, hi

    def take(js, c0, hit, lo, hi, p, found):
        mp = hit & (pid[None, c0:c0 + hit.shape[1]] == p) & (pid[js, None] != p)
        has = np.flatnonzero(mp.any(axis=1))
        if not len(has):
            return
        last = mp.shape[1] - 1 - np.argmax(mp[has, ::-1], axis=1)
        for jj, ii in zip(has.tolist(), last.tolist()):
            j = int(js[jj])
            if (j, p) in found:
                continue
            later = rows[j]
            if not sets[j] and not sets[c0 + ii]:
                overlap = tuple(zip(lo[jj, ii].tolist(), hi[jj, ii].tolist()))
                found[(j, p)] = Race(epoch, later, rows[c0 + ii], overlap)
                continue
            for i2 in np.flatnonzero(mp[jj])[::-1][:MAX_SET_TRIES].tolist():
                overlap = _overlap(rows[c0 + i2], later)
                if overlap is not None:
                    found[(j, p)] = Race(epoch, later, rows[c0 + i2], overlap)
                    break

    found: dict[tuple[int, int], Race] = {}
    for a in range(1, n, RACE_BLOCK):            # later rows j in [a, b)
        b = min(a + RACE_BLOCK, n)
        js = np.arange(a, b)
        w0 = max(0, a - RACE_BLOCK)               # first the recent rows ...
        hit, lo, hi = latest_conflicts(js, w0, b)
        for p in range(len(prod)):
            take(js, w0, hit, lo, hi, p, found)
        if not w0:
            continue
        for p in range(len(prod)):                # ... then older ones, where they can overlap
            older = np.flatnonzero(pid[:w0] == p)
            if not len(older):
                continue
            ulo, uhi = boxes[older, :, 0].min(axis=0), boxes[older, :, 1].max(axis=0)
            need = np.array([pid[j] != p and (j, p) not in found and
                             bool(np.all(np.maximum(boxes[j, :, 0], ulo)
                                         < np.minimum(boxes[j, :, 1], uhi)))
                             for j in range(a, b)])
            if need.any():
                jn = js[need]
                hit2, lo2, hi2 = latest_conflicts(jn, 0, w0)
                take(jn, 0, hit2, lo2, hi2, p, found)
    out = list(found.values())
    out.sort(key=lambda r: (r.winner.seq, r.loser.seq))
    return out



def _box_overlap(a, b):
    box = tuple((max(p[0], q[0]), min(p[1], q[1])) for p, q in zip(a, b))
    return box if all(lo < hi for lo, hi in box) else None


def _elements_in(row: UpdateRow, box) -> np.ndarray:
    """The indices ((k, ndim)) of ``row``'s element set that lie in ``box``."""
    idx = row.indices
    keep = np.all((idx >= [lo for lo, _ in box]) & (idx < [hi for _, hi in box]), axis=1)
    return idx[keep]


def _overlap(a: UpdateRow, b: UpdateRow):
    """The box of elements both wrote (exact for element sets), or None."""
    box = _box_overlap(a.bbox(), b.bbox())
    if box is None:
        return None
    sets = [r for r in (a, b) if r.indices is not None]
    if not sets:
        return box
    hits = _elements_in(sets[0], box)
    if len(sets) == 2 and len(hits):
        other = _elements_in(sets[1], box)
        dims = np.array([hi for _, hi in box], dtype=np.int64)
        flat = np.ravel_multi_index(tuple(hits.T), dims)
        hits = hits[np.isin(flat, np.ravel_multi_index(tuple(other.T), dims))]
    if not len(hits):
        return None
    lo, hi = hits.min(axis=0), hits.max(axis=0)
    return tuple((int(x), int(y) + 1) for x, y in zip(lo, hi))


def _commute(a: UpdateRow, b: UpdateRow) -> bool:
    """Whether applying ``a`` and ``b`` in either order gives the same elements."""
    if a.op == b.op and a.op in ("add", "scale"):
        return True
    constant = ("set", "fill")
    if a.op in constant and b.op in constant and a.indices is None and b.indices is None:
        return np.float32(a.value).tobytes() == np.float32(b.value).tobytes()
    return False
