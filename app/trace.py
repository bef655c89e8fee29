"""Trace files (SPEC §5): JSON Lines, a header line then one update or sync per line.

``read_trace`` parses and validates a whole file up front (so a malformed trace
is rejected before anything runs, with the line named); ``TraceWriter`` writes
one, atomically (to a temporary file renamed on close). ``replay`` runs a trace
on a manager.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .atomic import AtomicFile
from .updates import (
    UPDATE_TYPES,
    Set,
    Shape,
    Update,
    Write,
    as_value,
    validate,
    validate_shape,
)

FORMAT = "bufferscope-trace"
VERSION = 1
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class TraceError(ValueError):
    """A malformed trace; the message starts with ``FILE line N:``."""


@dataclass
class SyncMarker:
    """A ``{"op": "sync"}`` line."""

    op: str = "sync"


@dataclass
class TraceRecord:
    """One line after the header: an update (or a sync) and its optional keys."""

    item: Update | SyncMarker
    line: int
    seq: int | None = None
    producer: str | None = None
    t: float | None = None


@dataclass
class Trace:
    shape: Shape
    fill: float
    records: list[TraceRecord] = field(default_factory=list)

    def updates(self) -> Iterator[Update | SyncMarker]:
        return (r.item for r in self.records)


def _value(x: object) -> float:
    if isinstance(x, str) and x in _SPECIAL:
        return _SPECIAL[x]
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"value must be a number or one of 'nan', 'inf', '-inf', got {x!r}")
    return as_value(x)


def _encode_value(v: float) -> float | str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _decode_data(x: object) -> object:
    if isinstance(x, list):
        return [_decode_data(y) for y in x]
    return _value(x)


def _parse_header(obj: object) -> tuple[Shape, float]:
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
    shape = validate_shape(obj["shape"])
    return shape, _value(obj.get("fill", 0.0))


_KNOWN_KEYS = {"op", "index", "region", "value", "data", "seq", "producer", "t"}


def parse_line(obj: object, shape: Shape) -> Update | SyncMarker:
    """One trace object as a validated update (or sync marker)."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    op = obj.get("op")
    if op == "sync":
        return SyncMarker()
    if op not in UPDATE_TYPES:
        raise ValueError(f"unknown op {op!r}; expected one of sync, {', '.join(UPDATE_TYPES)}")
    unknown = set(obj) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} for op {op!r}")
    try:
        if op == "set":
            u: Update = Set(obj["index"], _value(obj["value"]))
        elif op == "write":
            u = Write(obj["region"], _decode_data(obj["data"]))
        else:
            u = UPDATE_TYPES[op](obj["region"], _value(obj["value"]))
    except KeyError as exc:
        raise ValueError(f"op {op!r} needs the key {exc.args[0]!r}") from None
    return validate(u, shape)


def read_trace(path: str | os.PathLike) -> Trace:
    """Parse and validate a whole trace; raises TraceError naming the line."""
    name = os.fspath(path)
    try:
        fh = open(name, encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{name}: cannot open: {exc.strerror}") from None
    trace: Trace | None = None
    with fh:
        lineno = 0
        try:
            for lineno, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                    if trace is None:
                        shape, fill = _parse_header(obj)
                        trace = Trace(shape, fill)
                        continue
                    item = parse_line(obj, trace.shape)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"bad JSON: {exc.msg} (column {exc.colno})") from None
                except RecursionError:
                    raise ValueError("nested too deeply") from None
                trace.records.append(TraceRecord(
                    item, lineno, seq=obj.get("seq"), producer=obj.get("producer"), t=obj.get("t")
                ))
        except UnicodeDecodeError as exc:
            raise TraceError(f"{name} line {lineno + 1}: not UTF-8 ({exc.reason})") from None
        except ValueError as exc:
            raise TraceError(f"{name} line {lineno}: {exc}") from None
    if trace is None:
        raise TraceError(f"{name} line 1: empty file, expected the bufferscope-trace header")
    return trace


def encode_update(u: Update | SyncMarker, **extra: object) -> dict:
    """The trace object of one (validated) update or sync."""
    if isinstance(u, SyncMarker):
        obj: dict = {"op": "sync"}
    elif isinstance(u, Set):
        obj = {"op": "set", "index": [int(i) for i in u.index], "value": _encode_value(float(u.value))}
    elif isinstance(u, Write):
        data = np.asarray(u.data, dtype=np.float32)
        flat = [_encode_value(float(v)) for v in data.reshape(-1)]
        nested = np.array(flat, dtype=object).reshape(data.shape).tolist() if data.ndim else flat
        obj = {"op": "write", "region": [list(p) for p in u.region], "data": nested}
    else:
        obj = {"op": u.op, "region": [list(p) for p in u.region], "value": _encode_value(float(u.value))}
    obj.update({k: v for k, v in extra.items() if v is not None})
    return obj


class TraceWriter:
    """Writes a trace atomically: nothing appears at ``path`` until ``close()``
    succeeds; ``abort()`` (or an exception inside ``with``) leaves no file."""

    def __init__(self, path: str | os.PathLike, shape: Shape, fill: float = 0.0) -> None:
        self.path = os.fspath(path)
        self.shape = validate_shape(shape)
        self._file = AtomicFile(self.path, "w")
        self._fh = self._file.fh
        self._write({"format": FORMAT, "version": VERSION, "shape": list(self.shape),
                     "dtype": "float32", "fill": _encode_value(float(fill))})

    def _write(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj, allow_nan=False) + "\n")

    def add(self, u: Update | SyncMarker, **extra: object) -> None:
        item = u if isinstance(u, SyncMarker) else validate(u, self.shape)
        self._write(encode_update(item, **extra))

    def sync(self, **extra: object) -> None:
        self._write(encode_update(SyncMarker(), **extra))

    def close(self) -> None:
        if not self._fh.closed:
            self._file.commit()

    def abort(self) -> None:
        self._file.abort()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def replay(trace: Trace, manager, timeout: float = 60.0, progress=None) -> int:
    """Enqueue every record in order on ``manager``, synchronizing at each sync
    line and once at the end. Returns the number of updates. ``progress(done, total)``
    is called now and then."""
    total = len(trace.records)
    batch: list[Update] = []
    n = 0
    for k, rec in enumerate(trace.records):
        if isinstance(rec.item, SyncMarker):
            if batch:
                manager.enqueue_many(batch)
                batch = []
            manager.synchronize(timeout=timeout)
        else:
            batch.append(rec.item)
            n += 1
            if len(batch) >= 1024:
                manager.enqueue_many(batch)
                batch = []
        if progress is not None and k % 4096 == 0:
            progress(k, total)
    if batch:
        manager.enqueue_many(batch)
    manager.synchronize(timeout=timeout)
    if progress is not None:
        progress(total, total)
    return n


__all__ = ["TraceError", "Trace", "TraceRecord", "SyncMarker", "TraceWriter", "read_trace",
           "replay", "encode_update", "parse_line"]
