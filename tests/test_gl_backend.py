"""What only the GL backend has: its worker's GL context and objects, texture
limits, GPU float arithmetic, the shared front texture, and app.glinfo.

The shared contract (order, visibility, errors, ...) is in test_contract.py.
Without an OpenGL context these tests skip locally and fail when CI=true.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import app
from app import Add, BackendError, Fill, ManagerClosedError, ReferenceModel, Scale, Set, Write
from app.reference import first_difference, same_bits

pytestmark = pytest.mark.gl

IN_CI = os.environ.get("CI", "").lower() == "true"
INF = float("inf")
NAN = float("nan")


@pytest.fixture
def gl(qapp):
    """Skip (locally) or fail (CI) without GL; yields an opener whose managers are closed."""
    reason = app.why_not("gl")
    if reason is not None:
        if IN_CI:
            pytest.fail(f"the GL backend is unavailable in CI: {reason}")
        pytest.skip(f"the GL backend is unavailable: {reason}")
    before = set(threading.enumerate())
    made = []

    def open_gl(shape, **kw):
        m = app.open_manager("gl", shape, **kw)
        made.append(m)
        return m

    yield open_gl
    for m in made:
        m.close()
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads left running: {left}"


def _check(m, ref, flush=True):
    got = m.front()
    assert same_bits(got, ref.front, flush_subnormals=flush), first_difference(got, ref.front)


def _run(m, ref, updates):
    m.enqueue_many(updates)
    for u in updates:
        ref.apply(u)
    m.synchronize(timeout=30)
    ref.synchronize()
    _check(m, ref)


def test_ieee_edge_cases_match_numpy_bit_for_bit(gl):
    shape = (4, 8)
    m, ref = gl(shape), ReferenceModel(shape)
    row = np.array([0.0, -0.0, 1.0, -1.0, INF, -INF, NAN, 3.0e38], dtype=np.float32)
    setup = [Write(((r, r + 1), (0, 8)), row.reshape(1, 8)) for r in range(4)]
    _run(m, ref, setup)
    assert np.signbit(m.front()[0, 1]), "-0.0 kept its sign through Write"
    _run(m, ref, [
        Scale(((0, 1), (0, 8)), 0.0),       # 0 * inf = nan, -1 * 0 = -0.0
        Scale(((1, 2), (0, 8)), INF),       # 0 * inf = nan, -0.0 * inf = nan, big * inf = inf
        Add(((2, 3), (0, 8)), -INF),        # inf + -inf = nan
        Scale(((3, 4), (0, 8)), -0.0),
        Add(((3, 4), (6, 8)), 3.0e38),      # overflow to inf (and nan stays nan)
    ])
    f = m.front()
    assert math.isnan(f[0, 4]) and f[0, 3] == 0 and np.signbit(f[0, 3])
    assert math.isnan(f[2, 4]) and f[2, 5] == -INF
    _run(m, ref, [Add(((0, 4), (0, 8)), -0.0), Scale(((0, 4), (0, 4)), -1.0)])


def test_sets_keep_special_values_exactly_and_last_repeat_wins(gl):
    shape = (16, 16)
    m, ref = gl(shape), ReferenceModel(shape)
    vals = np.array([NAN, -0.0, INF, -INF, 1e-45, 7.0, -7.0], dtype=np.float32)
    idx = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [5, 5], [5, 5]])
    m.set_many(idx, vals)
    ref.set_many(idx, vals)
    m.synchronize(timeout=30)
    ref.synchronize()
    # Sets move bit patterns: even the subnormal survives.
    _check(m, ref, flush=False)
    assert m.front()[5, 5] == -7.0
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 16, size=(200_000, 2))  # many repeats, more than one scatter
    vals = rng.standard_normal(200_000).astype(np.float32)
    m.set_many(idx, vals)
    ref.set_many(idx, vals)
    m.synchronize(timeout=30)
    ref.synchronize()
    _check(m, ref, flush=False)


def test_overlapping_region_updates_apply_in_order_in_every_dimensionality(gl):
    for shape in [(50,), (9, 13), (3, 5, 7)]:
        m, ref = gl(shape), ReferenceModel(shape)
        full = tuple((0, n) for n in shape)
        part = tuple((1, n - 1) for n in shape)
        ups = [Fill(full, 2.0), Add(part, 1.0), Scale(full, 3.0), Add(part, 0.5),
               Fill(part, -1.0), Add(full, 0.25),
               Write(part, np.arange(np.prod([n - 2 for n in shape]), dtype=np.float32)
                     .reshape([n - 2 for n in shape])),
               Scale(part, 2.0), Set(tuple(n - 1 for n in shape), 9.0)]
        _run(m, ref, ups)
        # After the swap the new back was brought up to date (no stale back).
        _run(m, ref, [Add(full, 1.0)])


def test_worker_fault_is_raised_once_and_the_manager_keeps_working(gl):
    m = gl((8, 8))
    ref = ReferenceModel((8, 8))
    m.enqueue(Fill(((0, 8), (0, 8)), 1.0))
    ref.apply(Fill(((0, 8), (0, 8)), 1.0))
    assert m.synchronize(timeout=30) == 1
    ref.synchronize()
    m.inject_worker_fault(after=2)   # counts the updates the worker takes from now on
    m.enqueue(Add(((0, 8), (0, 8)), 1.0))
    ref.apply(Add(((0, 8), (0, 8)), 1.0))
    bad = m.enqueue(Fill(((0, 4), (0, 4)), 5.0))   # fails in the worker: skipped
    m.enqueue(Set((7, 7), 3.0))
    ref.apply(Set((7, 7), 3.0))
    with pytest.raises(BackendError, match=f"seq {bad} failed in the worker"):
        m.synchronize(timeout=30)
    ref.synchronize()
    _check(m, ref)
    assert m.synchronize(timeout=30) == 3       # reported once
    m.enqueue(Scale(((0, 8), (0, 8)), 2.0))
    ref.apply(Scale(((0, 8), (0, 8)), 2.0))
    m.synchronize(timeout=30)
    ref.synchronize()
    _check(m, ref)


def test_a_real_gl_failure_in_the_worker_reaches_the_caller(gl, monkeypatch):
    from OpenGL import GL

    from gl_backend import _gpu

    m = gl((32, 32))
    m.enqueue(Fill(((0, 32), (0, 32)), 1.0))
    m.synchronize(timeout=30)

    real = _gpu.Gpu.run_boxes

    def broken(self, slot, boxes, payload, n_boxes, total):
        GL.glBindImageTexture(0, 0xDEAD, 0, GL.GL_FALSE, 0, GL.GL_READ_WRITE, GL.GL_R32UI)

    monkeypatch.setattr(_gpu.Gpu, "run_boxes", broken)
    m.enqueue(Add(((0, 32), (0, 32)), 1.0))
    with pytest.raises(BackendError, match="failed on the GPU"):
        m.synchronize(timeout=30)
    monkeypatch.setattr(_gpu.Gpu, "run_boxes", real)
    # Both buffers agree again (the catch-up copied the front), and work goes on.
    m.enqueue(Add(((0, 32), (0, 32)), 1.0))
    m.synchronize(timeout=30)
    m.enqueue(Set((0, 0), 7.0))
    m.synchronize(timeout=30)
    f = m.front()
    assert f[0, 0] == 7.0 and f[31, 31] == 2.0 and f[5, 9] == 2.0


def test_too_big_for_the_gl_implementation_names_the_limit(gl):
    with pytest.raises(ValueError, match="GL_MAX_TEXTURE_SIZE"):
        gl((100_000, 100_000))
    with pytest.raises(ValueError, match="GL_MAX_TEXTURE_SIZE"):
        gl((1 << 40,))
    # A long 1-d buffer beyond one texture row still fits (rows wrap).
    m, ref = gl((40_000,)), ReferenceModel((40_000,))
    _run(m, ref, [Fill(((100, 39_000),), 2.0), Add(((0, 40_000),), 1.0), Set((39_999,), -3.0),
                  Write(((16_380, 16_390),), np.arange(10, dtype=np.float32))])
    assert m.texture_size[0] < 40_000


def test_close_frees_gl_objects_and_joins_the_worker(gl, qapp):
    from OpenGL import GL
    from PyQt6.QtGui import QOffscreenSurface, QOpenGLContext

    import gl_backend
    from gl_backend._context import dispose

    fmt = gl_backend.surface_format()
    surface = QOffscreenSurface()
    surface.setFormat(fmt)
    surface.create()
    viewer = QOpenGLContext()
    viewer.setFormat(fmt)
    assert viewer.create()
    try:
        m = gl((16, 16), share_context=viewer)
        assert m.shares_context
        m.enqueue(Fill(((0, 16), (0, 16)), 1.0))
        m.set_many([[1, 1], [2, 2]], [5.0, 6.0])
        m.synchronize(timeout=30)
        names = m.gl_objects()
        texture, epoch = m.front_texture()
        assert epoch == 1 and texture in names["textures"]
        worker = next(t for t in threading.enumerate() if t.name == "bufferscope-gl-worker")
        assert viewer.makeCurrent(surface)
        try:
            assert all(GL.glIsTexture(t) for t in names["textures"])
            assert all(GL.glIsProgram(p) for p in names["programs"])
            # The viewer samples the front without a read-back: read it through the view.
            GL.glBindTexture(GL.GL_TEXTURE_2D, texture)
            seen = GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, GL.GL_RED, GL.GL_FLOAT)
            seen = np.asarray(seen, dtype=np.float32).reshape(16, 16)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
            assert seen[1, 1] == 5.0 and seen[2, 2] == 6.0 and seen[0, 0] == 1.0
        finally:
            viewer.doneCurrent()
        m.close()
        assert not worker.is_alive()
        assert viewer.makeCurrent(surface)
        try:
            assert not any(GL.glIsTexture(t) for t in names["textures"])
            assert not any(GL.glIsProgram(p) for p in names["programs"])
            assert not any(GL.glIsFramebuffer(f) for f in names["framebuffers"])
        finally:
            viewer.doneCurrent()
        m.close()  # idempotent
        with pytest.raises(ManagerClosedError):
            m.front_texture()
        with pytest.raises(ManagerClosedError):
            m.enqueue(Set((0, 0), 1.0))
    finally:
        dispose(surface, viewer)  # now, not whenever the garbage collector runs


def test_catch_up_replays_a_small_batch_and_copies_after_a_big_one(gl):
    m = gl((64, 64))
    ref = ReferenceModel((64, 64))
    since = m.events()[1]
    _run(m, ref, [Fill(((0, 4), (0, 4)), 1.0), Set((9, 9), 2.0)])
    catch = [e for e in m.events(since)[0] if e.kind == "catch-up"]
    assert [e.count for e in catch] == [2], "a small batch is replayed, entry by entry"
    since = m.events()[1]
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 64, size=(5000, 2))
    vals = rng.standard_normal(5000).astype(np.float32)
    m.set_many(idx, vals)
    ref.set_many(idx, vals)
    m.enqueue(Add(((0, 64), (0, 64)), 1.0))
    ref.apply(Add(((0, 64), (0, 64)), 1.0))
    m.synchronize(timeout=30)
    ref.synchronize()
    _check(m, ref)
    catch = [e for e in m.events(since)[0] if e.kind == "catch-up"]
    assert [e.count for e in catch] == [0], "a batch bigger than the buffer is a full copy"
    # Either way the back is up to date: the next epoch builds on everything.
    _run(m, ref, [Scale(((0, 64), (0, 64)), 0.5)])
    _run(m, ref, [Add(((0, 64), (0, 64)), 0.5)])


def test_front_is_read_back_once_per_epoch_and_read_only(gl):
    m = gl((8, 8), fill=1.5)
    a = m.front()
    assert a is m.front() and not a.flags.writeable and a.dtype == np.float32
    assert np.all(a == 1.5)
    m.enqueue(Set((1, 1), 2.0))
    assert m.front() is a, "the front does not change before a synchronize"
    m.synchronize(timeout=30)
    b = m.front()
    assert b is not a and b[1, 1] == 2.0 and a[1, 1] == 1.5


def test_why_not_is_none_and_glinfo_prints_the_driver(gl):
    assert app.why_not("gl") is None
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "app.glinfo"], capture_output=True, text=True,
                       timeout=120, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 0, r.stderr
    for key in ("vendor", "renderer", "version", "glsl version", "max texture size",
                "max 3D texture size", "max array texture layers"):
        assert key in r.stdout


def test_glinfo_fails_clearly_without_a_display():
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "app.glinfo"], capture_output=True, text=True,
                       timeout=120, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode != 0
    assert "no OpenGL context" in r.stderr and "DISPLAY" in r.stderr


def _finite_range_reference(a: np.ndarray):
    """(min, max) of the finite values of ``a`` as float32, -0.0 ordered below +0.0
    (the documented order of ``front_range``); None when there is no finite value.
    Computed with numpy's nanmin/nanmax, then the zeros resolved by their sign bit."""
    a = np.asarray(a, dtype=np.float32).ravel()
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return None
    lo, hi = np.float32(np.nanmin(finite)), np.float32(np.nanmax(finite))
    zeros = finite[finite == 0]
    if lo == 0:
        lo = np.float32(-0.0) if np.any(np.signbit(zeros)) else np.float32(0.0)
    if hi == 0:
        hi = np.float32(0.0) if np.any(~np.signbit(zeros)) else np.float32(-0.0)
    return lo, hi


