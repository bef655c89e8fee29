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


def concat_sets(parts: list) -> tuple[np.ndarray, np.ndarray]:
    """One (int64 offsets, uint32 bits) pair of arrays from a run of ``parts``: each an
    ``(offsets, bits)`` pair of arrays (a set_many chunk) or of ints (one Set)."""
    offs, bits, single_o, single_b = [], [], [], []
    for o, b in parts:
        if type(o) is int:
            single_o.append(o)
            single_b.append(b)
            continue
        if single_o:
            offs.append(np.array(single_o, dtype=np.int64))
            bits.append(np.array(single_b, dtype=np.uint32))
            single_o, single_b = [], []
        offs.append(o)
        bits.append(b)
    if single_o:
        offs.append(np.array(single_o, dtype=np.int64))
        bits.append(np.array(single_b, dtype=np.uint32))
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
