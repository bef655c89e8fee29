"""The front uploaded on the sync worker (``ui.front_upload``), and what the GUI
thread no longer does twice:

* the texture the uploader hands over holds, bit for bit, the reference model's
  buffer at the epoch it claims, after every epoch of random update batches
  (NaN/±Inf/±0 included, 2-D and 3-D, a new buffer in between), while the view's
  draws fence the textures; its levels are the exact finite min/max;
* in the main window on the C backend the view samples that texture, draws the
  epoch the session shows with exact levels, and its readout copy is current after
  an asked-for synchronize;
* the history feed takes the events the worker read (every update once, in order);
* the timeline repaints for rows that arrive in a burst (throttled, not dropped).

GL tests: skipped locally where no OpenGL context can be made, FAIL on CI.
"""

from __future__ import annotations

import queue

import numpy as np
import pytest
from OpenGL import GL
from test_ui_dirty_upload import Both, bits, finite_reference, random_batch

import app
from app.front_changes import FrontChanges
from app.reference import ReferenceModel
from ui.buffer_view import BufferView
from ui.front_upload import FrontUploader
from ui.sync_worker import Job, SyncWorker
from ui.testing import shown_view, sync  # prepares Qt first

pytestmark = pytest.mark.gl
pytest_plugins = ["ui_fixtures"]   # make_window

WAIT_S = 30.0


@pytest.fixture
def view(qtbot):
    with shown_view(qtbot, 200) as v:
        yield v


def read_texture(view: BufferView, tex: int) -> np.ndarray:
    view.makeCurrent()
    try:
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
        w = int(GL.glGetTexLevelParameteriv(GL.GL_TEXTURE_2D, 0, GL.GL_TEXTURE_WIDTH))
        h = int(GL.glGetTexLevelParameteriv(GL.GL_TEXTURE_2D, 0, GL.GL_TEXTURE_HEIGHT))
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 4)
        out = GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, GL.GL_RED, GL.GL_FLOAT)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    finally:
        view.doneCurrent()
    return np.frombuffer(out, np.float32).reshape(h, w)


def fence_a_draw(view: BufferView, up: FrontUploader, tex: int) -> None:
    """What the view does after a draw that sampled ``tex``."""
    view.makeCurrent()
    try:
        up.drawn(tex)
    finally:
        view.doneCurrent()


class Worker:
    """A ``SyncWorker`` whose results come back through a queue, with its QThread."""

    def __init__(self) -> None:
        from PyQt6.QtCore import QThread

        self.results: queue.Queue = queue.Queue()
        self.started: queue.Queue = queue.Queue()
        self.sw = SyncWorker(self.results.put, name="test-upload",
                             on_start=lambda: self.started.put(QThread.currentThread()))
        self.qthread = self.started.get(timeout=WAIT_S)

    def run(self, job: Job):
        self.sw.submit(job)
        res = self.results.get(timeout=WAIT_S)
        assert res.error is None, res.error
        assert res.upload_error is None, res.upload_error
        return res

    def close(self) -> None:
        assert self.sw.close(WAIT_S)


@pytest.mark.parametrize("shape", [(40, 24), (3, 9, 11)])
def test_the_uploaded_texture_is_the_front_of_its_epoch(view, shape):
    worker = Worker()
    up = FrontUploader(worker.qthread)
    worker.sw.exit_hooks.append(up.release)
    managers = []
    try:
        rng = np.random.default_rng(len(shape))
        written = []
        for part, shp in enumerate([shape, (7, 5)]):     # then a new buffer
            m = app.open_manager("c", shp)
            managers.append(m)
            both, changes = Both(m, ReferenceModel(shp)), FrontChanges(shp)
            for epoch in range(12):
                random_batch(both, rng, shp)
                res = worker.run(Job(epoch, m, 0, sync=True, timeout=WAIT_S,
                                     changes=changes, upload=up))
                assert res.upload is not None
                up.show(res.upload)
                tex, shown = up.texture()
                assert shown == res.epoch == m.stats().epoch
                want = both.ref.back.reshape(-1, shp[-1])
                assert np.array_equal(bits(read_texture(view, tex)), bits(want)), (part, epoch)
                lo, hi, at = up.levels()
                ref = finite_reference(want)
                assert at == shown and (lo, hi) == (ref if ref is not None else (None, None))
                fence_a_draw(view, up, tex)      # the next write waits for this draw
                if part == 0 and epoch >= 2:
                    written.append(up.uploaded_rows)
        total = int(np.prod(shape[:-1]))
        assert any(0 < n < total for n in written), f"only changed rows written: {written}"
    finally:
        worker.close()              # releases the uploader's objects on the worker
        assert up.released
        up.dispose()
        for m in managers:
            m.close()


