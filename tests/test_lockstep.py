"""Lockstep (app.lockstep): one stream on two backends, fronts compared bit for bit per epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import app
from app import Add, Fill, Set, Write
from app.keyframes import Cancelled
from app.lockstep import differing, records_of, run_lockstep
from app.trace import SyncMarker, TraceRecord, TraceWriter
from tests.conftest import require_backend
from tests.test_keyframes import make_trace, random_updates


def test_identical_backends_are_proved_identical(tmp_path):
    rng = np.random.default_rng(3)
    items = random_updates(rng, (9, 7), 300)
    path = make_trace(tmp_path / "t.jsonl", (9, 7), items)
    res = run_lockstep(path, ("c", "numpy"))
    n = sum(isinstance(u, SyncMarker) for u in items) + (not isinstance(items[-1], SyncMarker))
    assert res.identical and res.epochs == n
    assert res.summary().startswith(f"epochs 1–{n} identical on c and numpy")
    assert "subnormals flushed to zero are tolerated" in res.summary()
    assert not np.any(res.abs_difference())


def test_c_and_gl_agree(tmp_path, qapp):
    require_backend("gl")
    rng = np.random.default_rng(4)
    items = random_updates(rng, (16, 16), 200)
    path = make_trace(tmp_path / "t.jsonl", (16, 16), items)
    res = run_lockstep(path, ("c", "gl"))
    assert res.identical, res.summary()
    assert "identical on c and gl" in res.summary()


class Perturbing:
    """A test-only manager wrapper: after the ``nth`` update it enqueues one extra Add
    on ``index`` — a planted difference in one element's value."""

    def __init__(self, inner, nth: int, index: tuple[int, ...], delta: float = 0.25) -> None:
        self.inner, self.nth, self.index, self.delta = inner, nth, index, delta
        self.seen = 0

    def enqueue_many(self, updates):
        out = []
        for u in updates:
            out.append(u)
            self.seen += 1
            if self.seen == self.nth:
                out.append(Add(tuple((i, i + 1) for i in self.index), self.delta))
        return self.inner.enqueue_many(out)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_planted_difference_names_the_element_and_the_update(tmp_path):
    shape = (6, 8)
    with TraceWriter(tmp_path / "t.jsonl", shape) as w:
        w.add(Fill(((0, 6), (0, 8)), 1.0), seq=1, producer="main")
        w.sync()
        w.add(Set((0, 0), 4.0), seq=2, producer="p1")
        w.sync()
        w.add(Add(((2, 4), (3, 6)), 1.0), seq=3, producer="p2")     # the 4th update: perturbed after
        w.add(Set((0, 1), math.nan), seq=4, producer="p1")
        w.add(Write(((3, 5), (0, 2)), np.ones((2, 2), np.float32)), seq=5, producer="p1")
        w.add(Fill(((5, 6), (0, 8)), 2.0), seq=6, producer="p3")        # 3rd: not perturbed
        w.sync()
        w.add(Set((1, 1), 3.0), seq=7, producer="p1")
        w.sync()

    def opener(name, shape, fill=0.0):
        m = app.open_manager(name, shape, fill=fill)
        return Perturbing(m, nth=3, index=(2, 4)) if name == "numpy" else m

    res = run_lockstep(tmp_path / "t.jsonl", ("c", "numpy"), opener=opener)
    d = res.difference
    assert d is not None and d.epoch == 3 and d.index == (2, 4) and d.count == 1
    assert (d.a, d.b) == (2.0, 2.25)
    assert (d.writer.seq, d.writer.item.op, d.writer.producer, d.writer.line) == (3, "add", "p2", 6)
    text = res.summary()
    assert "epochs 1–2 identical" in text and "(2, 4)" in text and "seq 3 (add by p2, line 6)" in text
    diff = res.abs_difference()
    assert diff[2, 4] == pytest.approx(0.25) and np.count_nonzero(diff) == 1


def test_a_difference_in_an_element_never_written_names_the_fill():
    recs = [TraceRecord(Set((0,), 1.0), 2, seq=1), TraceRecord(SyncMarker(), 3)]

    def opener(name, shape, fill=0.0):
        m = app.open_manager(name, shape, fill=fill)
        return Perturbing(m, nth=1, index=(2,)) if name == "numpy" else m

    res = run_lockstep(records_of(recs, (4,)), ("c", "numpy"), opener=opener)
    assert res.difference.index == (2,) and res.difference.writer is None
    assert "the initial fill" in res.summary()


def test_nan_and_flushed_subnormals_are_equal():
    a = np.array([np.nan, 1e-40, -1e-40, 1.0], np.float32)
    b = np.array([np.float32(np.nan) * -1, 0.0, -0.0, 1.0], np.float32)
    assert not differing(a, b, flush_subnormals=True).any()
    assert differing(a, b, flush_subnormals=False).tolist() == [False, True, True, False]


def test_cancel_stops_and_closes_both_managers(tmp_path):
    with TraceWriter(tmp_path / "t.jsonl", (8,)) as w:
        for k in range(10000):
            w.add(Set((k % 8,), float(k)))
            if k % 100 == 0:
                w.sync()
    opened = []

    def opener(name, shape, fill=0.0):
        opened.append(app.open_manager(name, shape, fill=fill))
        return opened[-1]

    calls = []
    with pytest.raises(Cancelled):
        run_lockstep(tmp_path / "t.jsonl", ("c", "numpy"), opener=opener,
                     progress=lambda d, t: calls.append(d), cancel=lambda: len(calls) >= 2)
    assert len(opened) == 2 and all(m.closed for m in opened)
