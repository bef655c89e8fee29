"""The line grammar of trace files (SPEC §5): the header, values, and one update or
sync line as a validated object. ``app.trace`` reads and writes whole files with it;
``app.trace_codec`` adds the ``set_many`` record and the fast path for ``set`` lines.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from . import sysmem
from .trace_codec import FEATURES, SetMany, parse_set_many
from .updates import (
    UPDATE_TYPES,
    Set,
    Shape,
    Update,
    Write,
    as_value,
    region_shape,
    validate,
    validate_region,
    validate_shape,
)

FORMAT = "bufferscope-trace"
VERSION = 1
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


#: The longest line a reader accepts (a ``write`` of about 10 M elements).
MAX_LINE_BYTES = 256 << 20
#: The largest size of one dimension (the C library's int64).
MAX_SIZE = (1 << 63) - 1
#: Integers with more digits than this are refused before Python converts them.
MAX_INT_DIGITS = 4000


class TraceError(ValueError):
    """A malformed trace; the message starts with ``FILE line N:``."""


@dataclass
class SyncMarker:
    """A ``{"op": "sync"}`` line."""

    op: str = "sync"


def parse_value(x: object) -> float:
    if isinstance(x, str) and x in _SPECIAL:
        return _SPECIAL[x]
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"value must be a number or one of 'nan', 'inf', '-inf', got {x!r}")
    return as_value(x)


def encode_value(v: float) -> float | str:
    """A value as the trace writes it: a JSON number, or "nan"/"inf"/"-inf"."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def decode_data(x: object) -> object:
    if isinstance(x, list):
        return [decode_data(y) for y in x]
    return parse_value(x)


def parse_header(obj: object) -> tuple[Shape, float]:
    if not isinstance(obj, dict):
        raise ValueError("the header must be a JSON object")
    if obj.get("format") != FORMAT:
        raise ValueError(f'the header must have "format": "{FORMAT}", got {obj.get("format")!r}')
    if obj.get("version") != VERSION:
        raise ValueError(f"unsupported trace version {obj.get('version')!r} (this reads {VERSION})")
    if obj.get("dtype", "float32") != "float32":
        raise ValueError(f"unsupported dtype {obj.get('dtype')!r} (only float32)")
    if "shape" not in obj:
        raise ValueError('the header has no "shape"')
    features = obj.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ValueError(f'the header\'s "features" must be a list of strings, got {features!r}')
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"the trace needs features this reader does not know: {unknown} "
                         f"(it knows {list(FEATURES)})")
    shape = validate_shape(obj["shape"])
    for d, n in enumerate(shape):
        if n > MAX_SIZE:
            raise ValueError(f"shape[{d}] = {n} is larger than the limit of 2**63 - 1")
    return shape, parse_value(obj.get("fill", 0.0))


def _parse_float(text: str) -> float:
    x = float(text)
    if math.isinf(x):
        raise ValueError(f'the number {text} is beyond the float range; write "inf" or "-inf"')
    return x


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits is too large")
    return int(text)


def _refuse_constant(name: str) -> float:
    raise ValueError(f'{name} is not JSON; write the strings "nan", "inf" or "-inf"')


_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_int=_parse_int,
                            parse_constant=_refuse_constant)


def decode_json(text: str) -> object:
    """One line's JSON value; ValueError naming the column in that line."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        where = "at the end of the line" if exc.pos >= len(text) else f"at column {exc.pos + 1}"
        raise ValueError(f"bad JSON: {exc.msg} {where}") from None
    except RecursionError:
        raise ValueError("bad JSON: nested too deeply") from None


def check_memory(shape: Shape, buffers: int) -> None:
    try:
        sysmem.check_buffers_fit(shape, count=buffers, what="buffers")
    except MemoryError as exc:
        raise ValueError(f"the trace's buffer is too large for this machine: {exc}") from None


def extras(obj: dict) -> tuple[int | None, str | None, float | None]:
    """The optional ``seq``, ``producer`` and ``t`` keys, checked."""
    seq, producer, t = obj.get("seq"), obj.get("producer"), obj.get("t")
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 1 << 64:
            raise ValueError(f"seq must be an integer from 0 to 2**64-1, got {seq!r}")
    if producer is not None and not isinstance(producer, str):
        raise ValueError(f"producer must be a string, got {producer!r}")
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ValueError(f"t must be a finite number of seconds, got {t!r}")
        t = float(t)
    return seq, producer, t


_KNOWN_KEYS = {"op", "index", "region", "value", "data", "seq", "producer", "t"}


def _empty(x: object) -> bool:
    return isinstance(x, list) and all(_empty(y) for y in x)


def _write_data(region: object, data: object, shape: Shape) -> object:
    """A write's data; for an empty region, nested lists holding no value (``[]``,
    ``[[], []]``: JSON cannot spell every empty shape) stand for the empty block."""
    if _empty(data):
        box = validate_region(region, shape)
        if 0 in region_shape(box):
            return np.zeros(region_shape(box), dtype=np.float32)
    return data


def parse_line(obj: object, shape: Shape) -> Update | SyncMarker | SetMany:
    """One trace object as a validated update, ``SetMany`` batch or sync marker."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    op = obj.get("op")
    if op == "sync":
        return SyncMarker()
    if op == SetMany.op:
        return parse_set_many(obj, shape)
    if not isinstance(op, str) or op not in UPDATE_TYPES:
        shown = repr(op) if len(repr(op)) <= 40 else repr(op)[:40] + "..."
        raise ValueError(f"unknown op {shown}; expected one of sync, {', '.join(UPDATE_TYPES)}, "
                         f"{SetMany.op}")
    unknown = set(obj) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} for op {op!r}")
    try:
        if op == "set":
            u: Update = Set(obj["index"], parse_value(obj["value"]))
        elif op == "write":
            u = Write(obj["region"], _write_data(obj["region"], decode_data(obj["data"]), shape))
        else:
            u = UPDATE_TYPES[op](obj["region"], parse_value(obj["value"]))
    except KeyError as exc:
        raise ValueError(f"op {op!r} needs the key {exc.args[0]!r}") from None
    return validate(u, shape)


