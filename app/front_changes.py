"""``FrontChanges``: which rows of the front changed between two read-backs, learned
from the manager's ``apply`` events (what each update wrote) instead of comparing
the two fronts. Qt-free.

A *row* is a row of the buffer seen as a 2-D array ``(-1, shape[-1])`` (a 1-D
buffer is one row; a 3-D buffer's plane z holds rows ``z*rows .. (z+1)*rows``).
Each ``apply`` event says what its updates wrote (a region, or a ``set_many``
run's indices); the rows it touched are kept until the front shows them (its
seq is at most the front's ``visible_seq``). ``changed_rows`` then returns them
as a boolean mask over the rows — the cost is O(events + rows written), never a
pass over the buffer's elements.

When it cannot know (the first read of a manager, events lost from the ring, a
payload let go), ``changed_rows`` returns None: the caller compares or uploads
everything, as without this class.
"""

from __future__ import annotations

import math

import numpy as np


class FrontChanges:
    """Rows of the front written since the previous ``changed_rows`` (see the module doc)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.nrows = math.prod(self.shape[:-1]) if len(self.shape) > 1 else 1
        self.cursor: int | None = None     # next event index to read; None: not started
        self.pending: list[tuple[int, object]] = []   # (last seq, rows) not yet visible
        self.lost = False                   # something was missed since the last read
        self.reads = 0                      # reads reported so far (the token of a copy)
        # ``(since, events, next index)`` of the last ``read``: whoever reads the same
        # events next (the app's history feed) may take them instead of asking again.
        self.last_read: tuple[int, list, int] | None = None

    # -- the rows of one event -------------------------------------------------------
    def _rows(self, ev):
        """A ``slice`` or an int array of the rows ``ev`` wrote; None when unknown."""
        shp = self.shape
        if ev.indices is not None:
            idx = np.asarray(ev.indices)
            if len(shp) == 1:
                return slice(0, 1)
            if len(shp) == 2:
                return np.unique(idx[:, 0])
            return np.unique(idx[:, 0] * shp[1] + idx[:, 1])
        region = ev.region
        if region is None:
            return None
        if len(shp) == 1:
            return slice(0, 1)
        if len(shp) == 2:
            return slice(int(region[0][0]), int(region[0][1]))
        (z0, z1), (r0, r1) = region[0], region[1]
        if z1 - z0 == 1 or (r0 == 0 and r1 == shp[1]):
            return slice(z0 * shp[1] + r0, (z1 - 1) * shp[1] + r1)
        z = np.arange(z0, z1)[:, None] * shp[1]
        return (z + np.arange(r0, r1)[None, :]).ravel()

    def feed(self, events, next_index: int) -> None:
        """Take ``manager.events(self.cursor)``'s answer."""
        if self.cursor is not None and events and events[0].index != self.cursor:
            self.lost = True                 # the ring let events go before we read them
        for ev in events:
            if ev.kind != "apply":
                continue
            rows = self._rows(ev)
            if rows is None:
                self.lost = True
                continue
            self.pending.append((ev.seq + max(ev.count, 1) - 1, rows))
        if self.cursor is None:
            self.lost = True                 # what came before the first read is unknown
        self.cursor = int(next_index)

    def read(self, manager) -> None:
        """Read the events since the last call from ``manager``."""
        since = 0 if self.cursor is None else self.cursor
        events, nxt = manager.events(since)
        self.last_read = (since, events, int(nxt))
        self.feed(events, nxt)

    def take(self, manager, visible_seq: int,
             trusted: bool = True) -> tuple[int, int, np.ndarray | None]:
        """For a front just read back (showing ``visible_seq``): ``(base, token, rows)``
        — the rows changed since the read numbered ``base`` (None: unknown), and
        this read's number. A copy of the front made from read ``base`` becomes
        this one by copying ``rows``; any other copy must be compared in full.
        ``trusted`` False: the front may not be the one of ``visible_seq``."""
        if not trusted:
            self.lost = True
        try:
            self.read(manager)
        except Exception:
            self.lost = True
        base = self.reads
        self.reads += 1
        return base, self.reads, self.changed_rows(visible_seq)

    def changed_rows(self, visible_seq: int) -> np.ndarray | None:
        """Rows written by every update up to ``visible_seq`` not reported before, as a
        bool mask of ``nrows``; None when that cannot be known (compare everything)."""
        mask = np.zeros(self.nrows, dtype=bool)
        keep = []
        for seq, rows in self.pending:
            if seq <= visible_seq:
                mask[rows] = True
            else:
                keep.append((seq, rows))
        self.pending = keep
        if self.lost:
            self.lost = False
            return None
        return mask
