"""The numpy reference model of SPEC §2–§3: what every backend must equal, bit for bit.

Deliberately simple: a back array the updates are applied to in order, and a
front that is a copy of the back taken at each synchronize.
"""

from __future__ import annotations

import numpy as np

from .updates import (
    Add,
    Fill,
    Scale,
    Set,
    Shape,
    Update,
    Write,
    region_slices,
    validate,
    validate_set_many,
)


class ReferenceModel:
    def __init__(self, shape: Shape, fill: float = 0.0) -> None:
        self.shape = tuple(shape)
        with np.errstate(over="ignore"):
            self.back = np.full(self.shape, np.float32(fill), dtype=np.float32)
        self.front = self.back.copy()
        self.epoch = 0

    def apply(self, update: Update) -> None:
        u = validate(update, self.shape)
        b = self.back
        with np.errstate(all="ignore"):
            if isinstance(u, Set):
                b[u.index] = np.float32(u.value)
            elif isinstance(u, Write):
                b[region_slices(u.region)] = u.data
            else:
                sl = region_slices(u.region)
                v = np.float32(u.value)
                if isinstance(u, Fill):
                    b[sl] = v
                elif isinstance(u, Add):
                    b[sl] = b[sl] + v
                elif isinstance(u, Scale):
                    b[sl] = b[sl] * v

    def set_many(self, indices, values) -> None:
        idx, vals = validate_set_many(indices, values, self.shape)
        if not len(vals):
            return
        # Applied in array order: for repeated indices the last value wins.
        flat = np.ravel_multi_index(tuple(idx.T), self.shape)
        rev_unique, first_in_rev = np.unique(flat[::-1], return_index=True)
        last = len(flat) - 1 - first_in_rev
        self.back.reshape(-1)[rev_unique] = vals[last]

    def synchronize(self) -> int:
        self.front = self.back.copy()
        self.epoch += 1
        return self.epoch


def same_bits(a: np.ndarray, b: np.ndarray, flush_subnormals: bool = False) -> bool:
    """Bit-for-bit equality of two float32 arrays; any NaN equals any NaN.

    NaN payloads are not compared (GPUs do not preserve them). With
    ``flush_subnormals`` a subnormal on either side compares as a zero of its sign.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        return False
    if flush_subnormals:
        a, b = _flush(a), _flush(b)
    ai, bi = a.view(np.uint32), b.view(np.uint32)
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all((ai == bi) | both_nan))


def _flush(x: np.ndarray) -> np.ndarray:
    bits = x.view(np.uint32)
    sub = ((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)
    return np.where(sub, (bits & 0x80000000), bits).astype(np.uint32).view(np.float32)


def first_difference(a: np.ndarray, b: np.ndarray) -> str:
    """A readable description of where two arrays first differ (for test messages)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        return f"shapes differ: {a.shape} vs {b.shape}"
    diff = (a.view(np.uint32) != b.view(np.uint32)) & ~(np.isnan(a) & np.isnan(b))
    where = np.argwhere(diff)
    if not len(where):
        return "no difference"
    i = tuple(int(x) for x in where[0])
    return f"{len(where)} elements differ; first at {i}: {a[i]!r} vs {b[i]!r}"