def test_a_buffer_too_big_for_a_texture_is_refused(view):
    worker = Worker()
    up = FrontUploader(worker.qthread, max_texture=64)
    worker.sw.exit_hooks.append(up.release)
    try:
        assert up.usable((64, 64)) and not up.usable((65, 3)) and not up.usable((2, 40, 3))
        assert up.usable((64,)) and not up.usable((65,))
        m = app.open_manager("c", (70, 4))
        try:
            worker.sw.submit(Job(1, m, 0, sync=True, timeout=WAIT_S, changes=FrontChanges((70, 4)),
                                 upload=up))
            res = worker.results.get(timeout=WAIT_S)
            assert isinstance(res.upload_error, ValueError) and "texture" in str(res.upload_error)
        finally:
            m.close()
    finally:
        worker.close()
        up.dispose()


def test_the_c_window_samples_the_worker_texture(make_window, qtbot):
    w = make_window(backend="c", shape=(48, 40))
    s, v = w.session, w.view
    up = s.front_uploader
    assert up is not None and v.using_shared_texture
    assert v.state.auto_levels
    s.set_autosync(False)       # every epoch below is one this test asked for
    ref = ReferenceModel((48, 40))
    both = Both(s.manager, ref)
    rng = np.random.default_rng(5)
    for _ in range(6):
        random_batch(both, rng, (48, 40))
        epoch = sync(qtbot, s)
        v.grabFramebuffer()                          # a paint
        assert v.drawn_epoch == epoch
        tex, shown = up.texture()
        assert shown == epoch and v.renderer.uploaded_rows == 0
        assert np.array_equal(bits(read_texture(v, tex)), bits(ref.back))
        want = finite_reference(ref.back)
        qtbot.waitUntil(lambda e=epoch: v.levels_epoch == e, timeout=5000)
        if want is not None:
            assert v.state.levels == want
        qtbot.waitUntil(lambda e=epoch: v.data_epoch == e, timeout=5000)   # the readout copy
        assert np.array_equal(bits(v.front()), bits(ref.back))
    assert s.copy_fronts


def test_the_history_feed_takes_the_worker_events(make_window, qtbot):
    w = make_window(backend="c", shape=(16, 16))
    s, feed = w.session, w.history_feed
    m = s.manager
    s.set_autosync(False)       # only the syncs below read events on the worker
    seqs = []
    for k in range(20):
        seqs.append(s.enqueue(app.Fill(((k % 16, k % 16 + 1), (0, 16)), float(k))))
        if k % 4 == 1:     # the feed reads ahead of the worker: their events overlap
            feed.poll()
            feed.poll()
        if k % 4 == 3:
            sync(qtbot, s)
    sync(qtbot, s)
    qtbot.waitUntil(lambda: len(feed.history.rows) >= len(seqs), timeout=5000)
    h = feed.history
    got = [r.seq for r in h.rows]
    assert got == sorted(got) and len(got) == len(set(got))     # each once, in order
    assert all(r.applied == r.count for r in h.rows), "each apply taken once"
    marks = [(mk.kind, mk.seq, mk.epoch, mk.t_ns) for mk in h.marks]
    assert len(marks) == len(set(marks)), "each sync mark taken once"
    assert set(seqs) <= set(got)
    assert feed._fed_at > 0, "the feed took events the sync worker had read"
    assert m is s.manager


def test_the_timeline_repaints_rows_that_arrive_in_a_burst(qtbot):
    from test_ui_timeline import shown_timeline, stream

    view = shown_timeline(qtbot, stream())
    view._on_rows()
    painted = view._last_rows_paint
    view._on_rows()                       # at once again: deferred, not dropped
    assert view._rows_timer.isActive()
    qtbot.waitUntil(lambda: view._last_rows_paint > painted and not view._rows_timer.isActive(),
                    timeout=5000)


def test_the_feed_tells_the_views_paced_but_never_drops_a_change(make_window, qtbot):
    w = make_window(backend="c", shape=(8, 8))
    s, feed = w.session, w.history_feed
    s.set_autosync(False)
    told: list[int] = []
    feed.sigHistoryChanged.connect(told.append)
    n0 = len(feed.history.rows)
    for k in range(3):
        s.manager.enqueue(app.Fill(((k, k + 1), (0, 8)), 1.0))
        feed.poll(paced=True)                # as for a new front: the history at once...
        assert len(feed.history.rows) == n0 + k + 1
    qtbot.waitUntil(lambda: bool(told) and told[-1] == n0 + 3, timeout=5000)   # ...views soon
    s.manager.enqueue(app.Fill(((5, 6), (0, 8)), 2.0))
    feed.poll(paced=True)
    feed.poll()                              # an explicit poll tells what is pending at once
    assert told[-1] == n0 + 4