def _assert_range_matches(m):
    lo, hi, epoch = m.front_range()
    assert epoch == m.stats().epoch
    want = _finite_range_reference(m.front())
    if want is None:
        assert (lo, hi) == (None, None)
        return
    got = np.array([lo, hi], dtype=np.float64).astype(np.float32)
    assert float(got[0]) == lo and float(got[1]) == hi, "front_range returns float32 values"
    assert got.view(np.uint32).tolist() == np.array(want).view(np.uint32).tolist(), (
        (lo, hi), want)


SUB = np.float32(1e-45)   # the smallest subnormal


@pytest.mark.parametrize("shape", [(37,), (9, 13), (3, 5, 7)])
def test_front_range_is_the_exact_finite_min_max_reduced_on_the_gpu(gl, shape):
    m = gl(shape, fill=2.0)
    assert m.front_range() == (2.0, 2.0, 0)
    n = int(np.prod(shape))
    full = tuple((0, s) for s in shape)
    rng = np.random.default_rng(len(shape))
    cases = [
        # NaN and ±Inf are not levels; -0.0 sorts below +0.0.
        np.array([NAN, INF, -INF, 0.0, -0.0, 1.5, -1.5, NAN], np.float32),
        np.array([NAN, -0.0, 0.0, INF], np.float32),        # min -0.0, max +0.0
        np.array([0.0, NAN], np.float32),                  # only +0.0
        np.array([-0.0, -INF], np.float32),                # only -0.0
        np.array([SUB, -SUB, NAN, 3 * SUB], np.float32),   # subnormals, exact bits
        np.array([np.float32(3.4028235e38), -INF, np.float32(-3.4028235e38)], np.float32),
        np.array([NAN, -NAN, INF, -INF], np.float32),      # no finite value
        np.full(1, NAN, np.float32),                       # all NaN
        rng.standard_normal(n).astype(np.float32),
    ]
    for k, pattern in enumerate(cases):
        data = np.resize(pattern, n).reshape(shape)
        m.enqueue(Write(full, data))
        assert m.synchronize(timeout=30) == k + 1
        _assert_range_matches(m)
    epoch = m.front_range()[2]
    # A Set of one finite value among random ones moves the max, after the sync only.
    m.enqueue(Set(tuple(s - 1 for s in shape), 1e6))
    assert m.front_range()[2] == epoch and m.front_range()[1] != 1e6
    m.synchronize(timeout=30)
    assert m.front_range()[1:] == (1e6, epoch + 1)
    _assert_range_matches(m)


