"""Element sets on the GPU: repeated offsets resolved on the CPU, then one scatter.

A run of sets (``Set`` and ``set_many`` chunks alike) reaches the worker as
int64 flat offsets and float32 bit patterns. ``last_writes`` finds, in O(n)
without sorting, which positions are the last write of their offset, so that no
two invocations of the scatter write the same texel and the result equals
applying the sets in order. ``SetsOp`` uploads the survivors as one buffer of
uint32 (offset, bits) pairs, read through a buffer texture (``gl_scatter.comp.glsl``),
and is kept for the catch-up replay like the other operations of ``_gpu``.

Used only by the worker, with its context current.
"""

from __future__ import annotations

import numpy as np

SCATTER_MAX = 65535      # sets per scatter: positions within it fit the uint16 stamps
STAMP_SLOTS = 1 << 21    # stamps kept at most (4 MiB); larger buffers hash offsets onto them
_POS = np.arange(SCATTER_MAX, dtype=np.uint16)
_TAKEN = np.uint16(0xFFFF)   # never a position (positions stop at SCATTER_MAX - 1)


def stamps_for(nelem: int) -> np.ndarray:
    """Scratch for ``last_writes``: one uint16 per element, or ``STAMP_SLOTS`` of them."""
    return np.empty(min(nelem, STAMP_SLOTS), dtype=np.uint16)


def last_writes(flat: np.ndarray, stamps: np.ndarray) -> np.ndarray | None:
    """Which positions of ``flat`` (int64 offsets, at most SCATTER_MAX of them) are the
    last write of their offset: a boolean mask, or None when no offset repeats.

    Each position writes its number into ``stamps`` at its offset's slot (the
    offset itself, or for a buffer larger than ``stamps`` the offset modulo its
    size); a position survives when its own number is what is left there. NumPy
    assigns repeated indices in order in practice but does not promise it, so
    that is checked (no position may find an earlier one left in its slot) and,
    should it ever fail, the mask is computed by sorting instead. With hashed
    slots two offsets may share one: a position that lost its slot may have lost
    it to a different offset, so every position in a slot with a loser is
    decided again exactly (sorting those few), still O(n) for the rest.
    """
    n = len(flat)
    pos = _POS[:n]
    hashed = len(stamps) == STAMP_SLOTS
    key = flat & (STAMP_SLOTS - 1) if hashed else flat
    stamps[key] = pos
    got = stamps[key]
    if bool(np.any(got < pos)):
        return _exact(flat)
    keep = got == pos
    if keep.all():
        return None
    if hashed:
        # Mark the slots that have a loser; decide their positions exactly.
        stamps[key[~keep]] = _TAKEN
        doubt = np.flatnonzero(stamps[key] == _TAKEN)
        keep[doubt] = _exact(flat[doubt])
    return keep


def _exact(flat: np.ndarray) -> np.ndarray:
    """The last-write mask of ``flat`` by sorting (its last occurrence of each offset)."""
    n = len(flat)
    _, first_in_rev = np.unique(flat[::-1], return_index=True)
    keep = np.zeros(n, dtype=bool)
    keep[n - 1 - first_in_rev] = True
    return keep


def set_slices(parts: list, limit: int = SCATTER_MAX):
    """A run of ``parts`` as (int64 offsets, uint32 bits) pairs of arrays of at most
    ``limit`` sets each, in order. A part is an ``(offsets, bits)`` pair of arrays (a
    set_many chunk) or of ints (one Set). Each slice is joined on its own, while it
    is small enough to stay in cache, not the whole run at once; a slice within one
    chunk is a view of it."""
    pieces, one_o, one_b = [], [], []
    for o, b in parts:
        if type(o) is int:
            one_o.append(o)
            one_b.append(b)
            continue
        if one_o:
            pieces.append((np.array(one_o, dtype=np.int64), np.array(one_b, dtype=np.uint32)))
            one_o, one_b = [], []
        pieces.append((o, b))
    if one_o:
        pieces.append((np.array(one_o, dtype=np.int64), np.array(one_b, dtype=np.uint32)))
    got_o, got_b, size = [], [], 0
    for o, b in pieces:
        start = 0
        while start < len(o):
            take = min(limit - size, len(o) - start)
            got_o.append(o[start: start + take])
            got_b.append(b[start: start + take])
            size += take
            start += take
            if size == limit:
                yield _join(got_o, got_b)
                got_o, got_b, size = [], [], 0
    if size:
        yield _join(got_o, got_b)


def _join(offs: list, bits: list) -> tuple[np.ndarray, np.ndarray]:
    if len(offs) == 1:
        return offs[0], bits[0]
    return np.concatenate(offs), np.concatenate(bits)


class SetsOp:
    """Element sets as one scatter dispatch: ``flat`` (int64) and ``bits`` (uint32)
    with no repeated offset (see ``last_writes``)."""

    COST = 32   # llvmpipe: a scattered set costs about as much as copying 32 elements
    __slots__ = ("buf", "n", "bands")

    def __init__(self, gpu, flat: np.ndarray, bits: np.ndarray) -> None:
        n = len(flat)
        data = np.empty((n, 2), dtype=np.uint32)
        data[:, 0] = flat
        data[:, 1] = bits
        self.buf = gpu.pooled_buffer(data)
        self.n = n
        self.bands = gpu.bands.of_offsets(flat)

    def apply(self, gpu, slot: int) -> None:
        gpu.scatter(slot, self.buf, self.n)
        gpu.bands.mark(slot, self.bands)

    def buffers(self) -> list[int]:
        return [self.buf]
