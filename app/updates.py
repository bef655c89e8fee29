"""Update types (SPEC §2) and their validation against a buffer's shape.

``Set``, ``Fill``, ``Add``, ``Scale`` and ``Write`` are plain value objects. They
are checked against a shape only when they meet one (``validate``), so the same
update can be built before a manager exists, written to a trace, or enqueued on
either backend. Every problem raises ``ValueError`` naming it.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence

import numpy as np

Region = tuple[tuple[int, int], ...]
Shape = tuple[int, ...]

MAX_NDIM = 3


class Update:
    """Base of the five update types. ``op`` is the trace-format name."""

    __slots__ = ()
    op: str = ""
    _fields: tuple[str, ...] = ()

    def __repr__(self) -> str:
        args = ", ".join(repr(getattr(self, f)) for f in self._fields)
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for f in self._fields:
            a, b = getattr(self, f), getattr(other, f)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True):
                    return False
            elif a != b and not (_is_nan(a) and _is_nan(b)):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


def _is_nan(x: object) -> bool:
    return isinstance(x, float) and math.isnan(x)


class Set(Update):
    """``b[index] = value``."""

    __slots__ = ("index", "value")
    op = "set"
    _fields = ("index", "value")

    def __init__(self, index: Sequence[int], value: float) -> None:
        self.index = index
        self.value = value


class _RegionValue(Update):
    __slots__ = ("region", "value")
    _fields = ("region", "value")

    def __init__(self, region: Sequence[Sequence[int]], value: float) -> None:
        self.region = region
        self.value = value


class Fill(_RegionValue):
    """``b[region] = value``."""

    __slots__ = ()
    op = "fill"


class Add(_RegionValue):
    """``b[region] += value`` in float32."""

    __slots__ = ()
    op = "add"


class Scale(_RegionValue):
    """``b[region] *= value`` in float32."""

    __slots__ = ()
    op = "scale"


class Write(Update):
    """``b[region] = data``; ``data`` has exactly the region's shape."""

    __slots__ = ("region", "data")
    op = "write"
    _fields = ("region", "data")

    def __init__(self, region: Sequence[Sequence[int]], data: object) -> None:
        self.region = region
        self.data = data


UPDATE_TYPES: dict[str, type[Update]] = {c.op: c for c in (Set, Fill, Add, Scale, Write)}


# ----------------------------------------------------------------- validation


def validate_shape(shape: object) -> Shape:
    """A buffer shape: 1 to 3 positive ints."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise ValueError(f"shape must be a tuple of 1 to 3 positive ints, got {shape!r}")
    if not 1 <= len(shape) <= MAX_NDIM:
        raise ValueError(f"shape must have 1 to 3 dimensions, got {len(shape)}: {tuple(shape)!r}")
    dims = []
    for d, n in enumerate(shape):
        n = _as_int(n, f"shape[{d}]")
        if n < 1:
            raise ValueError(f"shape[{d}] must be >= 1, got {n}")
        dims.append(n)
    return tuple(dims)


def _as_int(x: object, what: str) -> int:
    if isinstance(x, bool):
        raise ValueError(f"{what} must be an integer, got {x!r}")
    try:
        return operator.index(x)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {x!r}") from None


def as_value(x: object, what: str = "value") -> float:
    """A real number (NaN and ±Inf included) as a Python float."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise ValueError(f"{what} must be a real number, got {x!r}")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"{what} is an integer too large for a float: {x}") from None


def validate_index(index: object, shape: Shape) -> tuple[int, ...]:
    if isinstance(index, (str, bytes)) or not isinstance(index, Sequence):
        raise ValueError(f"index must be a sequence of {len(shape)} ints, got {index!r}")
    if len(index) != len(shape):
        raise ValueError(
            f"index {tuple(index)!r} has {len(index)} dimensions but the buffer has {len(shape)}"
        )
    out = []
    for d, (i, n) in enumerate(zip(index, shape)):
        i = _as_int(i, f"index[{d}]")
        if not 0 <= i < n:
            raise ValueError(f"index {i} in dimension {d} is out of bounds for size {n}")
        out.append(i)
    return tuple(out)


def validate_region(region: object, shape: Shape) -> Region:
    """Half-open ``(start, stop)`` per dimension, ``0 <= start <= stop <= size``."""
    if isinstance(region, (str, bytes)) or not isinstance(region, Sequence):
        raise ValueError(f"region must be one (start, stop) pair per dimension, got {region!r}")
    if len(region) != len(shape):
        raise ValueError(
            f"region has {len(region)} (start, stop) pairs but the buffer has {len(shape)} dimensions"
        )
    out = []
    for d, (pair, n) in enumerate(zip(region, shape)):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"region dimension {d} must be a (start, stop) pair, got {pair!r}")
        a = _as_int(pair[0], f"region start in dimension {d}")
        b = _as_int(pair[1], f"region stop in dimension {d}")
        if a < 0:
            raise ValueError(f"region start {a} in dimension {d} is negative")
        if a > b:
            raise ValueError(f"region start {a} > stop {b} in dimension {d}")
        if b > n:
            raise ValueError(f"region stop {b} in dimension {d} is beyond the size {n}")
        out.append((a, b))
    return tuple(out)