def test_front_range_is_cached_per_epoch_and_skips_texture_padding(gl):
    m = gl((4, 4), fill=1.0)
    m.enqueue(Fill(((1, 2), (1, 3)), 7.5))
    m.enqueue(Set((3, 3), -0.25))
    m.synchronize(timeout=30)
    core = m._sched
    first = m.front_range()
    assert first == (-0.25, 7.5, 1)
    asked = core.ranges.requested
    for _ in range(5):
        assert m.front_range() == first
    assert core.ranges.requested == asked, "a second call in one epoch asks the GPU nothing"
    m.enqueue(Set((3, 3), 1.0))
    m.synchronize(timeout=30)
    assert m.front_range() == (1.0, 7.5, 2)
    assert core.ranges.requested == asked + 1
    # While paused the worker still serves it (like front()).
    m.pause()
    m.enqueue(Set((0, 0), -9.0))
    assert m.front_range() == (1.0, 7.5, 2)
    m.resume()
    m.synchronize(timeout=30)
    assert m.front_range() == (-9.0, 7.5, 3)

    # A long 1-d buffer wraps into texture rows: the padding texels (the fill value)
    # are not elements and do not count.
    n = m.gl_info()["max_texture_size"] + 10
    w = gl((n,), fill=-5.0)
    assert w.texture_size[0] < n
    w.enqueue(Write(((0, n),), np.linspace(1.0, 2.0, n, dtype=np.float32)))
    w.synchronize(timeout=30)
    assert w.front_range() == (1.0, 2.0, 1)
    _assert_range_matches(w)


