"""The GL backend's element-set path: de-duplication without sorting (``_sets``),
the hashed stamps of large buffers, pooled buffers, and GL errors of the
unchecked hot-path calls (``_glfast``) still reaching the caller.

The sets are compared with the numpy reference bit for bit; the pure-numpy
parts run without a GL context.
"""

from __future__ import annotations

import numpy as np
import pytest

from app import BackendError, ReferenceModel, Set
from app.reference import first_difference, same_bits
from gl_backend._sets import SCATTER_MAX, STAMP_SLOTS, _exact, last_writes, set_slices, stamps_for
from tests.test_gl_backend import gl  # noqa: F401 - the fixture


def _expected(flat: np.ndarray) -> np.ndarray:
    """The last occurrence of each offset, by a plain loop."""
    last = {}
    for pos, off in enumerate(flat.tolist()):
        last[off] = pos
    keep = np.zeros(len(flat), dtype=bool)
    keep[list(last.values())] = True
    return keep


@pytest.mark.parametrize("n, span", [(1, 10), (7, 3), (4096, 1 << 20), (SCATTER_MAX, 5000),
                                     (SCATTER_MAX, 1 << 20)])
def test_last_writes_keeps_exactly_the_last_write_of_each_offset(n, span):
    rng = np.random.default_rng(n + span)
    flat = rng.integers(0, span, n).astype(np.int64)
    stamps = stamps_for(span)
    keep = last_writes(flat, stamps)
    want = _expected(flat)
    if want.all():
        assert keep is None
    else:
        assert keep is not None and np.array_equal(keep, want)
    distinct = rng.permutation(span)[: min(n, span)].astype(np.int64)
    assert last_writes(distinct, stamps) is None


def test_last_writes_on_hashed_stamps_tells_collisions_from_repeats():
    """A buffer larger than STAMP_SLOTS shares stamp slots between offsets: an offset
    that lost its slot to a *different* offset must still be kept."""
    big = 4 * STAMP_SLOTS
    stamps = stamps_for(big)
    assert len(stamps) == STAMP_SLOTS
    rng = np.random.default_rng(5)
    base = rng.integers(0, STAMP_SLOTS, 3000)
    # Each base offset, the same slot in three other places, and a few true repeats.
    flat = np.concatenate([base, base + STAMP_SLOTS, base + 3 * STAMP_SLOTS, base[:500],
                           rng.integers(0, big, 20_000)]).astype(np.int64)
    flat = flat[rng.permutation(len(flat))]
    keep = last_writes(flat, stamps)
    assert keep is not None and np.array_equal(keep, _expected(flat))
    assert np.array_equal(_exact(flat), _expected(flat))
    # Colliding but distinct offsets only: nothing dropped.
    only = np.concatenate([base, base + STAMP_SLOTS]).astype(np.int64)
    got = last_writes(only, stamps)
    assert got is None or got.all()


def test_set_slices_keep_the_order_of_chunks_and_single_sets_within_the_limit():
    parts = [(5, 50), (np.array([1, 2], dtype=np.int64), np.array([10, 20], dtype=np.uint32)),
             (3, 30), (4, 40), (np.array([9], dtype=np.int64), np.array([90], dtype=np.uint32)),
             (6, 60)]
    whole = list(set_slices(parts))
    assert len(whole) == 1
    flat, bits = whole[0]
    assert flat.tolist() == [5, 1, 2, 3, 4, 9, 6] and flat.dtype == np.int64
    assert bits.tolist() == [50, 10, 20, 30, 40, 90, 60] and bits.dtype == np.uint32
    for limit in (1, 2, 3, 7):
        got = list(set_slices(parts, limit))
        assert all(0 < len(f) <= limit and len(f) == len(b) for f, b in got)
        assert np.concatenate([f for f, _ in got]).tolist() == flat.tolist()
        assert np.concatenate([b for _, b in got]).tolist() == bits.tolist()
    chunk = (np.arange(10, dtype=np.int64), np.arange(10, dtype=np.uint32))
    (f, _), = set_slices([chunk])
    assert np.shares_memory(f, chunk[0]), "a slice within one chunk is a view, not a copy"


def _sync_and_check(m, ref):
    m.synchronize(timeout=60)
    ref.synchronize()
    got = m.front()
    assert same_bits(got, ref.front, flush_subnormals=False), first_difference(got, ref.front)


def test_sets_on_a_buffer_larger_than_the_stamps_match_numpy(gl):  # noqa: F811
    shape = (2048, 2048)          # 4 M elements: offsets share stamp slots
    m, ref = gl(shape), ReferenceModel(shape)
    rng = np.random.default_rng(11)
    rows = rng.integers(0, 1024, 30_000)
    cols = rng.integers(0, 2048, 30_000)
    # (r, c) and (r + 1024, c) share a slot (1024 rows of 2048 = STAMP_SLOTS apart).
    idx = np.concatenate([np.stack([rows, cols], 1), np.stack([rows + 1024, cols], 1),
                          np.stack([rows[:4000], cols[:4000]], 1)])
    idx = idx[rng.permutation(len(idx))]
    vals = rng.standard_normal(len(idx)).astype(np.float32)
    m.set_many(idx, vals)
    ref.set_many(idx, vals)
    m.enqueue(Set((0, 0), -2.5))
    ref.apply(Set((0, 0), -2.5))
    _sync_and_check(m, ref)
    # The next epoch builds on the replayed back.
    m.set_many(idx[::-1], vals)
    ref.set_many(idx[::-1], vals)
    _sync_and_check(m, ref)


