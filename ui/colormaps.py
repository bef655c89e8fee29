"""Colormaps for the buffer view: 256-entry LUTs from ``assets/colormaps`` and the
special colors of NaN, +Inf and −Inf.

``apply`` is the numpy twin of the view's fragment shader (``view_fragment.glsl``):
exports and tests use it to know which color a value must get.
"""

from __future__ import annotations

import io
from functools import cache
from importlib.resources import files

import numpy as np

COLORMAPS: tuple[str, ...] = ("viridis", "grayscale", "coolwarm")

# Chosen to be far from every colormap's colors.
NAN_COLOR = (255, 0, 255)        # magenta
POSINF_COLOR = (255, 140, 0)     # orange
NEGINF_COLOR = (0, 229, 255)     # cyan
BACKGROUND_COLOR = (38, 38, 44)
SPECIAL_COLORS = {"NaN": NAN_COLOR, "+Inf": POSINF_COLOR, "−Inf": NEGINF_COLOR}


@cache
def lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 table of colormap ``name`` (read-only)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of: {', '.join(COLORMAPS)}")
    raw = files("assets").joinpath("colormaps", f"{name}.npy").read_bytes()
    table = np.load(io.BytesIO(raw), allow_pickle=False)
    if table.shape != (256, 3) or table.dtype != np.uint8:
        raise ValueError(f"colormap {name!r} must be a (256, 3) uint8 table, got {table.shape} {table.dtype}")
    table.setflags(write=False)
    return table


def finite_levels(a: np.ndarray) -> tuple[float, float] | None:
    """Exact (min, max) of the finite values of ``a``; None when there are none."""
    a = np.asarray(a, dtype=np.float32)
    if a.size == 0:
        return None
    finite = np.isfinite(a)
    lo = np.min(a, where=finite, initial=np.inf)
    if not np.isfinite(lo):
        return None
    hi = np.max(a, where=finite, initial=-np.inf)
    return float(lo), float(hi)


def lut_index(values: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """The LUT entry of each (finite) value, as the shader computes it."""
    v = np.asarray(values, dtype=np.float32)
    lo, hi = np.float32(levels[0]), np.float32(levels[1])
    span = np.float32(hi - lo)
    with np.errstate(all="ignore"):
        if span > 0:
            t = np.clip((v - lo) / span, np.float32(0), np.float32(1))
        else:
            t = np.where(v < lo, 0.0, np.where(v > lo, 1.0, 0.5)).astype(np.float32)
        i = np.floor(t * np.float32(256)).astype(np.int64)
    return np.clip(i, 0, 255)


def apply(values: np.ndarray, levels: tuple[float, float], name: str = "viridis") -> np.ndarray:
    """RGB uint8 image (``values.shape + (3,)``) of ``values`` through colormap ``name``."""
    v = np.asarray(values, dtype=np.float32)
    with np.errstate(all="ignore"):
        finite = np.isfinite(v)
        rgb = lut(name)[lut_index(np.where(finite, v, 0), levels)]
    rgb[np.isnan(v)] = NAN_COLOR
    rgb[np.isposinf(v)] = POSINF_COLOR
    rgb[np.isneginf(v)] = NEGINF_COLOR
    return rgb
