"""Where the view's pixels come from, and when the front is read back. Qt-free.

* ``UploadSource`` (any backend, CPU fronts): ``set_front`` copies the rows the
  manager says changed (``app.front_changes``: learned from its apply events on
  the session's worker) into the previous epoch's copy and marks them dirty; the
  renderer uploads only the dirty row runs. Without that knowledge (a first read,
  a trace, lost events) it compares the new front with the copy (bitwise, so NaN
  == NaN) instead. The front is read back for every epoch; auto levels are the
  exact finite min/max of that copy, reduced from per-band summaries (``Bands``)
  of which only the bands holding changed rows are recomputed — by the session's
  sync worker, on the front it read (``Bands.compute``), when it knew the rows.
* ``TextureSource`` (a manager with ``capabilities.front_texture`` in a context
  shared with the view's): the view samples the manager's texture, no upload.
  The front is read back only ``TEXTURE_READBACK_HZ`` times a second, for the
  hover readout. Auto levels come from ``request_front_range`` (the GPU's
  reduction, ``capabilities.gpu_range``), which never blocks: it returns the
  newest range known and asks the worker for the current epoch's; the view asks
  again on its next frame.

Both keep the copy of the front the readout reads (``front``, of ``data_epoch``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

TEXTURE_READBACK_HZ = 5.0
BAND_ELEMENTS = 1 << 14   # elements per band of rows in the level summaries
TextureProvider = Callable[[], tuple[int, int]]
RangeRequest = Callable[[], "tuple[float | None, float | None, int] | None"]


def row_runs(mask: np.ndarray, max_gap: int = 8) -> list[tuple[int, int]]:
    """Half-open runs of True in ``mask``, merging runs separated by < ``max_gap``."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    stops = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return list(zip(starts.tolist(), stops.tolist()))


class UploadSource:
    """The front as a CPU array, uploaded row by row as it changes."""

    kind = "upload"

    def __init__(self) -> None:
        self.front: np.ndarray | None = None   # our copy (full ndim, float32)
        self.data_epoch = 0
        self.z = 0
        self.dirty_rows: np.ndarray | None = None   # rows of plane z to upload
        self.realloc = True                         # size or plane changed: upload all
        self.last_readback = 0.0
        self.token: int | None = None               # FrontChanges read our copy is
        self.bands: Bands | None = None             # finite min/max per band of rows
        self.compared_rows = 0                      # rows the last set_front compared

    # -- geometry ------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self.front.shape[0] if self.front is not None and self.front.ndim == 3 else 1

    @property
    def rows(self) -> int:
        if self.front is None:
            return 0
        return 1 if self.front.ndim == 1 else self.front.shape[-2]

    @property
    def cols(self) -> int:
        return 0 if self.front is None else self.front.shape[-1]

    def plane(self) -> np.ndarray:
        a = self.front
        if a.ndim == 1:
            return a.reshape(1, -1)
        return a if a.ndim == 2 else a[self.z]

    def set_z(self, z: int) -> None:
        if z != self.z:
            self.z = z
            self.realloc = True

    # -- the data ----------------------------------------------------------------------
    def readback_due(self, now: float | None = None) -> bool:
        """Whether the front should be read back for the epoch now visible."""
        return True

    def set_front(self, front: np.ndarray | None, epoch: int, changes: tuple | None = None) -> bool:
        """Take the front of ``epoch``; True when the shape changed (a new image).
        ``changes``: ``FrontChanges.take``'s ``(base, token, rows)`` for this front —
        when our copy is read ``base``'s, only ``rows`` are copied (O(changed));
        otherwise the whole front is compared with the copy."""
        self.data_epoch = int(epoch)
        self.last_readback = time.monotonic()
        token, self.token = self.token, (None if changes is None else changes[1])
        if front is None:
            self.front, self.realloc, self.token = None, True, None
            return True
        new = np.asarray(front, dtype=np.float32)
        if self.front is None or self.front.shape != new.shape:
            self.front = np.array(new, copy=True, order="C")
            if self.z >= self.depth:
                self.z = 0
            self.realloc = True
            self.bands = Bands(self.front.reshape(-1, self.front.shape[-1]))
            return True
        old2 = self.front.reshape(-1, self.front.shape[-1])
        new2 = new.reshape(-1, new.shape[-1])
        if changes is not None and changes[2] is not None and token == changes[0]:
            changed = changes[2]
            for r0, r1 in row_runs(changed, max_gap=0):
                old2[r0:r1] = new2[r0:r1]
            self.compared_rows, compared = 0, False
        else:
            compared = True
            changed = np.any(old2.view(np.uint32) != new2.view(np.uint32), axis=1)
            old2[changed] = new2[changed]
            self.compared_rows = len(changed)
        if self.bands is None:          # a copy kept as it came (TextureSource): all
            self.bands = Bands(old2)
        elif changed.any():
            summary = changes[3] if compared is False and len(changes) > 3 else None
            if summary is None or not self.bands.assign(summary):   # else: reduced on
                self.bands.update(old2, changed)                    # the sync worker
        if changed.any():
            rows = self.rows
            plane = changed[self.z * rows:(self.z + 1) * rows]
            if self.dirty_rows is None or len(self.dirty_rows) != rows:
                self.dirty_rows = plane.copy()
            else:
                self.dirty_rows |= plane
        return False

    def take_dirty_runs(self) -> list[tuple[int, int]]:
        """Row runs of the plane to upload since the last call (and forget them)."""
        runs = [] if self.dirty_rows is None else row_runs(self.dirty_rows)
        self.dirty_rows = None
        return runs

    def finite_range(self) -> tuple[float, float] | None:
        """Exact finite min/max of the read-back copy (None: no finite value), from
        per-band summaries kept up to date with the rows that changed."""
        return None if self.front is None else self.bands.finite_range()


