"""Perfetto / Chrome trace-event export (issue 9): the structure Perfetto needs
(every flow start has its end inside a slice, slices per track never overlap,
time never goes back on a track, the JSON reads back), the right arrows, from a
trace file and from a live manager's events, and ``export-perfetto`` on the CLI."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, defaultdict

import pytest

from app.cli import main as cli_main
from app.perfetto import SYNC_TID, WORKER_TID, trace_events_from_events, trace_events_from_trace

HEADER = {"format": "bufferscope-trace", "version": 1, "shape": [8, 8], "dtype": "float32", "fill": 0.0}
EPS = 1e-6


def write_trace(path, lines):
    path.write_text("\n".join(json.dumps(o) for o in [HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def enclosing(slices, ts):
    """The innermost X slice of ``slices`` that contains ``ts``."""
    found = [s for s in slices if s["ts"] < ts < s["ts"] + s["dur"]]
    return min(found, key=lambda s: s["dur"]) if found else None


def check_structure(doc, arrows_forward_in_time=True):
    """What Perfetto's JSON importer needs; returns (slices by tid, flow pairs by id)."""
    doc = json.loads(json.dumps(doc, allow_nan=False))   # plain JSON, no NaN
    events = doc["traceEvents"]
    named = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    slices: dict[int, list[dict]] = defaultdict(list)
    flows: dict[int, dict[str, dict]] = defaultdict(dict)
    for e in events:
        assert {"ph", "pid", "tid"} <= set(e), e
        if e["ph"] == "M":
            continue
        assert isinstance(e["ts"], (int, float)) and math.isfinite(e["ts"]) and e["ts"] >= 0, e
        assert e["tid"] in named, f"track {e['tid']} has no name"
        if e["ph"] == "X":
            assert e["dur"] > 0, e
            slices[e["tid"]].append(e)
        elif e["ph"] in "sf":
            assert e["ph"] not in flows[e["id"]], f"flow {e['id']} has two {e['ph']} events"
            flows[e["id"]][e["ph"]] = e
        else:
            assert e["ph"] == "i", e
    for tid, ss in slices.items():
        for a, b in zip(ss, ss[1:]):
            assert b["ts"] >= a["ts"], f"time goes back on track {tid}"
            assert b["ts"] >= a["ts"] + a["dur"] - EPS, f"slices overlap on track {tid}: {a} {b}"
    for fid, pair in flows.items():
        assert set(pair) == {"s", "f"}, f"flow {fid} is missing an end: {pair}"
        s, f = pair["s"], pair["f"]
        assert f.get("bp") == "e"
        assert enclosing(slices[s["tid"]], s["ts"]) is not None, f"flow {fid} starts outside a slice"
        assert enclosing(slices[f["tid"]], f["ts"]) is not None, f"flow {fid} ends outside a slice"
        if arrows_forward_in_time:
            assert f["ts"] >= s["ts"], f"flow {fid} goes back in time"
    return slices, flows


def test_trace_without_times_gets_an_order_clock_and_every_arrow(tmp_path):
    lines = [
        {"op": "fill", "region": [[0, 2], [0, 8]], "value": 1.0},
        {"op": "set", "index": [1, 1], "value": "nan"},
        {"op": "sync"},
        {"op": "write", "region": [[0, 1], [0, 2]], "data": [[1, 2]]},
        {"op": "add", "region": [[0, 8], [0, 8]], "value": 1},
        {"op": "scale", "region": [[0, 8], [0, 8]], "value": "-inf"},
        {"op": "sync"},
        {"op": "set", "index": [0, 0], "value": 3},   # made visible by replay's last sync
    ]
    doc = trace_events_from_trace(write_trace(tmp_path / "t.jsonl", lines))
    slices, flows = check_structure(doc)
    producers = [tid for tid in slices if tid not in (SYNC_TID, WORKER_TID)]
    assert len(producers) == 1
    assert len(slices[producers[0]]) == 6 and len(slices[WORKER_TID]) == 6
    syncs = slices[SYNC_TID]
    assert [s["args"]["epoch"] for s in syncs] == [1, 2, 3]
    assert [s["args"]["updates"] for s in syncs] == [2, 3, 1]
    assert len(flows) == 12
    # Each update: enqueue → its own apply → the sync that made it visible.
    by_line = {}
    for pair in flows.values():
        src = enclosing(slices[pair["s"]["tid"]], pair["s"]["ts"])
        dst = enclosing(slices[pair["f"]["tid"]], pair["f"]["ts"])
        by_line.setdefault(src["args"].get("line"), []).append((src, dst))
    for line, expected_epoch in [(2, 1), (3, 1), (5, 2), (6, 2), (7, 2), (9, 3)]:
        hops = {src["cat"]: (src, dst) for src, dst in by_line[line]}
        src, dst = hops["enqueue"]
        assert dst["cat"] == "apply" and dst["args"]["line"] == line
        src, dst = hops["apply"]
        assert src["args"]["line"] == line and dst["args"]["epoch"] == expected_epoch
    # The synthesized clock follows the order of the lines.
    enq = slices[producers[0]]
    assert [e["args"]["line"] for e in sorted(enq, key=lambda e: e["ts"])] == [2, 3, 5, 6, 7, 9]