def region_shape(region: Region) -> Shape:
    return tuple(b - a for a, b in region)


def region_slices(region: Region) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in region)


def as_float32_block(data: object, shape: Shape, what: str = "data", copy: bool = True) -> np.ndarray:
    """``data`` as a C-contiguous float32 array of exactly ``shape``: a private copy,
    or with ``copy=False`` the caller's own array when it already is one (for a
    backend that copies the payload itself)."""
    try:
        arr = np.asarray(data)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"{what} is not an array of numbers: {exc}") from None
    if arr.dtype.kind not in "biuf" or arr.dtype.kind == "b":
        raise ValueError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{what} shape {arr.shape} does not match the region shape {tuple(shape)}")
    with np.errstate(over="ignore", invalid="ignore"):
        if copy:
            return np.array(arr, dtype=np.float32, order="C", copy=True)
        return np.ascontiguousarray(arr, dtype=np.float32)


def validate(update: object, shape: Shape, copy: bool = True) -> Update:
    """A normalized copy of ``update`` checked against ``shape``.

    Indices and regions become tuples of ints, values Python floats, write data
    a private float32 array: the caller may change its own objects afterwards.
    ``copy=False`` may leave write data shared with the caller (see
    ``as_float32_block``).
    """
    t = type(update)
    if t is Set:
        index, value = update.index, update.value
        # The per-call common case (a tuple of plain in-bounds ints, a float)
        # without the generic checks; a new Set, so the caller's may change.
        if type(index) is tuple and type(value) is float and len(index) == len(shape) and all(
            type(i) is int and 0 <= i < n for i, n in zip(index, shape)
        ):
            return Set(index, value)
        return Set(validate_index(index, shape), as_value(value))
    if t is Fill or t is Add or t is Scale:
        return t(validate_region(update.region, shape), as_value(update.value))
    if t is Write:
        region = validate_region(update.region, shape)
        return Write(region, as_float32_block(update.data, region_shape(region), copy=copy))
    raise ValueError(
        f"not an update: {update!r} (expected one of Set, Fill, Add, Scale, Write)"
    )


def validate_all(updates: object, shape: Shape, copy: bool = True) -> list[Update]:
    """``validate`` each of several updates; an invalid one raises ValueError
    prefixed with its position (``update 3: ...``), so nothing is queued."""
    out = []
    for k, up in enumerate(updates):  # type: ignore[arg-type]
        try:
            out.append(validate(up, shape, copy=copy))
        except ValueError as exc:
            raise ValueError(f"update {k}: {exc}") from None
    return out


def validate_set_many(
    indices: object, values: object, shape: Shape, check_bounds: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized sets as ``(n, ndim)`` int64 and ``(n,)`` float32 C-contiguous arrays.

    ``check_bounds=False`` leaves the bounds to a backend that checks them itself
    (the C library does, with the same message).
    """
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu" and not (idx.size == 0 and idx.dtype.kind == "f"):
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    ndim = len(shape)
    if idx.ndim == 1 and (ndim == 1 or idx.shape[0] == 0):
        idx = idx.reshape(-1, ndim)  # a 1-d buffer's flat indices; an empty list is a no-op
    if idx.ndim != 2 or idx.shape[1] != ndim:
        raise ValueError(
            f"indices must have shape (n, {ndim}) for a {ndim}-d buffer, got {idx.shape}"
        )
    vals = np.asarray(values)
    if vals.dtype.kind not in "iuf":
        raise ValueError(f"values must be real numbers, got dtype {vals.dtype}")
    if vals.ndim != 1 or vals.shape[0] != idx.shape[0]:
        raise ValueError(f"values must have shape ({idx.shape[0]},), got {vals.shape}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    # Bounds: one unsigned max over all (a negative index is huge as uint64), per
    # dimension only when that exceeds the smallest size; the element-wise pass
    # runs only to name the first bad element.
    if check_bounds and idx.size:
        as_unsigned = idx.view(np.uint64)
        if int(as_unsigned.max()) >= min(shape) and any(
            int(as_unsigned[:, d].max()) >= size for d, size in enumerate(shape)
        ):
            bad = (idx < 0) | (idx >= np.asarray(shape, dtype=np.int64))
            row, dim = np.argwhere(bad)[0]
            raise ValueError(
                f"set_many: element {row} has index {idx[row, dim]} in dimension {dim}, "
                f"out of bounds for size {shape[dim]}"
            )
    if vals.dtype == np.float32:   # no cast: nothing to silence (np.errstate costs µs)
        return idx, np.ascontiguousarray(vals)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.ascontiguousarray(vals, dtype=np.float32)
    return idx, vals
