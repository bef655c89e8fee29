"""Trace files (SPEC §5): JSON Lines, a header line then one update or sync per line.

``open_trace`` reads a trace as a stream (``TraceReader``): the header at once,
then one validated record at a time, so a trace of any length is read in
constant memory and a malformed line is reported, with its number, when it is
reached. ``read_trace`` collects a (small) trace into a list. ``TraceWriter``
writes one atomically (to a temporary file renamed on close). ``replay`` runs a
trace on a manager, streaming. The format is documented in docs/trace-format.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from . import sysmem
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


def encode_value(v: float) -> float | str:
    """A value as the trace writes it: a JSON number, or "nan"/"inf"/"-inf"."""
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
    for d, n in enumerate(shape):
        if n > MAX_SIZE:
            raise ValueError(f"shape[{d}] = {n} is larger than the limit of 2**63 - 1")
    return shape, _value(obj.get("fill", 0.0))


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


def _decode_json(text: str) -> object:
    """One line's JSON value; ValueError naming the column in that line."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        where = "at the end of the line" if exc.pos >= len(text) else f"at column {exc.pos + 1}"
        raise ValueError(f"bad JSON: {exc.msg} {where}") from None
    except RecursionError:
        raise ValueError("bad JSON: nested too deeply") from None


def _check_memory(shape: Shape, buffers: int) -> None:
    try:
        sysmem.check_buffers_fit(shape, count=buffers, what="buffers")
    except MemoryError as exc:
        raise ValueError(f"the trace's buffer is too large for this machine: {exc}") from None


def _extras(obj: dict) -> tuple[int | None, str | None, float | None]:
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


