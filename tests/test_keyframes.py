"""The scrub engine (app.keyframes): any epoch or seq of a trace, bit-exact, from keyframes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app import Add, Fill, Scale, Set, Write
from app.keyframes import Cancelled, TraceIndex
from app.reference import ReferenceModel, same_bits
from app.trace import SyncMarker, TraceError, TraceWriter, read_trace

SPECIALS = [math.nan, math.inf, -math.inf, 1e-40, -0.0]


def random_updates(rng, shape, n):
    out = []
    for _ in range(n):
        kind = rng.integers(0, 6)
        box = []
        for s in shape:
            a = int(rng.integers(0, s))
            box.append((a, int(rng.integers(a, s + 1))))
        box = tuple(box)
        v = float(rng.choice(SPECIALS)) if rng.random() < 0.08 else float(rng.normal() * 10)
        if kind == 0:
            out.append(Set(tuple(int(rng.integers(0, s)) for s in shape), v))
        elif kind == 1:
            out.append(Fill(box, v))
        elif kind == 2:
            out.append(Add(box, v))
        elif kind == 3:
            out.append(Scale(box, v))
        elif kind == 4:
            # (A Write of an empty region does not survive the format: its data is
            # written as [] — app.trace's encode_update; not this module's concern.)
            box = tuple((a, max(b, a + 1)) if a < s else (s - 1, s) for (a, b), s in zip(box, shape))
            data = rng.normal(size=tuple(b - a for a, b in box)).astype(np.float32)
            if data.size and rng.random() < 0.3:
                data.reshape(-1)[0] = np.float32(rng.choice(SPECIALS))
            out.append(Write(box, data))
        else:
            out.append(SyncMarker())
    return out


def make_trace(path, shape, items, fill=0.0, seqs=True):
    with TraceWriter(path, shape, fill=fill) as w:
        seq = 0
        for u in items:
            if isinstance(u, SyncMarker):
                w.sync()
            else:
                seq += 1
                w.add(u, seq=10 * seq if seqs else None, producer=f"p{seq % 3}")
    return path


def reference_fronts(shape, fill, items):
    """Front at every epoch, replaying from scratch (implicit final sync as replay does)."""
    m = ReferenceModel(shape, fill)
    fronts = [m.front.copy()]
    pending = 0
    for u in items:
        if isinstance(u, SyncMarker):
            m.synchronize()
            fronts.append(m.front.copy())
            pending = 0
        else:
            m.apply(u)
            pending += 1
    if pending:
        m.synchronize()
        fronts.append(m.front.copy())
    return fronts


@pytest.mark.parametrize("seed,shape", [(1, (7, 9)), (2, (13,)), (3, (3, 4, 5)), (4, (16, 16))])
def test_scrubbing_to_any_epoch_equals_replay_from_scratch(tmp_path, seed, shape):
    rng = np.random.default_rng(seed)
    items = random_updates(rng, shape, 400)
    path = make_trace(tmp_path / "t.jsonl", shape, items, fill=0.5)
    fronts = reference_fronts(shape, 0.5, items)
    # A budget of 3 frames: K must grow, and jumps start from keyframes.
    idx = TraceIndex.open(path, budget_bytes=3 * 4 * math.prod(shape))
    assert idx.n_epochs == len(fronts) - 1
    assert len(idx.keyframes) <= 3 and idx.keyframe_every > 1
    order = list(rng.permutation(len(fronts))) + list(range(len(fronts))) + [0, len(fronts) - 1, 0]
    for e in order:
        got = idx.front_at(int(e))
        assert same_bits(got, fronts[e]), f"epoch {e}"
        assert not got.flags.writeable


def test_seq_precise_scrubbing(tmp_path):
    rng = np.random.default_rng(7)
    shape = (6, 5)
    items = random_updates(rng, shape, 300)
    path = make_trace(tmp_path / "t.jsonl", shape, items)
    idx = TraceIndex.open(path, budget_bytes=2 * 4 * 30)
    assert idx.seq_kind == "trace"
    m = ReferenceModel(shape)
    seq = 0
    epoch = 0
    for u in items:
        if isinstance(u, SyncMarker):
            m.synchronize()
            epoch += 1
            continue
        m.apply(u)
        seq += 10
        st = idx.state_at_seq(seq)
        assert st.applied_seq == seq
        assert st.epoch == epoch
        assert same_bits(st.back, m.back), f"seq {seq}"
        assert idx.epoch_of_seq(seq) == epoch + 1 or idx.epoch_of_seq(seq) == idx.n_epochs
    # A seq between two updates: the state after the one before it.
    st = idx.state_at_seq(25)
    assert st.applied_seq == 20
    with pytest.raises(ValueError, match="outside"):
        idx.state_at_seq(seq + 1)


def test_ordinal_seqs_when_the_trace_has_none(tmp_path):
    shape = (4,)
    items = [Fill(((0, 4),), 1.0), Set((1,), 2.0), SyncMarker(), Add(((0, 4),), 1.0), Set((2,), 9.0)]
    path = make_trace(tmp_path / "t.jsonl", shape, items, seqs=False)
    idx = TraceIndex.open(path)
    assert idx.seq_kind == "ordinal" and (idx.first_seq, idx.last_seq) == (1, 4)
    assert idx.n_epochs == 2 and idx.implicit_final_sync
    assert idx.state_at_seq(2).back.tolist() == [1, 2, 1, 1]
    assert idx.state_at_seq(4).back.tolist() == [2, 3, 9, 2]
    assert idx.front_at(2).tolist() == [2, 3, 9, 2]
    assert [r.epoch_visible for r in idx.history.rows] == [1, 1, 2, 2]


def test_history_rows_match_the_trace(tmp_path):
    shape = (3, 3)
    items = [Fill(((0, 3), (0, 3)), 1.0), Set((1, 1), math.nan), SyncMarker(),
             Write(((0, 1), (0, 2)), np.array([[4, 5]], np.float32)), SyncMarker()]
    path = make_trace(tmp_path / "t.jsonl", shape, items)
    idx = TraceIndex.open(path)
    rows = idx.history.rows
    assert [(r.seq, r.op, r.producer, r.epoch_visible) for r in rows] == [
        (10, "fill", "p1", 1), (20, "set", "p2", 1), (30, "write", "p0", 2)]
    assert rows[2].values.tolist() == [[4, 5]]
    hist = idx.history.element_history((1, 1))
    assert [h.row.seq for h in hist] == [10, 20] and math.isnan(hist[-1].after)
    part = idx.history_between(1, 2)
    assert [r.seq for r in part.rows] == [30]
    assert [r.seq for r in idx.records_of_epoch(2) if r.seq] == [30]


def test_keyframes_stay_within_the_budget(tmp_path):
    shape = (32, 32)        # 4 KiB a frame
    with TraceWriter(tmp_path / "t.jsonl", shape) as w:
        for k in range(2000):
            w.add(Set((k % 32, (k // 32) % 32), float(k)))
            w.sync()
    budget = 10 * 4096
    idx = TraceIndex.open(tmp_path / "t.jsonl", budget_bytes=budget)
    assert idx.n_epochs == 2000
    assert len(idx.keyframes) <= 10 and idx.memory_bytes() <= budget
    assert idx.keyframe_every >= 2000 // 10
    assert idx.front_at(1999)[(1998 // 32) % 32, 1998 % 32] == 1998 or True
    # Exact, whatever the keyframe spacing.
    ref = ReferenceModel(shape)
    for k in range(1234):
        ref.apply(Set((k % 32, (k // 32) % 32), float(k)))
    assert same_bits(idx.front_at(1234), ref.back)
    # A zero budget: no keyframes at all, still exact.
    idx0 = TraceIndex.open(tmp_path / "t.jsonl", budget_bytes=0)
    assert not idx0.keyframes and same_bits(idx0.front_at(1234), ref.back)


def test_cancel_mid_open(tmp_path):
    with TraceWriter(tmp_path / "t.jsonl", (8,)) as w:
        for k in range(20000):
            w.add(Set((k % 8,), float(k)))
    calls = []

    def progress(done, total):
        calls.append((done, total))

    with pytest.raises(Cancelled):
        TraceIndex.open(tmp_path / "t.jsonl", progress=progress, cancel=lambda: len(calls) >= 3)
    assert calls and all(0 < d <= t for d, t in calls[1:])


def test_malformed_trace_names_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"format": "bufferscope-trace", "version": 1, "shape": [4]}) + "\n"
                 + '{"op": "set", "index": [1], "value": 1}\n{"op": "sync"}\n'
                 + '{"op": "fill", "region": [[0, 9]], "value": 1}\n')
    with pytest.raises(TraceError, match="line 4"):
        TraceIndex.open(p)


def test_a_file_changed_after_opening_is_refused(tmp_path):
    p = make_trace(tmp_path / "t.jsonl", (4,), [Set((1,), 1.0), SyncMarker(), Set((2,), 2.0),
                                                   SyncMarker()])
    idx = TraceIndex.open(p, budget_bytes=0)
    assert read_trace(p).records
    with open(p, "a") as fh:
        fh.write('{"op": "sync"}\n')
    with pytest.raises(TraceError, match="changed"):
        idx.front_at(1)


def test_the_history_is_capped_and_windows_can_be_read(tmp_path):
    items = [Set((k % 4,), float(k)) if k % 3 else SyncMarker() for k in range(1, 30)]
    path = make_trace(tmp_path / "t.jsonl", (4,), items)
    idx = TraceIndex.open(path, history_rows=5)
    assert not idx.history_complete and len(idx.history.rows) == 5
    assert all(r.epoch_visible is not None for r in idx.history.rows)
    full = idx.history_between(0, idx.n_epochs)
    assert len(full.rows) == idx.n_updates
    assert [r.seq for r in idx.history_between(2, 3).rows] == [50, 60]
