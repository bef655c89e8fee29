"""The Qt-free parts of the viewer: DisplayState, Camera, UploadSource, SyncWorker."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ui.camera import Camera
from ui.display_state import DisplayState
from ui.front_source import TextureSource, UploadSource, row_runs
from ui.sync_worker import Job, SyncWorker


def test_display_state_events_and_refused_levels():
    st = DisplayState()
    seen = []
    st.sigLevelsChanged.connect(lambda *a: seen.append(("levels", a)))
    st.sigColormapChanged.connect(lambda n: seen.append(("cmap", n)))
    st.sigSelectionChanged.connect(lambda b: seen.append(("sel", b)))
    st.set_auto_range(-1.0, 2.0, epoch=3)
    assert st.levels == (-1.0, 2.0) and st.levels_epoch == 3
    st.set_levels(0, 4)
    assert not st.auto_levels and st.levels == (0.0, 4.0)
    for lo, hi in ((5, 1), (2, 2), (float("nan"), 1), (0, float("inf"))):
        with pytest.raises(ValueError):
            st.set_levels(lo, hi)
    assert st.levels == (0.0, 4.0)
    st.set_auto_range(7.0, 9.0, epoch=4)          # fixed levels: ignored
    assert st.levels == (0.0, 4.0)
    st.set_colormap("grayscale")
    st.set_colormap("grayscale")                  # no change, no event
    with pytest.raises(ValueError, match="unknown colormap"):
        st.set_colormap("jet")
    st.set_selection(((1, 2), (3, 4)))
    st.set_selection(None)
    assert seen == [("levels", (-1.0, 2.0, True)), ("levels", (0.0, 4.0, False)),
                    ("cmap", "grayscale"), ("sel", ((1, 2), (3, 4))), ("sel", None)]


def test_camera_fit_zoom_pan_and_transforms():
    cam = Camera()
    cam.set_viewport(400, 200)
    cam.set_image(8, 4)
    assert cam.scale == (50.0, 50.0) and cam.offset == (0.0, 0.0)
    assert cam.texel_at(75, 25) == (0, 1) and cam.texel_at(401, 10) is None
    assert cam.texel_center(1, 2) == (125.0, 75.0)
    cam.zoom_by(2.0, about=(125.0, 75.0))         # the point under the cursor stays
    assert cam.texel_at(125, 75) == (1, 2) and cam.scale == (100.0, 100.0)
    assert not cam.fitted
    cam.set_viewport(800, 400)                    # zoomed by the user: a resize keeps it
    assert cam.scale == (100.0, 100.0)
    cam.fit()
    cam.set_viewport(160, 400)                    # fitted: a resize fits again
    assert cam.scale == (20.0, 20.0) and cam.offset == (0.0, 160.0)
    x, y = cam.to_px(*cam.to_texel(33.0, 170.0))
    assert (x, y) == pytest.approx((33.0, 170.0))
    cam.pan_by(10, 0)
    assert cam.texel_clamped(-1000, 10_000) == (3, 0)


def test_camera_1d_is_one_tall_row():
    cam = Camera()
    cam.set_viewport(400, 400)
    cam.set_image(4, 1, one_d=True)
    assert cam.scale == (100.0, 100.0) and cam.offset[1] == 150.0


def test_upload_source_marks_only_changed_rows():
    src = UploadSource()
    a = np.zeros((6, 5), np.float32)
    a[2, 1] = np.nan
    assert src.set_front(a, 1) is True and src.realloc
    src.realloc = False
    b = a.copy()
    b[4, :] = 1.0
    assert src.set_front(b, 2) is False
    assert src.take_dirty_runs() == [(4, 5)] and src.take_dirty_runs() == []
    assert src.set_front(b.copy(), 3) is False and src.take_dirty_runs() == []  # NaN == NaN
    assert src.finite_range() == (0.0, 1.0)
    assert row_runs(np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1], bool)) == [(0, 3), (11, 12)]


def test_texture_source_reads_back_rarely():
    src = TextureSource(lambda: (1, 0), readback_hz=2.0)
    assert src.readback_due(0.0)                   # nothing read yet
    src.set_front(np.zeros((2, 3, 4), np.float32), 1)
    t = src.last_readback
    assert not src.readback_due(t + 0.1) and src.readback_due(t + 0.6)
    src.set_z(2)
    assert src.row_offset() == 6


class _SlowManager:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []

    def synchronize(self, timeout):
        self.threads.append(threading.current_thread().name)
        if not self.release.wait(timeout):
            raise TimeoutError("synchronize timed out")

    def front(self):
        return np.ones(3, np.float32)

    def stats(self):
        class S:
            epoch = 7
        return S()


def test_sync_worker_waits_off_the_calling_thread():
    done = []
    arrived = threading.Event()
    worker = SyncWorker(lambda r: (done.append(r), arrived.set()), name="test-sync")
    try:
        m = _SlowManager()
        worker.submit(Job(1, m, 0, sync=True, timeout=5.0, read_front=True))
        assert not done                                # submit returned at once
        m.release.set()
        assert arrived.wait(5.0)
        r = done[0]
        assert r.error is None and r.epoch == 7 and r.front.tolist() == [1.0, 1.0, 1.0]
        assert m.threads == ["test-sync"]
        arrived.clear()
        m.release.clear()
        worker.submit(Job(2, m, 0, sync=True, timeout=0.01))
        assert arrived.wait(5.0)
        assert isinstance(done[1].error, TimeoutError) and done[1].front is None
    finally:
        assert worker.close(5.0)
