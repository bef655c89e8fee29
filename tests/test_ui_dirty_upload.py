"""The view's O(changed) paths against the full ones, on both backends:

* the rows the manager's events say changed (``app.front_changes``) are all the
  view copies and uploads, and its copy and its data texture (read back) equal
  the manager's front bit for bit after every epoch of random update batches;
* the per-band levels of the view (``ui.front_source.Bands``) and of the GL
  backend (``gl_backend._bands``) equal numpy's nanmin/nanmax of the finite
  values at every epoch, NaN and ±Inf included.

GL tests: skipped locally where no OpenGL context can be made, FAIL on CI.
"""

from __future__ import annotations

import numpy as np
import pytest
from OpenGL import GL

from app import Add, Fill, Scale, Set, Write
from app.front_changes import FrontChanges
from app.reference import ReferenceModel, same_bits
from ui import front_source
from ui.buffer_view import BufferView
from ui.front_source import Bands
from ui.testing import shown_view  # prepares Qt first

pytestmark = pytest.mark.gl

SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], np.float32)


@pytest.fixture
def view(qtbot):
    with shown_view(qtbot, 300) as v:
        yield v


def _region(rng, shape):
    out = []
    for n in shape:
        a = int(rng.integers(0, n))
        out.append((a, int(rng.integers(a + 1, min(n, a + 1 + max(1, n // 3)) + 1))))
    return tuple(out)


def _value(rng) -> float:
    return float(rng.choice(SPECIALS)) if rng.random() < 0.15 else float(rng.normal())


def random_batch(m, rng, shape) -> None:
    """A few updates of every kind (a set_many run too), NaN/±Inf/±0 among the values."""
    for _ in range(int(rng.integers(1, 6))):
        kind = int(rng.integers(0, 6))
        if kind == 0:
            m.enqueue(Set(tuple(int(rng.integers(0, n)) for n in shape), _value(rng)))
        elif kind in (1, 2, 3):
            m.enqueue((Fill, Add, Scale)[kind - 1](_region(rng, shape), _value(rng)))
        elif kind == 4:
            reg = _region(rng, shape)
            data = rng.normal(size=tuple(b - a for a, b in reg)).astype(np.float32)
            data.flat[0] = _value(rng)
            m.enqueue(Write(reg, data))
        else:
            n = int(rng.integers(1, 20))
            idx = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
            vals = rng.normal(size=n).astype(np.float32)
            vals[0] = _value(rng)
            m.set_many(idx, vals)


class Both:
    """A manager and the reference model given the same updates."""

    def __init__(self, m, ref) -> None:
        self.m, self.ref = m, ref

    def enqueue(self, u) -> None:
        self.m.enqueue(u)
        self.ref.apply(u)

    def set_many(self, idx, vals) -> None:
        self.m.set_many(idx, vals)
        self.ref.set_many(idx, vals)


def finite_reference(a):
    f = np.asarray(a, np.float32)
    f = f[np.isfinite(f)]
    return None if f.size == 0 else (float(np.nanmin(f)), float(np.nanmax(f)))


def read_data_texture(view: BufferView) -> np.ndarray:
    cols, rows = view.renderer.tex_size
    view.makeCurrent()
    try:
        GL.glBindTexture(GL.GL_TEXTURE_2D, view.renderer.data_tex)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 4)
        out = GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, GL.GL_RED, GL.GL_FLOAT)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    finally:
        view.doneCurrent()
    return np.frombuffer(out, np.float32).reshape(rows, cols)


def bits(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize("shape", [(40, 24), (3, 9, 11)])
def test_event_rows_upload_equals_the_front_bit_for_bit(view, open_mgr, backend, shape,
                                                        monkeypatch):
    monkeypatch.setattr(front_source, "BAND_ELEMENTS", 50)
    m = open_mgr(shape)
    rng = np.random.default_rng(len(shape) * 7 + len(backend))
    changes = FrontChanges(shape)
    view.state.set_auto_levels(True)
    if len(shape) == 3:
        view.state.set_z(1)
    partial = 0
    for epoch in range(25):
        random_batch(m, rng, shape)
        m.synchronize(30)
        front, st = m.front(), m.stats()
        took = changes.take(m, st.visible_seq)
        if epoch:
            assert took[2] is not None, "the events said which rows changed"
            partial += int(took[2].sum() < len(took[2]))
            if epoch % 2:   # as the sync worker hands it: the bands reduced there
                took = (*took, Bands.compute(front.reshape(-1, shape[-1]), took[2]))
        view.set_front(front, st.epoch, took)
        view.grabFramebuffer()                       # paints: uploads the dirty rows
        assert epoch == 0 or view.source.compared_rows == 0, "no whole-front comparison"
        assert np.array_equal(bits(view.front()), bits(front)), epoch
        plane = front if front.ndim == 2 else front[view.state.z]
        assert np.array_equal(bits(read_data_texture(view)), bits(plane)), epoch
        assert view.source.finite_range() == finite_reference(front), epoch
        lo, hi = view.state.levels
        want = finite_reference(front)
        if want is not None:
            assert (lo, hi) == want
    assert partial, "some epochs changed only some rows"


def test_a_copy_of_another_read_is_compared_in_full(view, open_mgr, backend):
    m = open_mgr((16, 8))
    changes = FrontChanges((16, 8))
    m.enqueue(Fill(((0, 16), (0, 8)), 1.0))
    m.synchronize(30)
    view.set_front(m.front(), 1, changes.take(m, m.stats().visible_seq))
    m.enqueue(Fill(((2, 3), (0, 8)), 5.0))
    m.synchronize(30)
    changes.take(m, m.stats().visible_seq)          # a read the view never saw
    m.enqueue(Fill(((9, 10), (0, 8)), 7.0))
    m.synchronize(30)
    took = changes.take(m, m.stats().visible_seq)
    assert took[2].sum() == 1                       # only row 9 since the unseen read
    view.set_front(m.front(), 3, took)
    assert view.source.compared_rows == 16          # so the view compared everything
    assert np.array_equal(bits(view.front()), bits(m.front()))


def test_lost_events_mean_unknown_rows():
    class Ev:
        def __init__(self, index, kind="apply", seq=1, region=((0, 1), (0, 2))):
            self.index, self.kind, self.seq, self.count = index, kind, seq, 1
            self.region, self.indices, self.payload_dropped = region, None, False

    c = FrontChanges((4, 2))
    c.feed([Ev(0)], 1)
    assert c.changed_rows(1) is None                 # the first read knows nothing before it
    c.feed([Ev(1, seq=2, region=((2, 3), (0, 2))), Ev(2, seq=3, region=((3, 4), (0, 1)))], 3)
    assert c.changed_rows(2).tolist() == [False, False, True, False]
    assert c.changed_rows(3).tolist() == [False, False, False, True]   # kept until visible
    c.feed([Ev(7, seq=4)], 8)                        # events 3..6 were let go
    assert c.changed_rows(4) is None


@pytest.mark.parametrize("shape", [(1000, 37), (64, 64), (3000, 1), (1, 50), (4, 30, 30)])
def test_bands_are_exact_after_random_changes(monkeypatch, shape):
    monkeypatch.setattr(front_source, "BAND_ELEMENTS", 100)
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(size=shape).astype(np.float32)
    a2 = a.reshape(-1, shape[-1])
    b = Bands(a2)
    for _ in range(30):
        rows = rng.integers(0, a2.shape[0], int(rng.integers(1, 5)))
        a2[rows] = rng.choice(np.concatenate([SPECIALS, rng.normal(size=8).astype(np.float32)]),
                              size=(len(rows), a2.shape[1]))
        changed = np.zeros(a2.shape[0], bool)
        changed[rows] = True
        b.update(a2, changed)
        assert b.finite_range() == finite_reference(a)
    a2[:] = np.nan
    b.update(a2, None)
    assert b.finite_range() is None


@pytest.mark.parametrize("shape", [(48, 40), (3, 20, 17), (257,)])
def test_gl_levels_per_band_equal_numpy_every_epoch(qapp, monkeypatch, shape):
    from tests.conftest import require_backend

    require_backend("gl")
    import app
    from gl_backend import _bands

    monkeypatch.setattr(_bands, "BAND_ELEMENTS", 64)   # many bands on a small buffer

    m = app.open_manager("gl", shape)
    ref = ReferenceModel(shape)
    both = Both(m, ref)
    try:
        rng = np.random.default_rng(len(shape))
        partial = 0
        whole = tuple((0, n) for n in shape)
        for k in range(30):
            random_batch(both, rng, shape)
            if k % 7 == 3:   # more than the buffer in one batch: the catch-up copies it
                for op in (Add(whole, 1.0), Scale(whole, 0.5), Add(whole, -0.25)):
                    both.enqueue(op)
            m.synchronize(30)
            ref.synchronize()
            if k % 3 == 1:   # not read back every epoch: a later read catches up
                # front() comes from host copies refreshed band by band
                assert same_bits(m.front(), ref.front, flush_subnormals=True), k
            lo, hi, epoch = m.front_range()
            assert epoch == m.stats().epoch
            want = finite_reference(ref.front)
            assert (None, None) == (lo, hi) if want is None else (lo, hi) == want
            bands = m._executor.gpu.bands
            partial += int(bands.recomputed < bands.n)
        assert partial, "a small batch recomputes only the bands it wrote"
        m.enqueue(Fill(tuple((0, n) for n in shape), float("nan")))
        m.synchronize(30)
        assert m.front_range()[:2] == (None, None)
    finally:
        m.close()
