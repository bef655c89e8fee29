"""Chrome/Perfetto trace-event JSON (``bufferscope export-perfetto``, SPEC §6, §7).

The output is the "Trace Event Format" that ui.perfetto.dev and chrome://tracing
open: ``{"traceEvents": [...]}`` with, in one process,

* a track (``tid``) per producer, one for the worker and one for synchronizations,
  each named by ``M`` metadata events (``thread_name``, ``thread_sort_index``);
* per update an ``X`` (complete) slice *enqueue* on its producer's track and an
  ``X`` slice *apply* on the worker track; per synchronization an ``X`` slice
  *sync → epoch N* on the sync track;
* flow arrows (``s`` → ``f`` with ``bp: "e"``) enqueue → apply and apply →
  visible (the sync slice that made the update visible).

Timestamps are microseconds from the first event. Two sources:

``trace_events_from_trace(path)``
    A trace file (SPEC §5). Its lines hold at most one time, ``t`` (seconds),
    when the update was enqueued; without ``t`` the clock is synthesized from
    the order of the lines (one microsecond per line). The worker's apply times
    are not in a trace file: each apply is drawn right after its enqueue, in
    order, and each sync right after the last apply before it — the order is
    exact, the durations are nominal. ``producer`` names the track (``main``
    when absent), ``seq`` labels the slices.
``trace_events_from_events(events)``
    A live manager's ordering events (``app.manager.Event``, SPEC §4), with their
    real monotonic times: enqueue and apply slices per event (a ``set_many``
    chunk is one slice of ``count`` updates), a sync slice from sync-begin to
    visible, swaps and catch-ups as instant events.

Within a track, slices never overlap and their ``ts`` never decreases: a slice
that would start before the previous one on its track ends is moved after it.
``write_perfetto`` streams a trace file to an output file atomically.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections.abc import Iterable, Iterator

from .atomic import atomic_open
from .manager import Event
from .trace import SyncMarker, TraceReader, TraceRecord, encode_value
from .updates import Set, Write

PID = 1
SYNC_TID = 1
WORKER_TID = 2
FIRST_PRODUCER_TID = 10
#: The duration given to a slice whose real duration is not known (µs).
NOMINAL_US = 1.0
#: The shortest slice drawn (µs), so that flow ends always fall inside one.
MIN_US = 0.001
DEFAULT_PRODUCER = "main"


class _Builder:
    """Emits trace events in order; keeps every track monotonic and non-overlapping."""

    def __init__(self, process_name: str) -> None:
        self.out: list[dict] = []
        self._tids: dict[str, int] = {}
        self._end: dict[int, float] = {}   # tid -> end of its last slice
        self._next_flow = 1
        self.out.append({"ph": "M", "pid": PID, "tid": 0, "name": "process_name",
                         "args": {"name": process_name}})
        self._name_track(SYNC_TID, "sync / epoch", 0)
        self._name_track(WORKER_TID, "worker (apply)", 1)

    def _name_track(self, tid: int, name: str, order: int) -> None:
        self.out.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": {"name": name}})
        self.out.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index",
                         "args": {"sort_index": order}})

    def producer_tid(self, producer: str) -> int:
        tid = self._tids.get(producer)
        if tid is None:
            tid = self._tids[producer] = FIRST_PRODUCER_TID + len(self._tids)
            self._name_track(tid, f"producer {producer}", 2 + len(self._tids))
        return tid

    def slice(self, tid: int, ts: float, dur: float, name: str, cat: str, args: dict) -> tuple[float, float]:
        """An X slice at ``ts`` or, if the track is busy then, right after; returns (start, dur)."""
        start = max(ts, self._end.get(tid, -math.inf))
        dur = max(dur, MIN_US)
        self._end[tid] = start + dur
        self.out.append({"ph": "X", "pid": PID, "tid": tid, "ts": start, "dur": dur,
                         "name": name, "cat": cat, "args": args})
        return start, dur

    def end_of(self, tid: int) -> float:
        return self._end.get(tid, -math.inf)

    def instant(self, tid: int, ts: float, name: str, cat: str, args: dict) -> None:
        ts = max(ts, self._end.get(tid, -math.inf))
        self.out.append({"ph": "i", "s": "t", "pid": PID, "tid": tid, "ts": ts, "name": name,
                         "cat": cat, "args": args})

    def flow_start(self, tid: int, ts: float, name: str) -> int:
        fid = self._next_flow
        self._next_flow += 1
        self.out.append({"ph": "s", "pid": PID, "tid": tid, "ts": ts, "id": fid, "name": name,
                         "cat": "flow"})
        return fid

    def flow_end(self, fid: int, tid: int, ts: float, name: str) -> None:
        self.out.append({"ph": "f", "bp": "e", "pid": PID, "tid": tid, "ts": ts, "id": fid,
                         "name": name, "cat": "flow"})

    def take(self) -> list[dict]:
        out, self.out = self.out, []
        return out


def _inside(start: float, dur: float) -> float:
    """The middle of a slice: where a flow arrow leaves or lands (never on a boundary
    two adjacent slices share, so the arrow binds to exactly one)."""
    return start + dur / 2


def _record_args(rec: TraceRecord) -> tuple[str, dict]:
    u = rec.item
    args: dict = {"line": rec.line}
    if rec.seq is not None:
        args["seq"] = rec.seq
    if rec.producer is not None:
        args["producer"] = rec.producer
    if isinstance(u, Set):
        args["index"] = list(u.index)
        args["value"] = encode_value(float(u.value))
    elif isinstance(u, Write):
        args["region"] = [list(p) for p in u.region]
        args["elements"] = int(u.data.size)
    else:
        args["region"] = [list(p) for p in u.region]
        args["value"] = encode_value(float(u.value))
    label = u.op if rec.seq is None else f"{u.op} #{rec.seq}"
    return label, args


def _events_from_records(reader: TraceReader) -> Iterator[dict]:
    b = _Builder(f"bufferscope trace {os.path.basename(reader.path)}")
    yield from b.take()
    t0: float | None = None
    clock = 0.0                       # µs; the synthesized (or last real) time
    pending: list[int] = []           # apply→visible flows waiting for their sync
    epoch = 0
    applied = 0

    def visible(ts: float, final: bool) -> None:
        nonlocal epoch, pending
        epoch += 1
        start = max(ts, b.end_of(WORKER_TID))
        name = f"sync → epoch {epoch}" + (" (end of trace)" if final else "")
        s, d = b.slice(SYNC_TID, start, NOMINAL_US, name, "sync",
                       {"epoch": epoch, "updates": len(pending)})
        for fid in pending:
            b.flow_end(fid, SYNC_TID, _inside(s, d), "apply → visible")
        pending = []

    for rec in reader:
        if rec.t is not None:
            t_us = rec.t * 1e6
            if t0 is None:
                t0 = t_us - clock
            clock = max(clock, t_us - t0)
        else:
            clock += NOMINAL_US
        if isinstance(rec.item, SyncMarker):
            visible(clock, final=False)
        else:
            applied += 1
            label, args = _record_args(rec)
            ptid = b.producer_tid(rec.producer or DEFAULT_PRODUCER)
            es, ed = b.slice(ptid, clock, NOMINAL_US, f"enqueue {label}", "enqueue", args)
            fid = b.flow_start(ptid, _inside(es, ed), "enqueue → apply")
            a_s, a_d = b.slice(WORKER_TID, es + ed, NOMINAL_US, f"apply {label}", "apply", args)
            b.flow_end(fid, WORKER_TID, _inside(a_s, a_d), "enqueue → apply")
            pending.append(b.flow_start(WORKER_TID, _inside(a_s, a_d), "apply → visible"))
        yield from b.take()
    if pending or epoch == 0:
        visible(clock + NOMINAL_US, final=True)   # replay synchronizes once at the end
    yield from b.take()


def trace_events_from_trace(path: str | os.PathLike) -> dict:
    """The trace file at ``path`` as a Chrome trace-event dict (``traceEvents``).

    Raises ``app.trace.TraceError`` naming the line of a malformed trace. The
    trace's buffer is never allocated, so its size is not checked against memory.
    """
    with TraceReader(path, check_memory=False) as reader:
        return {"traceEvents": list(_events_from_records(reader)), "displayTimeUnit": "ns",
                "otherData": {"source": os.fspath(path), "shape": list(reader.shape)}}


def trace_events_from_events(events: Iterable[Event], producer_names: dict | None = None) -> dict:
    """A live manager's ordering events (``m.events()[0]``) as a Chrome trace-event dict.

    ``producer`` fields name the tracks (``producer_names`` may map them to other
    names). Events are taken in ``index`` order. An enqueue whose updates are
    never applied in ``events`` has no arrow; an apply never made visible has an
    arrow only from its enqueue.
    """
    evs = sorted(events, key=lambda e: e.index)
    b = _Builder("bufferscope session")
    if not evs:
        return {"traceEvents": b.take(), "displayTimeUnit": "ns"}
    t0 = min(e.t_ns for e in evs)
    names = producer_names or {}
    starts: list[int] = []                    # first seq of each enqueue, sorted
    enq_flow: dict[int, tuple[int, int] | None] = {}   # first seq -> (flow id, count) until applied
    waiting: list[tuple[int, int]] = []       # (last seq, apply→visible flow id)
    sync_begins: list[float] = []             # times of syncs not yet visible

    def us(e: Event) -> float:
        return (e.t_ns - t0) / 1000.0

    for e in evs:
        ts = us(e)
        if e.kind == "enqueue":
            producer = names.get(e.producer, e.producer) or DEFAULT_PRODUCER
            tid = b.producer_tid(str(producer))
            s, d = b.slice(tid, ts, NOMINAL_US, f"enqueue {e.op} #{e.seq}" + (
                f" (+{e.count - 1})" if e.count > 1 else ""), "enqueue",
                {"seq": e.seq, "count": e.count, "op": e.op, "epoch": e.epoch})
            bisect.insort(starts, e.seq)
            enq_flow[e.seq] = (b.flow_start(tid, _inside(s, d), "enqueue → apply"), e.count)
        elif e.kind == "apply":
            s, d = b.slice(WORKER_TID, ts, NOMINAL_US, f"apply {e.op} #{e.seq}" + (
                f" (+{e.count - 1})" if e.count > 1 else ""), "apply",
                {"seq": e.seq, "count": e.count, "op": e.op, "slot": e.slot, "epoch": e.epoch})
            k = bisect.bisect_right(starts, e.seq) - 1
            if k >= 0:
                first = starts[k]
                entry = enq_flow.get(first)
                if entry is not None and e.seq < first + entry[1]:
                    b.flow_end(entry[0], WORKER_TID, _inside(s, d), "enqueue → apply")
                    enq_flow[first] = None
            waiting.append((e.seq + max(e.count, 1) - 1,
                            b.flow_start(WORKER_TID, _inside(s, d), "apply → visible")))
        elif e.kind == "sync-begin":
            sync_begins.append(ts)
        elif e.kind == "visible":
            begin = min(sync_begins) if sync_begins else ts
            sync_begins = []
            s, d = b.slice(SYNC_TID, begin, ts - begin, f"sync → epoch {e.epoch}", "sync",
                           {"epoch": e.epoch, "visible_seq": e.seq, "front_slot": e.slot})
            done = [fid for last, fid in waiting if last <= e.seq]
            waiting = [(last, fid) for last, fid in waiting if last > e.seq]
            for fid in done:
                b.flow_end(fid, SYNC_TID, _inside(s, d), "apply → visible")
        elif e.kind == "swap":
            b.instant(SYNC_TID, ts, f"swap → front slot {e.slot}", "sync", {"epoch": e.epoch})
        elif e.kind == "catch-up":
            b.instant(WORKER_TID, ts, "catch-up", "apply", {"seq": e.seq, "count": e.count})
    out = b.take()
    # A flow start whose end never came would dangle: drop it.
    ended = {ev["id"] for ev in out if ev["ph"] == "f"}
    out = [ev for ev in out if ev["ph"] != "s" or ev["id"] in ended]
    return {"traceEvents": out, "displayTimeUnit": "ns"}


def write_perfetto(trace_path: str | os.PathLike, out: str | os.PathLike) -> int:
    """Convert the trace file at ``trace_path`` into ``out``, streaming and atomically
    (nothing at ``out`` unless the whole trace was valid). Returns the number of
    events written. Raises TraceError (naming the line) or OSError."""
    n = 0
    with TraceReader(trace_path, check_memory=False) as reader, atomic_open(out, "w") as fh:
        fh.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
        for ev in _events_from_records(reader):
            fh.write((",\n" if n else "") + json.dumps(ev, separators=(",", ":"), allow_nan=False))
            n += 1
        fh.write("\n]}\n")
    return n


__all__ = ["trace_events_from_trace", "trace_events_from_events", "write_perfetto"]