def parse_line(obj: object, shape: Shape) -> Update | SyncMarker:
    """One trace object as a validated update (or sync marker)."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    op = obj.get("op")
    if op == "sync":
        return SyncMarker()
    if not isinstance(op, str) or op not in UPDATE_TYPES:
        shown = repr(op) if len(repr(op)) <= 40 else repr(op)[:40] + "..."
        raise ValueError(f"unknown op {shown}; expected one of sync, {', '.join(UPDATE_TYPES)}")
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


class TraceReader:
    """A trace read as a stream (SPEC §5): the header when opened, then one record
    at a time as it is iterated, each validated against the header's shape.

    Nothing but the current line is held in memory. Every problem raises
    ``TraceError`` whose message starts with ``FILE line N:`` — a file that
    cannot be opened, bytes that are not UTF-8, a line longer than
    ``MAX_LINE_BYTES``, bad JSON (with the column in that line), a bad header, a
    shape whose buffers do not fit in the memory available now (``app.sysmem``;
    ``check_memory=False`` skips that check for readers that never allocate the
    buffer), a bad update. Iterate once; ``close()`` (or ``with``) closes the file.
    """

    def __init__(self, path: str | os.PathLike, check_memory: bool = True, buffers: int = 2) -> None:
        self.path = os.fspath(path)
        try:
            self._fh = open(self.path, "rb")
        except OSError as exc:
            raise TraceError(f"{self.path}: cannot open: {exc.strerror}") from None
        try:
            self.size = os.fstat(self._fh.fileno()).st_size
            self.lineno = 0
            self._lines = self._read_lines()
            for _lineno, text in self._lines:
                self.shape, self.fill = _parse_header(_decode_json(text))
                if check_memory:
                    _check_memory(self.shape, buffers)
                break
            else:
                raise TraceError(f"{self.path} line 1: empty file, expected the bufferscope-trace header")
        except ValueError as exc:
            self.close()
            if isinstance(exc, TraceError):
                raise
            raise TraceError(f"{self.path} line {self.lineno}: {exc}") from None
        except BaseException:
            self.close()
            raise

    @property
    def bytes_read(self) -> int:
        """How far into the file reading has gone (for progress reports)."""
        return 0 if self._fh.closed else self._fh.tell()

    def _read_lines(self) -> Iterator[tuple[int, str]]:
        """(line number, text without its line ending) of every non-blank line."""
        readline = self._fh.readline
        while True:
            raw = readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            self.lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise TraceError(f"{self.path} line {self.lineno}: longer than the limit of "
                                 f"{MAX_LINE_BYTES >> 20} MiB per line")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TraceError(f"{self.path} line {self.lineno}: not UTF-8 ({exc.reason} "
                                 f"at byte {exc.start + 1} of the line)") from None
            if self.lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]  # a UTF-8 byte order mark
            text = text.rstrip("\r\n")
            if text.strip():
                yield self.lineno, text

    def __iter__(self) -> Iterator[TraceRecord]:
        shape = self.shape
        try:
            for lineno, text in self._lines:
                obj = _decode_json(text)
                item = parse_line(obj, shape)
                seq, producer, t = _extras(obj)
                yield TraceRecord(item, lineno, seq=seq, producer=producer, t=t)
        except TraceError:
            raise
        except ValueError as exc:
            raise TraceError(f"{self.path} line {self.lineno}: {exc}") from None
        except RecursionError:
            raise TraceError(f"{self.path} line {self.lineno}: nested too deeply") from None
        except MemoryError:
            raise TraceError(f"{self.path} line {self.lineno}: too large to read into the "
                             "memory available") from None
        finally:
            self.close()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_trace(path: str | os.PathLike, check_memory: bool = True) -> TraceReader:
    """A ``TraceReader`` on ``path``: the header is read and checked now (TraceError
    naming the line otherwise), the records as it is iterated."""
    return TraceReader(path, check_memory=check_memory)


def read_trace(path: str | os.PathLike, check_memory: bool = True) -> Trace:
    """A whole trace as a list of records, for small traces and tests; raises
    TraceError naming the line. ``replay`` and the exports stream instead."""
    with open_trace(path, check_memory=check_memory) as reader:
        return Trace(reader.shape, reader.fill, list(reader))


def encode_update(u: Update | SyncMarker, **extra: object) -> dict:
    """The trace object of one (validated) update or sync."""
    if isinstance(u, SyncMarker):
        obj: dict = {"op": "sync"}
    elif isinstance(u, Set):
        obj = {"op": "set", "index": [int(i) for i in u.index], "value": encode_value(float(u.value))}
    elif isinstance(u, Write):
        data = np.asarray(u.data, dtype=np.float32)
        flat = [encode_value(float(v)) for v in data.reshape(-1)]
        nested = np.array(flat, dtype=object).reshape(data.shape).tolist() if data.ndim else flat
        obj = {"op": "write", "region": [list(p) for p in u.region], "data": nested}
    else:
        obj = {"op": u.op, "region": [list(p) for p in u.region], "value": encode_value(float(u.value))}
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
                     "dtype": "float32", "fill": encode_value(float(fill))})

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


def replay(trace: Trace | Iterable[TraceRecord], manager, timeout: float | None = 60.0,
           progress: Callable[[int], None] | None = None, batch_size: int = 1024) -> int:
    """Enqueue every record in order on ``manager`` (in batches of ``batch_size``),
    synchronizing at each sync line and once at the end; returns the number of
    updates. ``trace`` is a ``Trace`` or any iterable of records, such as a
    ``TraceReader`` (then the trace streams: a TraceError may come from any line,
    after earlier lines were applied). ``progress(records_done)`` is called now
    and then."""
    records = trace.records if isinstance(trace, Trace) else trace
    batch: list[Update] = []
    n = 0
    for k, rec in enumerate(records):
        if isinstance(rec.item, SyncMarker):
            if batch:
                manager.enqueue_many(batch)
                batch = []
            manager.synchronize(timeout=timeout)
        else:
            batch.append(rec.item)
            n += 1
            if len(batch) >= batch_size:
                manager.enqueue_many(batch)
                batch = []
        if progress is not None and k % 4096 == 0:
            progress(k)
    if batch:
        manager.enqueue_many(batch)
    manager.synchronize(timeout=timeout)
    return n


__all__ = ["MAX_LINE_BYTES", "TraceError", "Trace", "TraceReader", "TraceRecord", "SyncMarker",
           "TraceWriter", "open_trace", "read_trace", "replay", "encode_update", "parse_line"]
