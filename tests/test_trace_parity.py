"""The C library and the Python backends record the same session as the same trace
(ops, seqs, epochs): a sync line stands for a swap, a timed-out synchronize writes
none; and a ``set_many`` recorded on any backend replays bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import app
from app import Add, Fill, Scale, Set, Write
from app.reference import ReferenceModel
from app.trace import SyncMarker, open_trace, read_trace, replay
from app.trace_codec import SetMany
from tests.conftest import backend_param

SHAPE = (6, 7)
BACKENDS3 = ["c", "gl", "numpy"]


@pytest.fixture(params=BACKENDS3)
def any_backend(request) -> str:
    return backend_param(request)


def _session(m, rng) -> list[np.ndarray]:
    """A scripted session; the fronts it saw, one per epoch."""
    fronts = []

    def sync(**kw):
        m.synchronize(**kw)
        fronts.append(m.front().copy())

    m.enqueue(Fill(((0, 3), (0, 7)), 1.5))
    idx = np.stack([rng.integers(0, n, 50) for n in SHAPE], axis=1)
    m.set_many(idx, rng.standard_normal(50).astype(np.float32))
    sync(timeout=30)
    m.pause()
    m.enqueue(Set((5, 6), float("nan")))
    m.set_many(idx[:5], np.arange(5, dtype=np.float32))
    with pytest.raises(TimeoutError):
        m.synchronize(timeout=0.05)          # paused: times out, nothing swapped
    with pytest.raises(TimeoutError):
        m.synchronize(timeout=0)
    m.resume()
    sync(timeout=30)
    m.enqueue(Add(((1, 4), (2, 5)), -0.25))
    m.enqueue(Write(((4, 6), (0, 2)), np.array([[1, 2], [3, float("inf")]], np.float32)))
    m.enqueue(Write(((2, 2), (0, 7)), np.zeros((0, 7), np.float32)))   # an empty write
    m.enqueue(Scale(((0, 6), (0, 0)), 3.0))                              # an empty scale
    sync(timeout=30)
    sync(timeout=30)                          # nothing new: an epoch all the same
    m.set_many(np.zeros((0, 2), np.int64), np.zeros(0, np.float32))    # nothing at all
    m.enqueue(Set((0, 0), -0.0))
    return fronts


def _shape_of(rec):
    u = rec.item
    if isinstance(u, SyncMarker):
        return ("sync",)
    payload = u.index if isinstance(u, Set) else u.region
    return (u.op, rec.seq, tuple(payload))


def _record(backend, path, seed=3):
    with app.open_manager(backend, SHAPE, trace=str(path)) as m:
        fronts = _session(m, np.random.default_rng(seed))
    return fronts


def test_c_and_python_backends_write_the_same_trace(tmp_path, any_backend):
    ref_fronts = _record("c", tmp_path / "c.jsonl")
    fronts = _record(any_backend, tmp_path / "x.jsonl")
    for a, b in zip(ref_fronts, fronts):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    c = read_trace(tmp_path / "c.jsonl")
    x = read_trace(tmp_path / "x.jsonl")
    assert [_shape_of(r) for r in c.records] == [_shape_of(r) for r in x.records]
    assert sum(isinstance(r.item, SyncMarker) for r in c.records) == len(fronts) == 4
    # Each sync line is an epoch the program saw: replay gives every front.
    model = ReferenceModel(SHAPE)
    seen = []
    for rec in x.records:
        if isinstance(rec.item, SyncMarker):
            model.synchronize()
            seen.append(model.front.copy())
        else:
            model.apply(rec.item)
    for a, b in zip(seen, fronts):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_set_many_is_one_compact_line_and_replays_bit_for_bit(tmp_path, any_backend):
    rng = np.random.default_rng(7)
    n = 20_000
    idx = np.stack([rng.integers(0, s, n) for s in SHAPE], axis=1)
    vals = rng.standard_normal(n).astype(np.float32)
    vals[:4] = [np.nan, np.inf, -np.inf, -0.0]
    path = tmp_path / "t.jsonl"
    with app.open_manager(any_backend, SHAPE, trace=str(path)) as m:
        seqs = m.set_many(idx, vals)
        m.synchronize(timeout=60)
        front = m.front().copy()
    lines = path.read_text().splitlines()
    assert all('"op": "set_many"' in ln for ln in lines[1:-1]), "one set_many line per chunk"
    with open_trace(path) as r:
        batches = [rec for rec in r.batches() if not isinstance(rec.item, SyncMarker)]
    assert all(isinstance(rec.item, SetMany) for rec in batches)
    assert sum(rec.item.count for rec in batches) == n
    assert [rec.seq for rec in batches][0] == int(np.asarray(seqs).reshape(-1)[0])
    # Expanded, the seqs are contiguous, one per element, in array order.
    recs = [rec for rec in read_trace(path).records if not isinstance(rec.item, SyncMarker)]
    assert [rec.seq for rec in recs] == list(range(recs[0].seq, recs[0].seq + n))
    got = np.array([rec.item.index for rec in recs])
    np.testing.assert_array_equal(got, idx)
    ref = ReferenceModel(SHAPE)
    ref.set_many(idx, vals)
    ref.synchronize()
    np.testing.assert_array_equal(front.view(np.uint32), ref.front.view(np.uint32))
    for target in BACKENDS3:
        if app.why_not(target):
            continue
        with open_trace(path) as reader, app.open_manager(target, SHAPE) as m2:
            assert replay(reader, m2, timeout=60) == n
            np.testing.assert_array_equal(m2.front().view(np.uint32), ref.front.view(np.uint32))
