"""The compact and the fast parts of the trace format (SPEC §5, docs/trace-format.md).

``set_many`` records: one line carries ``n`` element sets in array order, with
seqs ``seq … seq+n-1``::

    {"op": "set_many", "n": 3, "flat": "<base64>", "values": "<base64>", "seq": 7,
     "producer": "main", "t": 0.25}

``flat`` is the base64 of ``n`` little-endian int64 row-major flat offsets into
the buffer, ``values`` the base64 of ``n`` little-endian float32 values. They are
written with no per-element work (numpy ``tobytes`` + base64 here, a base64
encoder in the C library's trace writer) and read the same way; readers expand
them to the ``n`` ``set`` updates they stand for (``SetMany.sets``).

``fast_set`` parses the most common line of all, a per-element ``set`` in the
shape the writers produce, with a regular expression instead of the JSON
decoder; anything it does not recognise or that fails a check falls back to the
strict parser, which names the problem.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re

import numpy as np

from .updates import Set, Shape

OP = "set_many"
#: The most elements one ``set_many`` line may carry (its line stays under 256 MiB).
MAX_SET_MANY = 1 << 23
#: Writers split a larger batch into lines of at most this many elements.
WRITE_CHUNK = 1 << 20
#: Header features this reader knows (``"features"`` in the header).
FEATURES = ("set_many",)
KEYS = frozenset({"op", "n", "flat", "values", "seq", "producer", "t"})

_LE_I64 = np.dtype("<i8")
_LE_F32 = np.dtype("<f4")


class SetMany:
    """``n`` element sets applied in array order: ``flat`` (int64 row-major offsets,
    each within the buffer) and ``values`` (float32), both read-only."""

    __slots__ = ("flat", "values")
    op = OP

    def __init__(self, flat: np.ndarray, values: np.ndarray) -> None:
        self.flat = flat
        self.values = values

    @property
    def count(self) -> int:
        return int(self.flat.shape[0])

    def indices(self, shape: Shape) -> np.ndarray:
        """The ``(n, ndim)`` int64 indices (what ``set_many`` takes)."""
        return np.stack(np.unravel_index(self.flat, shape), axis=1).astype(np.int64)

    def sets(self, shape: Shape) -> list[Set]:
        """The ``n`` ``Set`` updates this record stands for, in order."""
        cols = [c.tolist() for c in np.unravel_index(self.flat, shape)]
        with np.errstate(invalid="ignore"):   # a signalling NaN reads as a NaN
            vals = getattr(self, "exact", self.values).astype(np.float64).tolist()
        return [Set(ix, v) for ix, v in zip(zip(*cols), vals)]

    def __repr__(self) -> str:
        return f"SetMany(n={self.count})"


def _b64(text: object, what: str, n: int, itemsize: int) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"set_many {what!r} must be a base64 string, got {type(text).__name__}")
    if len(text) != 4 * ((n * itemsize + 2) // 3):
        raise ValueError(f"set_many {what!r} has {len(text)} base64 characters; n = {n} elements "
                         f"of {itemsize} bytes need {4 * ((n * itemsize + 2) // 3)}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"set_many {what!r} is not valid base64 ({exc})") from None
    if len(raw) != n * itemsize:   # a padding trick cannot shorten it unseen
        raise ValueError(f"set_many {what!r} decodes to {len(raw)} bytes, expected {n * itemsize}")
    return raw


def parse_set_many(obj: dict, shape: Shape) -> SetMany:
    """A ``set_many`` line's object as a validated ``SetMany`` (ValueError naming the problem)."""
    unknown = set(obj) - KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} for op 'set_many'")
    for key in ("n", "flat", "values"):
        if key not in obj:
            raise ValueError(f"op 'set_many' needs the key {key!r}")
    n = obj["n"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SET_MANY:
        raise ValueError(f"set_many n must be an integer from 1 to {MAX_SET_MANY}, got {n!r}")
    seq = obj.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 1 << 64 <= seq + n - 1:
        raise ValueError(f"set_many seqs {seq} … {seq + n - 1} go beyond 2**64-1")
    flat = np.frombuffer(_b64(obj["flat"], "flat", n, 8), dtype=_LE_I64)
    values = np.frombuffer(_b64(obj["values"], "values", n, 4), dtype=_LE_F32)
    size = math.prod(shape)
    top = int(flat.view(np.uint64).max())        # a negative offset is huge as uint64
    if top >= size:
        k = int(np.argmax(flat.view(np.uint64) >= size))
        raise ValueError(f"set_many element {k} has the flat index {int(flat[k])}, outside the "
                         f"buffer of {size} elements (shape {tuple(shape)})")
    return SetMany(flat.astype(np.int64, copy=False), values.astype(np.float32, copy=False))


def encode_set_many(flat: np.ndarray, values: np.ndarray, seq: int | None = None,
                    producer: str | None = None, t: float | None = None) -> str:
    """The ``set_many`` lines (each ending in a newline) of checked flat offsets and
    float32 values; batches over ``WRITE_CHUNK`` elements become several lines."""
    flat = np.ascontiguousarray(flat, dtype=_LE_I64)
    values = np.ascontiguousarray(values, dtype=_LE_F32)
    tail = ""
    if producer is not None:
        tail += f', "producer": {json.dumps(producer)}'
    if t is not None:
        tail += f', "t": {t:.6f}'
    out = []
    for a in range(0, len(flat), WRITE_CHUNK):
        f = flat[a:a + WRITE_CHUNK]
        v = values[a:a + WRITE_CHUNK]
        s = "" if seq is None else f', "seq": {seq + a}'
        out.append(f'{{"op": "set_many", "n": {len(f)}, '
                   f'"flat": "{base64.b64encode(f.tobytes()).decode("ascii")}", '
                   f'"values": "{base64.b64encode(v.tobytes()).decode("ascii")}"{s}{tail}}}\n')
    return "".join(out)


# -- the fast path for per-element set lines ---------------------------------------------
_INT = r"(?:0|[1-9][0-9]*)"
_NUM = r'(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|"nan"|"inf"|"-inf")'
_STR = r'"([^"\\\x00-\x1f]*)"'
_EXTRA = rf'(?:, "seq": ({_INT})|, "producer": {_STR}|, "t": ({_NUM}))'
_SET_RE = re.compile(
    rf'\{{"op": "set", "index": \[({_INT}(?:, {_INT}){{0,2}})\], "value": ({_NUM})'
    rf'{_EXTRA}?{_EXTRA}?{_EXTRA}?\}}')
_SPECIAL = {'"nan"': math.nan, '"inf"': math.inf, '"-inf"': -math.inf}


def _number(text: str) -> float | None:
    """A JSON number literal as the strict reader gives it (an integer literal goes
    through int, so ``-0`` is ``0.0``); None for what the strict reader must judge."""
    if len(text) > 300:
        return None
    if "." in text or "e" in text or "E" in text:
        x = float(text)
        return None if math.isinf(x) else x
    return float(int(text))


def fast_set(text: str, shape: Shape) -> tuple[Set, int | None, str | None, float | None] | None:
    """A ``set`` line in the writers' usual layout as ``(Set, seq, producer, t)``, fully
    checked; None when the line is anything else or anything about it is wrong (the
    strict parser then reads it and names the problem)."""
    m = _SET_RE.fullmatch(text)
    if m is None:
        return None
    idx, val, s1, p1, t1, s2, p2, t2, s3, p3, t3 = m.groups()
    seqs = [x for x in (s1, s2, s3) if x is not None]
    prods = [x for x in (p1, p2, p3) if x is not None]
    ts = [x for x in (t1, t2, t3) if x is not None]
    if len(seqs) > 1 or len(prods) > 1 or len(ts) > 1:
        return None                       # a repeated key: the strict parser decides
    if len(idx) > 200:
        return None
    index = tuple(map(int, idx.split(", ")))
    if len(index) != len(shape) or any(i >= n for i, n in zip(index, shape)):
        return None
    v = _SPECIAL.get(val)
    if v is None:
        v = _number(val)
        if v is None:
            return None
    seq = int(seqs[0]) if seqs else None
    if seq is not None and (len(seqs[0]) > 20 or seq >= 1 << 64):
        return None
    t = None
    if ts:
        if ts[0][0] == '"':
            return None                   # "t" must be a number
        t = _number(ts[0])
        if t is None:
            return None
    return Set(index, v), seq, (prods[0] if prods else None), t


# -- runs of per-element set lines, parsed together ------------------------------------
class SetRun(SetMany):
    """Consecutive ``set`` lines read as one batch (``TraceReader.batches``): the
    arrays of ``SetMany`` plus, per element, its ``seqs`` (uint64), ``producers``,
    ``ts`` (float64 seconds) and ``lines`` (line numbers)."""

    __slots__ = ("exact", "seqs", "producers", "ts", "lines")

    def __init__(self, flat, exact, seqs, producers, ts, lines) -> None:
        with np.errstate(over="ignore"):    # beyond float32: ±inf, as when applied
            super().__init__(flat, exact.astype(np.float32))
        self.exact = exact          # the values as written (float64), as ``set`` lines read
        self.seqs = seqs
        self.producers = producers
        self.ts = ts
        self.lines = lines

    def __repr__(self) -> str:
        return f"SetRun(n={self.count}, lines {self.lines[0]}…{self.lines[-1]})"


_D = r"(0|[1-9][0-9]{0,17})"
_N = r"(-?(?:0|[1-9][0-9]{0,300})(?:\.[0-9]{1,400})?(?:[eE][-+]?[0-9]{1,4})?)"
_P = r'"([^"\\\x00-\x1f]*)"'
_S = r"(0|[1-9][0-9]{0,18})"
# The two layouts the writers produce: Python's (seq, producer, t), the C library's
# (producer, t, seq). Group order: the index, value, special value, then the tail.
_TAILS = {"py": (rf', "seq": {_S}, "producer": {_P}, "t": {_N}', (0, 1, 2)),
          "c": (rf', "producer": {_P}, "t": {_N}, "seq": {_S}', (2, 0, 1))}
_RUN_RE: dict = {}


def _run_re(ndim: int, layout: str) -> re.Pattern:
    key = (ndim, layout)
    if key not in _RUN_RE:
        index = ", ".join([_D] * ndim)
        _RUN_RE[key] = re.compile(
            rf'(?m)^\{{"op": "set", "index": \[{index}\], "value": (?:{_N}|"(nan|inf|-inf)")'
            rf'{_TAILS[layout][0]}\}}$')
    return _RUN_RE[key]


def _floats(strs, special=None) -> np.ndarray | None:
    """JSON number literals (or, where ``special[k]`` is set, "nan"/"inf"/"-inf") as
    float64, exactly as the strict reader gives them; None when one needs the strict
    reader (a number beyond the float range)."""
    x = np.fromiter(map(float, strs), dtype=np.float64, count=len(strs))
    for k in np.flatnonzero(np.isinf(x)):
        if special is None or not special[k]:
            return None
    for k in np.flatnonzero((x == 0) & np.signbit(x)):
        if not any(c in strs[k] for c in ".eE"):
            x[k] = 0.0            # the integer -0 is the integer 0
    return x


def parse_set_run(texts: list[str], lines: list[int], shape: Shape) -> SetRun | None:
    """Consecutive ``set`` lines, all in one writer's layout with seq, producer and t,
    as one ``SetRun``; None when any line is otherwise or fails a check (each is then
    read on its own, and a bad one named)."""
    ndim = len(shape)
    first = texts[0]
    layout = "c" if first.rfind('"seq": ') > first.rfind('"t": ') else "py"
    found = _run_re(ndim, layout).findall("\n".join(texts))
    if len(found) != len(texts):
        return None
    cols = list(zip(*found))
    idx = [np.fromiter(map(int, c), dtype=np.int64, count=len(c)) for c in cols[:ndim]]
    if any(int(i.max()) >= n for i, n in zip(idx, shape)):
        return None
    num, special = cols[ndim], cols[ndim + 1]
    vals = _floats([a or b for a, b in zip(num, special)], special)
    order = _TAILS[layout][1]
    seq_s, prods, t_s = (cols[ndim + 2 + order[k]] for k in range(3))
    ts = _floats(t_s)
    if vals is None or ts is None:
        return None
    flat = np.ravel_multi_index(idx, shape).astype(np.int64)
    seqs = np.fromiter(map(int, seq_s), dtype=np.uint64, count=len(seq_s))
    return SetRun(flat, vals, seqs, list(prods),
                  ts, lines)


__all__ = ["SetMany", "SetRun", "parse_set_run", "parse_set_many", "encode_set_many", "fast_set",
           "MAX_SET_MANY", "WRITE_CHUNK", "FEATURES"]