class Bands:
    """Finite min/max of each band of ``BAND_ELEMENTS``-ish rows of a 2-D array, so
    that the whole array's finite range after a change costs O(changed rows + bands)
    instead of a pass over every element. Exact: each band's values are float32
    values of the array; a band without a finite value holds (+inf, -inf)."""

    def __init__(self, a2: np.ndarray) -> None:
        nrows, cols = a2.shape
        self.band = self.rows_per_band(nrows, cols)
        n = -(-nrows // self.band)
        self.lo = np.full(n, np.inf, np.float32)
        self.hi = np.full(n, -np.inf, np.float32)
        self.update(a2, None)

    @staticmethod
    def rows_per_band(nrows: int, cols: int) -> int:
        return max(1, min(nrows, BAND_ELEMENTS // max(cols, 1)))

    def update(self, a2: np.ndarray, changed: np.ndarray | None) -> None:
        """Recompute the bands holding a ``changed`` row (None: all of them)."""
        self.assign(self.compute(a2, changed))

    def assign(self, summary: tuple) -> bool:
        """Take ``compute``'s ``(rows per band, bands, lo, hi)`` (made elsewhere: the
        sync worker); False, taking nothing, when its bands are not ours."""
        band, idx, lo, hi = summary
        if band != self.band or (len(idx) and idx[-1] >= len(self.lo)):
            return False
        self.lo[idx] = lo
        self.hi[idx] = hi
        return True

    @classmethod
    def compute(cls, a2: np.ndarray, changed: np.ndarray | None):
        """``(rows per band, bands, lo, hi)`` of the bands of ``a2`` holding a ``changed``
        row (None: all): what ``update`` assigns. Reads ``a2`` only; any thread may."""
        nrows = a2.shape[0]
        b = cls.rows_per_band(nrows, a2.shape[1])
        n = -(-nrows // b)
        if changed is None:
            runs = [(0, n)]
        else:
            touched = np.zeros(n, dtype=bool)
            touched[np.flatnonzero(changed) // b] = True
            runs = row_runs(touched, max_gap=0)
        parts = []
        for b0, b1 in runs:
            full_end = min(b1, nrows // b)            # bands wholly inside the array
            if full_end > b0:
                parts.append((b0, *_reduce(a2[b0 * b:full_end * b].reshape(full_end - b0, -1))))
            for k in range(max(b0, full_end), b1):  # the last, partial band
                parts.append((k, *_reduce(a2[k * b:(k + 1) * b].reshape(1, -1))))
        if not parts:
            return b, np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
        idx = np.concatenate([np.arange(k, k + len(lo)) for k, lo, _ in parts])
        return (b, idx, np.concatenate([lo for _, lo, _ in parts]),
                np.concatenate([hi for _, _, hi in parts]))

    def finite_range(self) -> tuple[float, float] | None:
        lo = float(self.lo.min())
        if lo == np.inf:
            return None
        return lo, float(self.hi.max())


def _reduce(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite (lo, hi) of each row of ``block``. Plain min/max first (a NaN or an
    infinity makes a row's result non-finite); only those rows are reduced again
    over their finite values."""
    lo, hi = block.min(axis=1), block.max(axis=1)
    bad = np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))
    if len(bad):
        sub = block[bad]
        fin = np.isfinite(sub)
        lo[bad] = np.min(sub, axis=1, where=fin, initial=np.inf)
        hi[bad] = np.max(sub, axis=1, where=fin, initial=-np.inf)
    return lo, hi


class TextureSource(UploadSource):
    """A texture holding the front, sampled in a shared context: the GL manager's
    own, or the one ``ui.front_upload.FrontUploader`` fills on the sync worker."""

    kind = "texture"

    def __init__(self, texture: TextureProvider, request_range: RangeRequest | None = None,
                 readback_hz: float | None = None,
                 drawn: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.texture = texture
        self.request_range = request_range
        self.readback_hz = TEXTURE_READBACK_HZ if readback_hz is None else readback_hz
        self.drawn = drawn      # told the texture after each draw that sampled it
        self._adopted = False   # ``front`` is a copy handed over (owned): never written

    def set_front(self, front: np.ndarray | None, epoch: int, changes: tuple | None = None,
                  owned: bool = False) -> bool:
        """As ``UploadSource.set_front``; ``owned``: ``front`` is a copy made for us
        (on the sync worker) that nobody changes: kept as it is, neither compared nor
        copied here — the copy only serves the readout, the texture is drawn."""
        if not owned or front is None:
            if self._adopted and self.front is not None:
                self.front = self.front.copy()   # others may hold the one handed over
            self._adopted = False
            return super().set_front(front, epoch, changes)
        self._adopted = True
        new = np.asarray(front, dtype=np.float32)
        new_image = self.front is None or self.front.shape != new.shape
        self.front = new if new.flags.c_contiguous else np.ascontiguousarray(new)
        self.data_epoch = int(epoch)
        self.last_readback = time.monotonic()
        self.token, self.bands, self.dirty_rows = None, None, None
        self.realloc = True        # (drawn from the texture; an upload would send all)
        if self.z >= self.depth:
            self.z = 0
        return new_image

    def finite_range(self) -> tuple[float, float] | None:
        if self.front is not None and self.bands is None:     # a copy kept as it came
            self.bands = Bands(self.front.reshape(-1, self.front.shape[-1]))
        return super().finite_range()

    def readback_due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.front is None or now - self.last_readback >= 1.0 / self.readback_hz

    def row_offset(self) -> int:
        """First texture row of plane z: the planes are stacked vertically."""
        return self.z * self.rows
