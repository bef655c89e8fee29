"""The trace scrubber's engine (SPEC §7 "Traces"): jump to any epoch or seq of a trace.

``TraceIndex.open(path)`` reads a trace once, as a stream (``app.trace.open_trace``),
replaying it on the numpy ``ReferenceModel``. While it reads it notes, for every
epoch, where in the file the records after that epoch's sync start (byte offset and
line), and keeps a **keyframe** — a float32 copy of the front — every ``K`` epochs.
``K`` starts at 1 and doubles (dropping every other keyframe) whenever the keyframes
would exceed the memory budget, so they stay within it however long the trace is.

``front_at(epoch)`` and ``state_at_seq(seq)`` start from the nearest keyframe at or
before the target (or from the last answer, when that is nearer), seek the file to
where that keyframe's epoch ends, and replay only from there: a jump costs at most
``K`` epochs of updates, never the whole trace. Replay uses the reference model, so
every answer is bit-exact by construction.

Epochs: epoch 0 is the initial buffer (all ``fill``); epoch ``k`` is the front after
the k-th sync line. Updates after the last sync line form one more epoch (``replay``
synchronizes once more at the end, and so does this).

Seqs: an update's ``seq`` is its ``seq`` key when every update of the trace has one
and they increase; otherwise (``seq_kind == "ordinal"``) the updates are numbered
1, 2, 3, … in file order.

Qt-free; thread-safe (one lock), so a GUI may open and scrub on worker threads.
``cancel`` callbacks make ``open`` raise ``Cancelled``; nothing half-built is kept.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .history import UpdateHistory
from .manager import Event
from .reference import ReferenceModel
from .trace import SyncMarker, TraceError, TraceReader, TraceRecord, open_trace
from .trace_codec import SetRun
from .trace_rows import Numbering, batch_events, element_seqs, enqueue_event, is_batch, scatter
from .updates import Set

#: Keyframes (full copies of the front) are kept within this many bytes by default.
DEFAULT_BUDGET_BYTES = 256 << 20
#: ``progress``/``cancel`` are consulted every this many records while opening.
CHECK_EVERY = 2048
#: The history built while opening stops at this many rows (see ``history_between``).
DEFAULT_HISTORY_ROWS = 200_000


class Cancelled(Exception):
    """``open`` (or a lockstep run) was cancelled by its ``cancel`` callback."""


@dataclass(frozen=True)
class SeqState:
    """The buffer right after the update with ``seq`` was applied (``state_at_seq``).

    ``back`` is what the worker had built by then; ``epoch`` the epoch that was
    visible meanwhile; ``applied_seq`` the last seq applied (``seq`` itself, or the
    one before it when the trace has no update numbered ``seq``)."""

    back: np.ndarray
    epoch: int
    applied_seq: int | None


class _Cursor:
    """A reference model positioned right after the sync line of ``epoch``."""

    def __init__(self, model: ReferenceModel, epoch: int) -> None:
        self.model = model
        self.epoch = epoch


class TraceIndex:
    """A trace opened for scrubbing. Build it with ``TraceIndex.open``."""

    def __init__(self, path: str, shape: tuple[int, ...], fill: float, budget_bytes: int) -> None:
        self.path = path
        self.shape = shape
        self.fill = fill
        self.budget_bytes = int(budget_bytes)
        self.frame_bytes = 4 * math.prod(shape)
        self.max_keyframes = self.budget_bytes // max(1, self.frame_bytes)
        self.keyframe_every = 1           # K
        self.keyframes: dict[int, np.ndarray] = {}   # epoch -> front (read-only)
        self.n_epochs = 0                 # the last epoch (syncs, + 1 for trailing updates)
        self.n_updates = 0
        self.seq_kind = "trace"           # or "ordinal"
        self.implicit_final_sync = False
        self.history: UpdateHistory | None = None
        self.history_complete = True
        # Per epoch e (0..n_epochs): where the records after its sync start, and the
        # seq (as per seq_kind) / ordinal of the last update before that point.
        self._offsets = array("q")
        self._lines = array("q")
        self._ordinal_before = array("q")
        self._seq_before = array("q")
        self._stat: tuple[int, int] | None = None
        self._first_seq: int | None = None
        self._lock = threading.RLock()
        self._cursor: _Cursor | None = None
        self.open_seconds = 0.0

    # -- building ----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike,
             progress: Callable[[int, int], None] | None = None,
             cancel: Callable[[], bool] | None = None,
             budget_bytes: int = DEFAULT_BUDGET_BYTES,
             history_rows: int = DEFAULT_HISTORY_ROWS) -> TraceIndex:
        """Read the trace at ``path`` once and index it. ``progress(bytes_read, size)``
        is called now and then; ``cancel()`` returning true stops the read with
        ``Cancelled``. Raises ``TraceError`` naming the line of a malformed trace."""
        import time

        t0 = time.perf_counter()
        reader = open_trace(path)
        with reader:
            self = cls(reader.path, tuple(reader.shape), float(reader.fill), budget_bytes)
            st = os.stat(self.path)
            self._stat = (st.st_size, st.st_mtime_ns)
            self._build(reader, progress, cancel, history_rows)
        self.open_seconds = time.perf_counter() - t0
        return self

    def _new_model(self) -> ReferenceModel:
        return ReferenceModel(self.shape, self.fill)

    def _mark_epoch(self, reader_pos: int, lineno: int, ordinal: int, seq: int) -> None:
        self._offsets.append(reader_pos)
        self._lines.append(lineno)
        self._ordinal_before.append(ordinal)
        self._seq_before.append(seq)

    def _keep_keyframe(self, epoch: int, back: np.ndarray) -> None:
        """A keyframe of the front at ``epoch`` (a copy of ``back`` right after its
        sync) when ``epoch`` is one to keep; fronts of other epochs are never copied."""
        if epoch % self.keyframe_every:
            return
        if self.max_keyframes < 1:
            return
        front = back.copy()
        front.setflags(write=False)
        self.keyframes[epoch] = front
        while len(self.keyframes) > self.max_keyframes:
            self.keyframe_every *= 2
            k = self.keyframe_every
            self.keyframes = {e: f for e, f in self.keyframes.items() if e % k == 0}

    def _build(self, reader: TraceReader, progress, cancel, history_rows: int) -> None:
        model = self._new_model()
        history = UpdateHistory(fill=self.fill)
        events: list[Event] = []
        ev_index = 0
        self._mark_epoch(reader.bytes_read, reader.lineno, 0, -1)
        num = Numbering()
        pending_sets: tuple[list, list] = ([], [])
        since_sync = 0
        epoch = 0
        n_rows = 0

        def flush_sets() -> None:
            idx, vals = pending_sets
            if idx:
                model.set_many(np.asarray(idx, dtype=np.int64),
                               np.asarray(vals, dtype=np.float32))
                idx.clear()
                vals.clear()

        last_t = 0

        def visible(seq: int, t_ns: int) -> None:
            nonlocal ev_index
            for kind in ("swap", "visible"):    # the timeline draws the swap
                events.append(Event(ev_index, t_ns, kind, max(seq, 0), 0, epoch, "", 0, ""))
                ev_index += 1
            if len(events) >= 4096:
                history.ingest(events, ev_index)
                events.clear()

        checked = -CHECK_EVERY
        for rec in reader.batches():
            if num.ordinal - checked >= CHECK_EVERY:
                checked = num.ordinal
                if cancel is not None and cancel():
                    raise Cancelled(f"opening {self.path} was cancelled")
                if progress is not None:
                    progress(reader.bytes_read, reader.size)
            item = rec.item
            last_t = _last_t(rec, last_t)
            if isinstance(item, SyncMarker):
                flush_sets()
                epoch += 1                  # the front is the back now (copied for keyframes)
                since_sync = 0
                visible(num.last_seq if num.ok else num.ordinal, last_t)
                self._mark_epoch(reader.bytes_read, reader.lineno, num.ordinal, num.last_seq)
                self._keep_keyframe(epoch, model.back)
                continue
            if is_batch(item):
                seqs = num.batch(rec)
                since_sync += item.count
                room = history_rows - n_rows
                if room < item.count:
                    self.history_complete = False
                for ev in batch_events(ev_index, rec, seqs, epoch, self.shape, room):
                    events.append(ev)
                    ev_index += 1
                    n_rows += 1
                flush_sets()
                scatter(model, item.flat, item.values)
                continue
            seq = num.single(rec.seq)
            since_sync += 1
            if n_rows >= history_rows:
                self.history_complete = False
            else:
                events.append(enqueue_event(ev_index, rec, seq, epoch))
                ev_index += 1
                n_rows += 1
            if isinstance(item, Set):
                pending_sets[0].append(item.index)
                pending_sets[1].append(item.value)
                if len(pending_sets[0]) >= 65536:
                    flush_sets()
            else:
                flush_sets()
                model.apply(item)
        flush_sets()
        ordinal, last_seq, seqs_ok = num.ordinal, num.last_seq, num.ok
        if since_sync:
            epoch += 1
            self.implicit_final_sync = True
            visible(last_seq if seqs_ok else ordinal, last_t)
            self._mark_epoch(reader.size, reader.lineno + 1, ordinal, last_seq)
            self._keep_keyframe(epoch, model.back)
        model.front = model.back.copy()
        model.epoch = epoch
        if progress is not None:
            progress(reader.size, reader.size)
        self.n_epochs = epoch
        self.n_updates = ordinal
        if ordinal:
            self._first_seq = num.first_seq if seqs_ok else 1
        if not seqs_ok:
            self.seq_kind = "ordinal"
            self._seq_before = array("q", self._ordinal_before)
            # The history was numbered by ordinal from the first bad seq on only;
            # rebuild it consistently (ordinal numbers) when the trace is small.
            events.clear()
            history = self._history_by_ordinal(history_rows)
            self.history_complete = sum(r.count for r in history.rows) == self.n_updates
        else:
            history.ingest(events, ev_index)
        self.history = history
        self._cursor = _Cursor(model, epoch)

    def _history_by_ordinal(self, history_rows: int) -> UpdateHistory:
        return self.history_between(0, self.n_epochs, max_rows=history_rows)

    # -- answers ---------------------------------------------------------------------------
    @property
    def epochs(self) -> range:
        """Every epoch that can be asked for: 0 (the initial buffer) … ``n_epochs``."""
        return range(self.n_epochs + 1)

    @property
    def first_seq(self) -> int | None:
        return self._first_seq

    @property
    def last_seq(self) -> int | None:
        return None if not self.n_updates else int(self._seq_before[self.n_epochs])

    def last_seq_at(self, epoch: int) -> int | None:
        """The seq of the last update visible at ``epoch`` (None: none, as at epoch 0)."""
        epoch = self._check_epoch(epoch)
        if not self._ordinal_before[epoch]:
            return None
        return int(self._seq_before[epoch])

    def line_of_epoch(self, epoch: int) -> int:
        """The line number of the sync line that made ``epoch`` visible (0 for epoch 0)."""
        self._check_epoch(epoch)
        return int(self._lines[epoch]) if epoch else 0

    def epoch_of_seq(self, seq: int) -> int:
        """The epoch at which update ``seq`` became visible (the first epoch whose
        updates include it or lie beyond it)."""
        e = bisect.bisect_left(self._seq_before, int(seq))
        return min(max(e, 1), self.n_epochs)

    def memory_bytes(self) -> int:
        """What the keyframes hold."""
        return sum(f.nbytes for f in self.keyframes.values())

    def _check_epoch(self, epoch: int) -> int:
        epoch = int(epoch)
        if not 0 <= epoch <= self.n_epochs:
            raise ValueError(f"epoch {epoch} is outside the trace (0 … {self.n_epochs})")
        return epoch

    def front_at(self, epoch: int) -> np.ndarray:
        """The front visible at ``epoch`` (read-only float32)."""
        epoch = self._check_epoch(epoch)
        with self._lock:
            cur = self._seek(epoch)
            self._replay_epochs(cur, epoch)
            front = cur.model.front
            front.setflags(write=False)
            return front

    def state_at_seq(self, seq: int) -> SeqState:
        """The back buffer right after update ``seq`` was applied (seq-precise scrubbing)."""
        seq = int(seq)
        if not self.n_updates:
            raise ValueError("the trace has no updates")
        lo, hi = self.first_seq, self.last_seq
        if not lo <= seq <= hi:
            raise ValueError(f"seq {seq} is outside the trace ({lo} … {hi})")
        # The last epoch whose preceding updates all have smaller seqs.
        e = bisect.bisect_left(self._seq_before, seq) - 1
        e = max(0, e)
        with self._lock:
            cur = self._seek(e)
            self._replay_epochs(cur, e)
            model = cur.model
            # Work on a copy: the cursor stays at the epoch boundary.
            work = self._new_model()
            work.back = back = model.back.copy()
            applied = None
            ordinal = int(self._ordinal_before[e])
            for rec in self._records_from(e, e + 1, batches=True):
                item = rec.item
                if isinstance(item, SyncMarker):
                    break
                if is_batch(item):
                    n = item.count
                    nums = (np.arange(ordinal + 1, ordinal + n + 1) if self.seq_kind == "ordinal"
                            else element_seqs(rec).astype(np.int64))
                    ordinal += n
                    k = int(np.searchsorted(nums, seq, side="right"))
                    if k:
                        scatter(work, item.flat[:k], item.values[:k])
                        applied = int(nums[k - 1])
                    if k < n:
                        break
                    continue
                ordinal += 1
                s = ordinal if self.seq_kind == "ordinal" else int(rec.seq)
                if s > seq:
                    break
                work.apply(item)
                applied = s
            back.setflags(write=False)
            return SeqState(back, e, applied)

    def records_of_epoch(self, epoch: int) -> list[TraceRecord]:
        """The records that became visible at ``epoch`` (its updates and its sync)."""
        epoch = self._check_epoch(epoch)
        if epoch == 0:
            return []
        return list(self._records_from(epoch - 1, epoch))

    def history_between(self, first_epoch: int, last_epoch: int,
                        max_rows: int = DEFAULT_HISTORY_ROWS) -> UpdateHistory:
        """An ``app.history.UpdateHistory`` of the updates made visible in epochs
        ``first_epoch+1 … last_epoch`` (at most ``max_rows`` rows), for the debug
        docks: rows (seq, producer, op, payload, epoch_visible) and, per sync line, a
        swap and a visible mark at its ``t`` (the last time the trace gave before it).
        Re-reads that part of the file."""
        first_epoch = self._check_epoch(first_epoch)
        last_epoch = self._check_epoch(last_epoch)
        h = UpdateHistory(fill=self.fill)
        events: list[Event] = []
        ordinal = int(self._ordinal_before[first_epoch])
        epoch = first_epoch
        n_rows = 0
        last_t = 0
        for rec in self._records_from(first_epoch, last_epoch, batches=True):
            item = rec.item
            last_t = _last_t(rec, last_t)
            if isinstance(item, SyncMarker):
                epoch += 1
                seq = int(self._seq_before[epoch])
                for kind in ("swap", "visible"):
                    events.append(Event(len(events), last_t, kind, max(seq, 0), 0, epoch, "", 0, ""))
                if n_rows >= max_rows:
                    break               # full: the rows so far, each with its epoch
                continue
            if is_batch(item):
                n = item.count
                seqs = (np.arange(ordinal + 1, ordinal + n + 1) if self.seq_kind == "ordinal"
                        else element_seqs(rec))
                ordinal += n
                for ev in batch_events(len(events), rec, seqs, epoch, self.shape, max_rows - n_rows):
                    events.append(ev)
                    n_rows += 1
                continue
            ordinal += 1
            if n_rows >= max_rows:
                continue
            seq = ordinal if self.seq_kind == "ordinal" else int(rec.seq)
            events.append(enqueue_event(len(events), rec, seq, epoch))
            n_rows += 1
        h.ingest(events, len(events))
        return h

    # -- replay from a keyframe -------------------------------------------------------------
    def _seek(self, epoch: int) -> _Cursor:
        """A cursor at or before ``epoch``: the nearest keyframe, or the last answer
        when it lies between that keyframe and ``epoch``."""
        kf = max((e for e in self.keyframes if e <= epoch), default=0)
        cur = self._cursor
        if cur is not None and kf <= cur.epoch <= epoch:
            return cur
        model = self._new_model()
        if kf:
            model.back = self.keyframes[kf].copy()
            model.front = self.keyframes[kf]
            model.epoch = kf
        self._cursor = _Cursor(model, kf)
        return self._cursor

    def _replay_epochs(self, cur: _Cursor, epoch: int) -> None:
        if cur.epoch == epoch:
            return
        model = cur.model
        idx: list = []
        vals: list = []
        reached = cur.epoch
        for rec in self._records_from(cur.epoch, epoch, batches=True):
            item = rec.item
            if isinstance(item, Set):
                idx.append(item.index)
                vals.append(item.value)
                continue
            if idx:
                model.set_many(np.asarray(idx, dtype=np.int64), np.asarray(vals, dtype=np.float32))
                idx, vals = [], []
            if isinstance(item, SyncMarker):
                reached += 1                # the front is copied once, at the end
            elif is_batch(item):
                scatter(model, item.flat, item.values)
            else:
                model.apply(item)
        if reached != cur.epoch:
            model.front = model.back.copy()
        cur.epoch = reached
        model.epoch = reached

    def _records_from(self, epoch: int, until_epoch: int,
                      batches: bool = False) -> Iterator[TraceRecord]:
        """The records after the sync of ``epoch`` up to and including the sync line
        of ``until_epoch`` (a synthesized one for the implicit final sync); with
        ``batches``, as ``TraceReader.batches`` gives them."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise TraceError(f"{self.path}: cannot reopen: {exc.strerror}") from None
        if (st.st_size, st.st_mtime_ns) != self._stat:
            raise TraceError(f"{self.path}: the file changed since it was opened; open it again")
        if until_epoch <= epoch:
            return
        syncs = 0
        want = until_epoch - epoch
        lineno = int(self._lines[epoch])
        with TraceReader(self.path, check_memory=False) as reader:
            reader.seek(int(self._offsets[epoch]), lineno)
            for rec in reader.records(expand=not batches):
                lineno = rec.line
                yield rec
                if isinstance(rec.item, SyncMarker):
                    syncs += 1
                    if syncs >= want:
                        return
        if syncs < want and self.implicit_final_sync:
            yield TraceRecord(SyncMarker(), lineno + 1)


def _last_t(rec: TraceRecord, last_t: int) -> int:
    """The last time (ns) the trace gave, up to and including ``rec``."""
    if isinstance(rec.item, SetRun):
        return _ns(float(rec.item.ts[-1]))
    return last_t if rec.t is None else _ns(rec.t)


def _ns(t: float) -> int:
    """A trace's ``t`` (seconds) in nanoseconds, as the history keeps times."""
    return int(t * 1e9)


__all__ = ["TraceIndex", "SeqState", "Cancelled", "DEFAULT_BUDGET_BYTES"]
