"""The rows of ``app.history.UpdateHistory`` and what its queries return. Qt-free."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PENDING, APPLIED, VISIBLE = "pending", "applied", "visible"


@dataclass(slots=True)
class UpdateRow:
    seq: int                          # first session-wide sequence number
    count: int                        # element updates in this row (>1 for a set_many run)
    producer: str
    op: str
    t_enqueue_ns: int
    region: tuple[tuple[int, int], ...] | None = None
    value: float | None = None
    indices: np.ndarray | None = None   # (count, ndim) for set_many
    values: np.ndarray | None = None    # (count,) for set_many; a Write's data
    payload_dropped: bool = False
    applied: int = 0                  # element updates applied so far
    t_apply_ns: int | None = None     # when the last of them was applied
    epoch_visible: int | None = None

    @property
    def last_seq(self) -> int:
        return self.seq + self.count - 1

    @property
    def detailed(self) -> bool:
        """Whether its event says where it wrote (False: a backend that records only
        the op, or a payload let go of; which elements it wrote is not known)."""
        if self.payload_dropped:
            return False
        return self.region is not None or self.indices is not None

    @property
    def state(self) -> str:
        if self.epoch_visible is not None:
            return VISIBLE
        return APPLIED if self.applied >= self.count else PENDING

    def touches(self, index: tuple[int, ...]) -> bool:
        """Whether this update wrote element ``index``."""
        if self.indices is not None:
            return bool(np.any(np.all(self.indices == np.asarray(index), axis=1)))
        if self.region is None:
            return False
        return all(a <= i < b for i, (a, b) in zip(index, self.region))

    def bbox(self) -> tuple[tuple[int, int], ...] | None:
        """The box around what it wrote (the region, or around its indices)."""
        if self.indices is not None and len(self.indices):
            lo, hi = self.indices.min(axis=0), self.indices.max(axis=0)
            return tuple((int(a), int(b) + 1) for a, b in zip(lo, hi))
        return self.region

    def written_value(self, index: tuple[int, ...], before: float | None) -> float | None:
        """The value of element ``index`` after this update, given its value before."""
        f32 = np.float32
        with np.errstate(all="ignore"):
            if self.indices is not None:
                hits = np.flatnonzero(np.all(self.indices == np.asarray(index), axis=1))
                return float(self.values[hits[-1]]) if len(hits) else before
            if self.op in ("set", "fill"):
                return float(f32(self.value))
            if self.op == "write":
                if self.values is None:
                    return None
                return float(self.values[tuple(i - a for i, (a, _) in zip(index, self.region))])
            if before is None:
                return None
            if self.op == "add":
                return float(f32(before) + f32(self.value))
            if self.op == "scale":
                return float(f32(before) * f32(self.value))
        return None


@dataclass
class SyncMark:
    """A synchronization boundary: ``kind`` sync-begin, swap, visible or catch-up."""

    kind: str
    t_ns: int
    seq: int          # session-wide: the last update it covers
    epoch: int        # session-wide


@dataclass
class HistoryEntry:
    """One update's effect on one element (element history)."""

    row: UpdateRow
    before: float | None
    after: float | None


@dataclass
class ElementTrace:
    """The element history of one element, kept up to date by ``UpdateHistory.extend``."""

    index: tuple[int, ...]
    entries: list[HistoryEntry] = field(default_factory=list)
    next_row: int = 0                 # rows before this have been read
    value: float | None = None        # the element's value after the last entry
    dropped: int = 0                  # the history's dropped count when it was read
    forgotten: int = 0                # the history's forgotten count when it was read
