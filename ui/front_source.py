"""Where the view's pixels come from, and when the front is read back. Qt-free.

* ``UploadSource`` (any backend, CPU fronts): ``set_front`` compares the new front
  with the previous epoch's copy (bitwise, so NaN == NaN), copies only the changed
  rows into that copy and marks them dirty; the renderer uploads only the dirty
  row runs. The front is read back for every epoch; auto levels are the exact
  finite min/max of that copy.
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

from . import colormaps

TEXTURE_READBACK_HZ = 5.0
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

    def set_front(self, front: np.ndarray | None, epoch: int) -> bool:
        """Take the front of ``epoch``; True when the shape changed (a new image)."""
        self.data_epoch = int(epoch)
        self.last_readback = time.monotonic()
        if front is None:
            self.front, self.realloc = None, True
            return True
        new = np.asarray(front, dtype=np.float32)
        if self.front is None or self.front.shape != new.shape:
            self.front = np.array(new, copy=True, order="C")
            if self.z >= self.depth:
                self.z = 0
            self.realloc = True
            return True
        old2 = self.front.reshape(-1, self.front.shape[-1])
        new2 = new.reshape(-1, new.shape[-1])
        changed = np.any(old2.view(np.uint32) != new2.view(np.uint32), axis=1)
        if changed.any():
            old2[changed] = new2[changed]
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
        """Exact finite min/max of the read-back copy (None: no finite value)."""
        return None if self.front is None else colormaps.finite_levels(self.front)


class TextureSource(UploadSource):
    """The manager's own front texture, sampled in a shared context."""

    kind = "texture"

    def __init__(self, texture: TextureProvider, request_range: RangeRequest | None = None,
                 readback_hz: float | None = None) -> None:
        super().__init__()
        self.texture = texture
        self.request_range = request_range
        self.readback_hz = TEXTURE_READBACK_HZ if readback_hz is None else readback_hz

    def readback_due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.front is None or now - self.last_readback >= 1.0 / self.readback_hz

    def row_offset(self) -> int:
        """First texture row of plane z: the planes are stacked vertically."""
        return self.z * self.rows