def test_front_range_of_a_big_buffer_matches_numpy(gl):
    shape = (1024, 1024)
    m = gl(shape)
    rng = np.random.default_rng(7)
    a = (rng.standard_normal(shape) * 1e3).astype(np.float32)
    a[rng.integers(0, 1024, 500), rng.integers(0, 1024, 500)] = NAN
    a[5, 5], a[6, 6] = INF, -INF
    m.enqueue(Write(((0, 1024), (0, 1024)), a))
    m.synchronize(timeout=30)
    _assert_range_matches(m)
    lo, hi, _ = m.front_range()
    assert lo == float(np.nanmin(np.where(np.isfinite(a), a, NAN)))
    assert hi == float(np.nanmax(np.where(np.isfinite(a), a, NAN)))


def test_front_range_errors(gl, monkeypatch):
    from gl_backend import _gpu

    m = gl((8, 8))
    m.enqueue(Fill(((0, 8), (0, 8)), 1.0))
    m.synchronize(timeout=30)

    def broken(self, slot):
        raise RuntimeError("no reduction today")

    monkeypatch.setattr(_gpu.Gpu, "finite_range", broken)
    with pytest.raises(BackendError, match="no reduction today"):
        m.front_range()
    with pytest.raises(BackendError, match="no reduction today"):
        m.synchronize(timeout=30)   # reported to the next synchronize too, once
    monkeypatch.undo()
    assert m.front_range() == (1.0, 1.0, 2)
    m.close()
    with pytest.raises(ManagerClosedError):
        m.front_range()


def test_front_range_when_the_worker_dies(gl, monkeypatch):
    from gl_backend import _gpu

    class Crash(BaseException):
        pass

    def crash(self, slot):
        raise Crash("the worker's bug")

    m = gl((8, 8))
    monkeypatch.setattr(_gpu.Gpu, "finite_range", crash)
    with pytest.raises(BackendError, match="the worker's bug"):
        m.front_range()
    with pytest.raises(BackendError, match="worker stopped"):
        m.front_range()