def test_many_small_set_batches_reuse_buffers_and_match_numpy(gl):  # noqa: F811
    shape = (64, 96)
    m, ref = gl(shape), ReferenceModel(shape)
    rng = np.random.default_rng(2)
    for epoch in range(6):
        for _ in range(40):
            k = int(rng.integers(1, 300))
            idx = np.stack([rng.integers(0, 64, k), rng.integers(0, 96, k)], 1)
            vals = rng.standard_normal(k).astype(np.float32)
            m.set_many(idx, vals)
            ref.set_many(idx, vals)
            if k % 3 == 0:
                s = Set((int(idx[0, 0]), int(idx[0, 1])), float(epoch))
                m.enqueue(s)
                ref.apply(s)
        _sync_and_check(m, ref)
    names = m.gl_objects()
    assert names["buffers_live"][0] < 64, "operation buffers are pooled or freed, not leaked"


def test_a_gl_error_in_the_unchecked_scatter_reaches_the_caller(gl, monkeypatch):  # noqa: F811
    from OpenGL import GL

    from gl_backend import _gpu

    m, ref = gl((32, 32)), ReferenceModel((32, 32))
    m.set_many([[1, 1]], [1.0])
    ref.set_many([[1, 1]], [1.0])
    _sync_and_check(m, ref)
    real = _gpu.Gpu.scatter

    def broken(self, slot, data, n):
        # An unchecked call that fails: no exception here, only the error flag.
        self.fast.glBindImageTexture(0, 0xDEAD, 0, GL.GL_FALSE, 0, GL.GL_READ_WRITE, GL.GL_R32UI)

    monkeypatch.setattr(_gpu.Gpu, "scatter", broken)
    m.set_many([[2, 2]], [2.0])
    with pytest.raises(BackendError, match="applying element sets: OpenGL error 0x0501"):
        m.synchronize(timeout=30)
    monkeypatch.setattr(_gpu.Gpu, "scatter", real)
    # The front was copied onto the back; the manager keeps working.
    m.set_many([[3, 3]], [3.0])
    ref.set_many([[3, 3]], [3.0])
    _sync_and_check(m, ref)


def test_catch_up_copies_the_rows_of_dense_sets_instead_of_replaying_them(gl):  # noqa: F811
    from app import Add, Fill

    shape = (256, 256)     # 4 bands of 16384 elements (64 rows each)
    m, ref = gl(shape), ReferenceModel(shape)
    m.enqueue(Fill(((0, 256), (0, 256)), 1.0))
    ref.apply(Fill(((0, 256), (0, 256)), 1.0))
    _sync_and_check(m, ref)
    rng = np.random.default_rng(8)
    for epoch, (r0, r1) in enumerate([(0, 64), (64, 192), (200, 256)]):
        since = m.events()[1]
        idx = np.stack([rng.integers(r0, r1, 6000), rng.integers(0, 256, 6000)], 1)
        vals = rng.standard_normal(6000).astype(np.float32)
        m.set_many(idx, vals)       # 6000 scattered sets cost more than copying their bands
        ref.set_many(idx, vals)
        _sync_and_check(m, ref)
        catch = [e for e in m.events(since)[0] if e.kind == "catch-up"]
        assert [e.count for e in catch] == [0], "the written rows were copied, not replayed"
        # The next epoch builds on the new back everywhere: copied rows and the rest.
        m.enqueue(Add(((0, 256), (0, 256)), float(epoch) + 0.5))
        ref.apply(Add(((0, 256), (0, 256)), float(epoch) + 0.5))
        m.set_many([[r0, 0]], [9.0])   # a small batch is still replayed
        ref.set_many([[r0, 0]], [9.0])
        _sync_and_check(m, ref)
        assert m.front_range()[:2] == (float(ref.front.min()), float(ref.front.max()))


def test_without_resolved_entry_points_pyopengl_functions_do_the_same_work(gl, monkeypatch):  # noqa: F811
    """Where a GL entry point cannot be resolved, ``_glfast`` uses PyOpenGL's raw
    function: the same arguments must work there (pointers as c_void_p)."""
    from app import Fill, Write
    from gl_backend import _glfast

    monkeypatch.setattr(_glfast, "address", lambda name: None)
    shape = (300, 200)
    m, ref = gl(shape), ReferenceModel(shape)
    assert type(m._executor.gpu.fast.glTexSubImage2D).__module__.startswith("OpenGL")
    rng = np.random.default_rng(4)
    for _ in range(3):
        idx = np.stack([rng.integers(0, 300, 5000), rng.integers(0, 200, 5000)], 1)
        vals = rng.standard_normal(5000).astype(np.float32)
        block = rng.standard_normal((40, 200)).astype(np.float32)
        for u in (Write(((10, 50), (0, 200)), block), Fill(((0, 5), (0, 5)), 2.0)):
            m.enqueue(u)
            ref.apply(u)
        m.set_many(idx, vals)
        ref.set_many(idx, vals)
        _sync_and_check(m, ref)
