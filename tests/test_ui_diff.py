"""View ▸ Show diff: marks exactly the elements the last synchronize changed (bitwise:
NaN written over NaN is no change, -0.0 over 0.0 is), counts them, and makes the
GL texture path read the front back at every epoch while it is on."""

from __future__ import annotations

import numpy as np
import pytest
from test_ui_element_history import make_debug_window, settle

from app import Fill, Set
from app.history import changed_mask
from ui.overlays import DIFF_COLOR
from ui.testing import close_enough, pixel

WAIT_MS = 5000


@pytest.fixture(params=["numpy", "gl"])
def window(request, qtbot):
    w = make_debug_window(qtbot, request.param, shape=(8, 8))
    yield w
    w.close()


def marked(w) -> set[tuple[int, ...]]:
    ms = w.view.overlays.marks("diff")
    return set() if ms is None else {tuple(int(x) for x in i) for i in np.argwhere(ms.mask)}


def test_the_diff_marks_exactly_the_changed_elements(window, qtbot):
    w = window
    s = w.session
    hd = w.history_docks
    nan = float("nan")
    assert s.enqueue(Set((0, 0), nan)) is not None
    assert s.enqueue(Set((0, 1), 1.0)) is not None
    settle(qtbot, w)
    hd.diff_action.setChecked(True)               # Ctrl+D
    assert hd.diff.on and s.front_wanted(), "a read-back at every epoch while the diff is on"
    qtbot.waitUntil(lambda: hd.diff._prev is not None, timeout=WAIT_MS)
    assert s.enqueue(Set((0, 0), nan)) is not None        # NaN over NaN: no change
    assert s.enqueue(Set((0, 1), 1.0)) is not None        # the same value: no change
    assert s.enqueue(Set((5, 6), -0.0)) is not None       # -0.0 over 0.0: other bits
    assert s.enqueue(Fill(((2, 4), (1, 3)), 7.0)) is not None
    epoch = settle(qtbot, w)
    qtbot.waitUntil(lambda: hd.diff.epoch == epoch, timeout=WAIT_MS)
    want = {(5, 6), (2, 1), (2, 2), (3, 1), (3, 2)}
    assert marked(w) == want and hd.diff.count == 5
    assert f"5 elements changed at epoch {epoch}" in hd.status.text()
    # Drawn: a mark in the middle of a changed cell, none in an unchanged one.
    img = w.view.grabFramebuffer()
    x, y = w.view.camera.texel_center(2, 1)
    assert close_enough(pixel(img, int(x), int(y)), DIFF_COLOR)
    x, y = w.view.camera.texel_center(6, 6)
    assert not close_enough(pixel(img, int(x), int(y)), DIFF_COLOR)
    # An epoch that changes nothing marks nothing.
    assert s.enqueue(Set((0, 1), 1.0)) is not None
    epoch = settle(qtbot, w)
    qtbot.waitUntil(lambda: hd.diff.epoch == epoch, timeout=WAIT_MS)
    assert marked(w) == set() and f"0 elements changed at epoch {epoch}" in hd.status.text()
    hd.diff_action.setChecked(False)
    assert w.view.overlays.marks("diff") is None and "changed" not in hd.status.text()


def test_big_planes_are_marked_by_tiles():
    from ui.view_renderer import MARK_MAX, ViewRenderer

    assert ViewRenderer.mark_tile(100, 100) == 1
    assert ViewRenderer.mark_tile(MARK_MAX, 10) == 1
    assert ViewRenderer.mark_tile(4 * MARK_MAX, 10) == 4


def test_changed_mask_is_bitwise():
    a = np.array([0.0, np.nan, 1.0, 2.0], np.float32)
    b = np.array([-0.0, np.nan, 1.0, 3.0], np.float32)
    assert changed_mask(a, b).tolist() == [True, False, False, True]
    assert changed_mask(None, b).all()
