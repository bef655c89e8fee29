"""Trace files (SPEC §5): JSON Lines, a header line then one update or sync per line.

``open_trace`` reads a trace as a stream (``TraceReader``): the header at once,
then one validated record at a time, so a trace of any length is read in
constant memory and a malformed line is reported, with its number, when it is
reached. ``read_trace`` collects a (small) trace into a list. ``TraceWriter``
writes one atomically (to a temporary file renamed on close). ``replay`` runs a
trace on a manager, streaming. The line grammar is ``app.trace_parse``, the
``set_many`` record and the fast path for ``set`` lines ``app.trace_codec``; the
format is documented in docs/trace-format.md.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from . import trace_parse
from .atomic import AtomicFile
from .trace_codec import SetMany, SetRun, encode_set_many, fast_set, parse_set_run
from .trace_lines import LineReader
from .trace_parse import (
    FORMAT,
    MAX_LINE_BYTES,
    VERSION,
    SyncMarker,
    TraceError,
    decode_json,
    encode_value,
    extras,
    parse_header,
    parse_line,
)
from .updates import Set, Shape, Update, Write, validate, validate_set_many, validate_shape


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



_SET_PREFIX = '{"op": "set", '
#: At most this many consecutive ``set`` lines are parsed together.
RUN_LINES = 4096


def _run_records(run: SetRun, shape: Shape) -> Iterator[TraceRecord]:
    seqs = run.seqs.tolist()
    ts = run.ts.tolist()
    for k, u in enumerate(run.sets(shape)):
        yield TraceRecord(u, run.lines[k], seqs[k], run.producers[k], ts[k])


class TraceReader(LineReader):
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
            self._pos = 0
            self._lines = self._read_lines()
            for _lineno, text in self._lines:
                self.shape, self.fill = parse_header(decode_json(text))
                if check_memory:
                    trace_parse.check_memory(self.shape, buffers)
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

    def __iter__(self) -> Iterator[TraceRecord]:
        """Every record, a ``set_many`` line expanded to its ``n`` ``Set`` records
        (seqs ``seq``, ``seq+1``, …; all with that line's number)."""
        return self.records(expand=True)

    def batches(self) -> Iterator[TraceRecord]:
        """Every record, a ``set_many`` line as one record whose item is an
        ``app.trace_codec.SetMany`` (``rec.seq``: its first seq) — for readers that
        apply batches (``replay``, the player's keyframes)."""
        return self.records(expand=False)

    def records(self, expand: bool = True) -> Iterator[TraceRecord]:
        """Every record; ``expand=False`` is ``batches``."""
        shape = self.shape
        lines = iter(self._lines)
        where = self.lineno
        held: tuple[int, str] | None = None
        try:
            while True:
                if held is None:
                    held = next(lines, None)
                    if held is None:
                        return
                lineno, text = held
                held = None
                where = lineno
                if text.startswith(_SET_PREFIX):
                    # A run of set lines: parsed together when they all have the
                    # writers' layout, else one by one (a bad one is named).
                    run_texts, run_lines = [text], [lineno]
                    for held in lines:
                        if not held[1].startswith(_SET_PREFIX) or len(run_texts) >= RUN_LINES:
                            break
                        run_lines.append(held[0])
                        run_texts.append(held[1])
                    else:
                        held = None
                    run = parse_set_run(run_texts, run_lines, shape) if len(run_texts) > 1 else None
                    if run is not None:
                        if expand:
                            yield from _run_records(run, shape)
                        else:
                            yield TraceRecord(run, run_lines[0], int(run.seqs[0]))
                        continue
                    for where, text in zip(run_lines, run_texts):
                        rec = self._record(text, shape)
                        rec.line = where
                        yield rec
                    continue
                obj = decode_json(text)
                item = parse_line(obj, shape)
                seq, producer, t = extras(obj)
                if expand and type(item) is SetMany:
                    for k, u in enumerate(item.sets(shape)):
                        yield TraceRecord(u, lineno, None if seq is None else seq + k, producer, t)
                    continue
                yield TraceRecord(item, lineno, seq=seq, producer=producer, t=t)
        except TraceError:
            raise
        except ValueError as exc:
            raise TraceError(f"{self.path} line {where}: {exc}") from None
        except RecursionError:
            raise TraceError(f"{self.path} line {where}: nested too deeply") from None
        except MemoryError:
            raise TraceError(f"{self.path} line {where}: too large to read into the "
                             "memory available") from None
        finally:
            self.close()

    def _record(self, text: str, shape: Shape) -> TraceRecord:
        """One ``set`` line's record (the line number is set by the caller)."""
        fast = fast_set(text, shape)
        if fast is not None:
            return TraceRecord(fast[0], 0, fast[1], fast[2], fast[3])
        obj = decode_json(text)
        item = parse_line(obj, shape)
        seq, producer, t = extras(obj)
        return TraceRecord(item, 0, seq=seq, producer=producer, t=t)

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
    elif isinstance(u, SetMany):   # one record, however long (TraceWriter splits long ones)
        obj = {"op": "set_many", "n": u.count,
               "flat": base64.b64encode(u.flat.astype("<i8").tobytes()).decode("ascii"),
               "values": base64.b64encode(u.values.astype("<f4").tobytes()).decode("ascii")}
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
                     "dtype": "float32", "fill": encode_value(float(fill)),
                     "features": ["set_many"]})

    def _write(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj, allow_nan=False) + "\n")

    def add(self, u: Update | SyncMarker | SetMany, **extra: object) -> None:
        if isinstance(u, SetMany):
            self.set_many(u.indices(self.shape), u.values, **extra)
            return
        item = u if isinstance(u, SyncMarker) else validate(u, self.shape)
        self._write(encode_update(item, **extra))

    def set_many(self, indices, values, seq: int | None = None, producer: str | None = None,
                 t: float | None = None) -> None:
        """``set_many`` lines for vectorized sets (``(n, ndim)`` indices, ``(n,)`` values,
        as ``Manager.set_many`` takes them); seqs ``seq``, ``seq+1``, … when given."""
        idx, vals = validate_set_many(indices, values, self.shape)
        if len(vals):
            flat = np.ravel_multi_index(tuple(idx.T), self.shape)
            self._fh.write(encode_set_many(flat, vals, seq=seq, producer=producer, t=t))

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
    records = (trace.records if isinstance(trace, Trace)
               else trace.batches() if isinstance(trace, TraceReader) else trace)
    batch: list[Update] = []
    n = 0
    for k, rec in enumerate(records):
        if type(rec.item) is SetMany:
            if batch:
                manager.enqueue_many(batch)
                batch = []
            manager.set_many(rec.item.indices(manager.shape), rec.item.values)
            n += rec.item.count
        elif isinstance(rec.item, SyncMarker):
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
           "SetMany", "TraceWriter", "open_trace", "read_trace", "replay", "encode_update",
           "parse_line", "encode_value"]