def test_trace_times_seqs_and_producers_are_used(tmp_path):
    lines = []
    for k in range(12):
        lines.append({"op": "set", "index": [k % 8, 0], "value": k, "seq": 100 + k,
                      "producer": "AB"[k % 2], "t": 50.0 + k * 0.001})
        if k % 4 == 3:
            lines.append({"op": "sync", "t": 50.0 + k * 0.001 + 0.0005})
    doc = trace_events_from_trace(write_trace(tmp_path / "t.jsonl", lines))
    slices, flows = check_structure(doc)
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    tid = {v: k for k, v in names.items()}
    assert "producer A" in tid and "producer B" in tid
    a = slices[tid["producer A"]]
    assert [e["args"]["seq"] for e in a] == [100, 102, 104, 106, 108, 110]
    assert "#100" in a[0]["name"]
    # t is seconds: 1 ms apart -> 1000 µs apart, from the first event.
    assert a[0]["ts"] == pytest.approx(0.0) and a[1]["ts"] == pytest.approx(2000.0)
    assert [s["ts"] for s in slices[SYNC_TID]] == pytest.approx([3500.0, 7500.0, 11500.0])
    assert len(flows) == 24


def test_an_empty_trace_exports(tmp_path):
    doc = trace_events_from_trace(write_trace(tmp_path / "t.jsonl", []))
    check_structure(doc)


def test_events_of_a_live_manager():
    from conftest import require_backend

    from app import Fill, Set, open_manager

    require_backend("c")
    with open_manager("c", (16, 16)) as m:
        # All alive at once: a finished thread's id may be reused by the next one,
        # and the manager names producers by thread id.
        barrier = threading.Barrier(3)

        def producer(k):
            barrier.wait()
            for i in range(20):
                m.enqueue(Set((k, i % 16), float(i)))
            barrier.wait()

        threads = [threading.Thread(target=producer, args=(k,), name=f"prod-{k}") for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        m.synchronize(timeout=10)
        m.enqueue(Fill(((0, 4), (0, 4)), 2.0))
        m.set_many([[1, 1], [2, 2], [3, 3]], [1.0, 2.0, 3.0])
        m.synchronize(timeout=10)
        events, _ = m.events()
    kinds = Counter(e.kind for e in events)
    assert kinds["visible"] == 2
    doc = trace_events_from_events(events)
    slices, flows = check_structure(doc, arrows_forward_in_time=False)
    track_names = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert {"producer prod-0", "producer prod-2", "producer MainThread"} <= track_names
    assert len(slices[SYNC_TID]) == 2
    assert len(slices[WORKER_TID]) == kinds["apply"]
    producer_slices = sum(len(v) for k, v in slices.items() if k not in (SYNC_TID, WORKER_TID))
    assert producer_slices == kinds["enqueue"]
    # Every applied update is linked to its enqueue and to the sync that showed it.
    hops = Counter(enclosing(slices[p["s"]["tid"]], p["s"]["ts"])["cat"] for p in flows.values())
    assert hops["enqueue"] == kinds["enqueue"] and hops["apply"] == kinds["apply"]
    assert trace_events_from_events([])["traceEvents"]


def test_export_perfetto_on_the_command_line(tmp_path, capsys):
    path = write_trace(tmp_path / "t.jsonl", [{"op": "set", "index": [0, 0], "value": 1}, {"op": "sync"}])
    out = tmp_path / "trace.json"
    assert cli_main(["export-perfetto", str(path), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    check_structure(doc)
    assert doc["traceEvents"] == json.loads(json.dumps(trace_events_from_trace(path)))["traceEvents"]


@pytest.mark.parametrize("lines,raw,line", [
    ([{"op": "set", "index": [0, 0], "value": 1}], '{"op": "fill"', 3),
    ([{"op": "set", "index": [9, 0], "value": 1}], None, 2),
    ([{"op": "set", "index": [0, 0], "value": 1, "t": "noon"}], None, 2),
    ([{"op": "set", "index": [0, 0], "value": 1, "seq": -4}], None, 2),
    ([{"op": "set", "index": [0, 0], "value": 1, "producer": 7}], None, 2),
])
def test_export_perfetto_refuses_a_bad_trace(tmp_path, capsys, lines, raw, line):
    path = write_trace(tmp_path / "t.jsonl", lines)
    if raw is not None:
        with open(path, "a") as fh:
            fh.write(raw + "\n")
    out = tmp_path / "trace.json"
    assert cli_main(["export-perfetto", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"line {line}:" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
