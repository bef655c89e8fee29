"""The element history dock and the hover readout, against hand-built update streams
with known answers (GL and numpy backends: their events say what each update
wrote), and the C backend's rows without details said as such."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt

from app import Add, Fill, Scale, Set, Write, open_manager
from ui.session import MAX_PENDING
from ui.testing import open_window, require_gl, sync  # prepares Qt first

WAIT_MS = 5000


def make_debug_window(qtbot, backend: str, shape=(8, 8)):
    """A window with hand-driven synchronization on ``backend`` (numpy: the GL
    backend's scheduler with a CPU executor, put in place of the opened one)."""
    require_gl()
    if backend == "gl":
        from app import why_not

        if why_not("gl"):
            pytest.skip(f"gl backend unavailable: {why_not('gl')}")
    w = open_window(qtbot, backend="c" if backend == "numpy" else backend, shape=shape)
    s = w.session
    s.set_autosync(False)
    qtbot.waitUntil(lambda: not s.syncing, timeout=WAIT_MS)
    if backend == "numpy":
        s._replace(open_manager("numpy", shape, max_pending=MAX_PENDING), "numpy")
        qtbot.waitUntil(lambda: w.view.front() is not None and not s.syncing, timeout=WAIT_MS)
    return w


def settle(qtbot, w) -> int:
    """Synchronize, then wait until the view and the history have that epoch."""
    epoch = sync(qtbot, w.session)
    feed = w.history_feed
    if w.view.data_epoch != epoch:     # GL texture mode reads the front back now and then
        w.session.refresh_front()
    qtbot.waitUntil(lambda: w.view.data_epoch == epoch, timeout=WAIT_MS)
    feed.poll()
    qtbot.waitUntil(lambda: all(r.epoch_visible is not None for r in feed.history.rows),
                    timeout=WAIT_MS)
    return epoch


def hover(qtbot, view, row: int, col: int) -> None:
    """Move the mouse onto texel (row, col) (from next to it: a cursor left there by
    an earlier test's window would send no move event; again if the view moved)."""
    want = view.element_index(row, col)

    def there() -> bool:
        if view.hover_index != want:
            x, y = view.texel_center(row, col)
            qtbot.mouseMove(view, QPoint(x + 7, y + 5))
            qtbot.mouseMove(view, QPoint(x, y))
        return view.hover_index == want

    qtbot.waitUntil(there, timeout=WAIT_MS)


@pytest.fixture(params=["numpy", "gl"])
def window(request, qtbot):
    w = make_debug_window(qtbot, request.param)
    yield w
    w.close()


def test_element_history_lists_every_writer_with_values_and_epochs(window, qtbot):
    w = window
    s = w.session
    assert s.enqueue(Fill(((0, 8), (0, 8)), 1.0)) is not None, s.last_error
    assert s.enqueue(Add(((1, 2), (1, 2)), 2.0)) is not None
    e1 = settle(qtbot, w)
    assert s.enqueue(Scale(((0, 2), (0, 2)), -3.0)) is not None
    s.manager.set_many([[1, 1], [2, 2], [1, 1]], [7.0, 8.0, 9.0])
    assert s.enqueue(Write(((1, 3), (0, 2)), np.array([[10.0, 11.0], [12.0, 13.0]]))) is not None
    assert s.enqueue(Set((0, 0), 4.0)) is not None        # not (1, 1)
    e2 = settle(qtbot, w)
    hd = w.history_docks
    hd.follow((1, 1))
    dock = hd.dock
    assert dock.isVisible()
    got = [(e.row.op, e.before, e.after, e.row.epoch_visible) for e in dock.entries]
    assert got == [("fill", 0.0, 1.0, e1), ("add", 1.0, 3.0, e1), ("scale", 3.0, -9.0, e2),
                   ("set", -9.0, 9.0, e2), ("write", 9.0, 11.0, e2)]
    assert float(w.view.front()[1, 1]) == got[-1][2], "the last 'after' is the front's value"
    table = dock.table
    assert table.rowCount() == 5
    assert [table.item(r, 3).text() for r in range(5)] == [
        "0 → 1", "1 → 3", "3 → -9", "-9 → 9", "9 → 11"]
    assert table.item(0, 1).text() == "MainThread" and table.item(4, 4).text() == str(e2)
    assert "✓" in dock.check and "11" in dock.check
    assert "element (1, 1): 5 updates wrote it" in dock.title.text()
    # The followed element is outlined on the view.
    assert w.view.overlays.boxes("element") == (((1, 2), (1, 2)),)
    # Live: a new update of the element appears once it is in the history.
    assert s.enqueue(Add(((0, 8), (0, 8)), 0.5)) is not None
    settle(qtbot, w)
    qtbot.waitUntil(lambda: dock.table.rowCount() == 6, timeout=WAIT_MS)
    assert dock.table.item(5, 3).text() == "11 → 11.5" and "✓" in dock.check


def test_a_click_follows_the_element_and_ctrl_h_the_hovered_one(window, qtbot):
    w = window
    s = w.session
    assert s.enqueue(Set((2, 5), 3.5)) is not None
    settle(qtbot, w)
    w.view.grabFramebuffer()
    x, y = w.view.texel_center(2, 5)
    qtbot.mouseClick(w.view, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    qtbot.waitUntil(lambda: w.history_docks.dock.index == (2, 5), timeout=WAIT_MS)
    assert [(e.row.op, e.after) for e in w.history_docks.dock.entries] == [("set", 3.5)]
    hover(qtbot, w.view, 6, 1)
    w.history_docks.follow_action.trigger()
    assert w.history_docks.dock.index == (6, 1)
    assert w.history_docks.dock.entries == [] and "the fill value" in w.history_docks.dock.check


def test_the_hover_readout_names_the_last_visible_writer(window, qtbot):
    w = window
    s = w.session
    assert s.enqueue(Fill(((0, 4), (0, 4)), 1.0)) is not None
    first = settle(qtbot, w)
    s.manager.set_many([[3, 3]], [5.0])
    settle(qtbot, w)
    hover(qtbot, w.view, 3, 3)
    qtbot.waitUntil(lambda: "index (3, 3)" in w.readout.text(), timeout=WAIT_MS)
    assert "value 5" in w.readout.text()
    assert "last write: seq 2 set by MainThread" in w.readout.text()
    assert "last write: seq 1 fill by MainThread" in w.readout_text((2, 2))
    assert w.readout_text((6, 6)).endswith("none since the buffer was opened")
    # An update not yet visible is not the writer of what the front shows.
    assert s.enqueue(Fill(((0, 8), (0, 8)), 2.0)) is not None
    w.history_feed.poll()
    qtbot.waitUntil(lambda: len(w.history_feed.history.rows) == 3, timeout=WAIT_MS)
    assert "last write: seq 2 set by MainThread" in w.readout_text((3, 3))
    # The history answers for earlier epochs too.
    assert w.history_feed.history.last_writer((3, 3), first).seq == 1


def test_the_c_backend_history_names_values_before_and_after(qtbot):
    """The C backend's events say what each update wrote, like the others'."""
    w = make_debug_window(qtbot, "c")
    try:
        s = w.session
        assert s.enqueue(Fill(((0, 4), (0, 4)), 1.0)) is not None
        assert s.enqueue(Add(((0, 2), (0, 2)), 1.0)) is not None
        settle(qtbot, w)
        hist = w.history_feed.history.element_history((1, 1))
        assert [(e.row.op, e.before, e.after) for e in hist][-2:] == [("fill", 0.0, 1.0),
                                                                        ("add", 1.0, 2.0)]
        assert all(r.detailed for r in w.history_feed.history.rows)
        assert "add by MainThread" in w.readout_text((1, 1))
    finally:
        w.close()
