"""Capture: a manager streams its updates to a trace file while the program runs (SPEC §5).

``open_manager(..., trace="run.jsonl")`` or ``BUFFERSCOPE_TRACE=run.jsonl`` (every
manager the process opens; the first gets the name as given, later ones
``run.1.jsonl``, ``run.2.jsonl``, …). This module serves the scheduler backends
(GL, numpy); the C library writes the same format itself.

DESIGN
The scheduler calls ``record`` under its lock as each entry is queued, so the
records are in sequence order whichever thread enqueued them; ``record`` only
appends a reference (the entry holds private copies of its payload). A writer
thread formats and writes them, flushing at least every ``FLUSH_S``, so the file
grows as the program runs and a crash loses little. A ``set_many`` chunk is one ``set_many``
line (its arrays in base64, docs/trace-format.md). A sync marker is written
only once it is resolved: a ``{"op": "sync"}`` line for the marker whose swap
made an epoch visible, nothing for one that timed out, was interrupted, or was
absorbed into the same swap as its neighbour — so replaying the trace gives
exactly the program's epochs and fronts. Producers that outrun the writer wait
in ``throttle`` (outside the scheduler's lock) until the backlog is below
``BACKLOG_UNITS``: memory stays bounded. ``close`` drains, flushes and closes.
A write error is reported once on stderr and recording stops; the program
runs on.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import os
import sys
import threading
import time

import numpy as np

from .atomic import OutputPathError, check_output_path
from .scheduler import SETS, SYNC, Entry
from .trace_codec import FEATURES, encode_set_many
from .updates import Set, Shape, Write

FLUSH_S = 0.2
BACKLOG_UNITS = 1 << 20
ENV = "BUFFERSCOPE_TRACE"

_names_lock = threading.Lock()
_numbers = itertools.count()   # the managers traced so far (next() is atomic)


def path_from_environment() -> str | None:
    """The trace path for the next manager from ``BUFFERSCOPE_TRACE`` (None: unset)."""
    base = os.environ.get(ENV)
    if not base:
        return None
    k = next(_numbers)
    if k == 0:
        return base
    stem, ext = os.path.splitext(base)
    return f"{stem}.{k}{ext}"


_env_warned = False


def env_trace_failed(path: str, exc: BaseException) -> None:
    """A trace named by ``BUFFERSCOPE_TRACE`` cannot be written: say so once per
    process on stderr; the program runs on untraced (an explicit ``trace=`` raises)."""
    global _env_warned
    with _names_lock:
        if _env_warned:
            return
        _env_warned = True
    print(f"bufferscope: {exc} ({ENV}={path}); continuing without a trace", file=sys.stderr)


def _num(v: float) -> str:
    if math.isnan(v):
        return '"nan"'
    if math.isinf(v):
        return '"inf"' if v > 0 else '"-inf"'
    return repr(v)


def open_output(path: str) -> int:
    """A file descriptor for a new trace at ``path`` (truncated); ``OSError`` naming the
    path and the reason otherwise. What is not a regular file (a FIFO, a device, a
    symlink) is refused, never replaced: the same check as every output of the CLI."""
    try:
        full = check_output_path(path)
    except OutputPathError as exc:   # its message names the path already
        raise OSError(exc.errno, f"cannot write the trace: {exc.strerror}") from None
    try:
        return os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o666)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the trace {path}: {exc.strerror}") from None


class Capture:
    """Streams one manager's queue to a trace file (see the module doc)."""

    def __init__(self, path: str | os.PathLike, shape: Shape, fill: float,
                 producers: dict[int, str]) -> None:
        self.path = os.fspath(path)
        self.shape = tuple(shape)
        self._producers = producers    # the manager's thread-id -> name map (shared, not copied)
        self._fd = open_output(self.path)
        self._cv = threading.Condition()
        self._records: collections.deque = collections.deque()
        self._backlog = 0
        self._closing = False
        self._failed = False
        self._t0 = time.monotonic()
        header = {"format": "bufferscope-trace", "version": 1, "shape": list(self.shape),
                  "dtype": "float32", "fill": json.loads(_num(float(np.float32(fill)))),
                  "features": list(FEATURES)}
        self._write_now(json.dumps(header) + "\n")
        self._thread = threading.Thread(target=self._run, name="bufferscope-trace-writer",
                                        daemon=True)
        self._thread.start()

    # -- called by the scheduler, under its lock -------------------------------------
    def record(self, e: Entry) -> None:
        with self._cv:
            self._records.append((e, time.monotonic() - self._t0))
            self._backlog += e.units
            self._cv.notify()

    def record_swap(self) -> None:
        """A swap made in the caller (no marker queued): one sync line."""
        marker = Entry(SYNC, "", 0, 0, 0)
        marker.outcome = True
        self.record(marker)

    def wake(self) -> None:
        """A marker was resolved."""
        with self._cv:
            self._cv.notify()

    # -- producers, outside the scheduler's lock ----------------------------------------
    def throttle(self) -> None:
        with self._cv:
            while self._backlog > BACKLOG_UNITS and not self._closing and not self._failed:
                self._cv.wait(0.05)

    # -- the writer -------------------------------------------------------------------
    def _run(self) -> None:
        last_flush = time.monotonic()
        chunks: list[str] = []
        while True:
            with self._cv:
                while not self._ready() and not self._closing:
                    self._cv.wait(FLUSH_S)
                    if chunks:
                        break
                batch = []
                while self._records and self._resolved(self._records[0][0]):
                    batch.append(self._records.popleft())
                    if len(batch) >= 4096:
                        break
                done = self._closing and not self._records
                if self._closing:      # nothing will resolve any more: drop the rest's markers
                    while self._records and not self._resolved(self._records[0][0]):
                        self._records.popleft()
            for e, t in batch:
                chunks.append(self._format(e, t))
            units = sum(e.units for e, _ in batch)
            now = time.monotonic()
            if chunks and (done or now - last_flush >= FLUSH_S or sum(map(len, chunks)) > 1 << 20):
                self._write_now("".join(chunks))
                chunks = []
                last_flush = now
            if units:
                with self._cv:
                    self._backlog -= units
                    self._cv.notify_all()
            if done:
                if chunks:
                    self._write_now("".join(chunks))
                return

    def _ready(self) -> bool:
        return bool(self._records) and self._resolved(self._records[0][0])

    @staticmethod
    def _resolved(e: Entry) -> bool:
        return e.kind != SYNC or e.outcome is not None

    def _extra(self, e: Entry, seq: int, t: float) -> str:
        name = self._producers.get(e.producer, f"thread-{e.producer}")
        return f', "seq": {seq}, "producer": {json.dumps(name)}, "t": {t:.6f}}}\n'

    def _format(self, e: Entry, t: float) -> str:
        if e.kind == SYNC:
            return f'{{"op": "sync", "t": {t:.6f}}}\n' if e.outcome else ""
        if e.kind == SETS:   # one set_many line (base64 arrays): no per-element work
            return encode_set_many(e.flat, e.values, seq=e.seq, t=t,
                                   producer=self._producers.get(e.producer, f"thread-{e.producer}"))
        u = e.update
        extra = self._extra(e, e.seq, t)
        if type(u) is Set:
            return (f'{{"op": "set", "index": {json.dumps(list(u.index))}, '
                    f'"value": {_num(float(np.float32(u.value)))}{extra}')
        region = json.dumps([list(p) for p in u.region])
        if type(u) is Write:
            flat = [_num(v) for v in np.asarray(u.data, dtype=np.float32).astype(np.float64).ravel().tolist()]
            data = _nest(flat, u.data.shape)
            return f'{{"op": "write", "region": {region}, "data": {data}{extra}'
        return (f'{{"op": "{u.op}", "region": {region}, '
                f'"value": {_num(float(np.float32(u.value)))}{extra}')

    def _write_now(self, text: str) -> None:
        if self._failed:
            return
        data = text.encode("utf-8")
        try:
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
        except OSError as exc:
            self._failed = True
            print(f"bufferscope: recording the trace {self.path!r} stopped: {exc.strerror}",
                  file=sys.stderr)

    def close(self) -> None:
        """Write everything recorded (unresolved markers are dropped), close the file."""
        with self._cv:
            if self._closing:
                return
            self._closing = True
            self._cv.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
        try:
            os.close(self._fd)
        except OSError:
            pass


def _nest(flat: list[str], shape: tuple[int, ...]) -> str:
    """JSON text of ``flat`` (already-encoded numbers) nested to ``shape``."""
    if len(shape) <= 1:
        return "[" + ", ".join(flat) + "]"
    step = len(flat) // shape[0] if shape[0] else 0
    return "[" + ", ".join(_nest(flat[i * step:(i + 1) * step], shape[1:])
                           for i in range(shape[0])) + "]"
