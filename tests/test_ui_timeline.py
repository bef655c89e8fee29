"""The timeline (ui/timeline.py): hovering a mark names its update, clicking it
selects the update's row in the log (and back), wheel zoom and drag pan, and
100 000 updates drawn as densities when zoomed out."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt6.QtGui import QMouseEvent, QWheelEvent
from PyQt6.QtWidgets import QApplication, QToolTip

import ui.testing  # noqa: F401  (prepares Qt first)
from app.history import UpdateHistory
from app.manager import Event
from ui.debug_docks import link_log_and_timeline
from ui.display_state import DisplayState
from ui.timeline import MAX_MARKS, TimelineView
from ui.update_log import HistoryColumns, UpdateLogDock

T0 = 1_000_000_000
MS = 1_000_000


def stream() -> list[Event]:
    """Three updates from two producers, applied, made visible at epoch 4."""
    evs = []

    def ev(t, kind, seq, epoch=0, producer="", op="", region=None, value=None):
        evs.append(Event(len(evs), int(T0 + t * MS), kind, seq, 1, epoch, producer, 0, op,
                         region, value))

    box = ((0, 4), (0, 4))
    ev(0.0, "enqueue", 1, producer="racing-producer-1", op="fill", region=box, value=1.0)
    ev(0.5, "apply", 1, op="fill")
    ev(1.0, "enqueue", 2, producer="racing-producer-2", op="add", region=box, value=2.0)
    ev(2.0, "apply", 2, op="add")
    ev(3.2, "enqueue", 3, producer="racing-producer-1", op="fill", region=box, value=3.0)
    ev(3.9, "apply", 3, op="fill")
    ev(4.4, "sync-begin", 3, epoch=3)
    ev(4.5, "swap", 3, epoch=4)
    ev(4.6, "visible", 3, epoch=4)
    return evs


def shown_timeline(qtbot, evs, width: int = 900, height: int = 200) -> TimelineView:
    """A shown ``TimelineView`` over the history of ``evs``, fitted."""
    h = UpdateHistory()
    h.ingest(evs, len(evs))
    columns = HistoryColumns()
    columns.set_history(h)
    view = TimelineView(columns)
    qtbot.addWidget(view)
    view.resize(width, height)
    view.show()
    qtbot.waitExposed(view)
    view.fit()
    return view


@pytest.fixture
def timeline(qtbot):
    return shown_timeline(qtbot, stream())


def test_hovering_a_mark_names_the_update(qtbot, timeline):
    view = timeline
    assert view.lanes() == ["racing-producer-1", "racing-producer-2", "worker"]
    want = ("seq 3, fill by racing-producer-1, enqueued +3.2 ms, applied +3.9 ms, "
            "visible at epoch 4")
    assert view.tooltip_text(2) == want
    pos = view.mark_pos(2)
    assert view.row_at(pos.x(), pos.y()) == 2
    apply_pos = view.mark_pos(2, worker=True)
    assert view.row_at(apply_pos.x(), apply_pos.y()) == 2
    assert view.row_at(view.mark_pos(1).x(), view.mark_pos(0).y()) is None, \
        "seq 2 is on its own producer's lane, not producer 1's"
    qtbot.mouseMove(view, pos.toPoint())
    qtbot.waitUntil(lambda: QToolTip.isVisible() and QToolTip.text() == want, timeout=5000)
    QToolTip.hideText()


def test_clicking_a_mark_selects_its_row_in_the_log_and_back(qtbot, timeline):
    view = timeline
    state = DisplayState()
    log = UpdateLogDock(view.columns, state, lambda: 2)
    qtbot.addWidget(log)
    log.show()
    link_log_and_timeline(log, view)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=view.mark_pos(1).toPoint())
    assert log.selected_seq() == 2
    assert view.selected_row == 1
    assert state.selection == ((0, 4), (0, 4)), "the log outlines what it wrote"
    log.table.selectRow(2)
    assert view.selected_row == 2, "a row selected in the log is marked on the timeline"


def send_wheel(view, x: float, steps: int) -> None:
    pos = QPointF(x, 40)
    ev = QWheelEvent(pos, QPointF(view.mapToGlobal(pos.toPoint())), QPoint(),
                     QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view, ev)


def send_mouse(view, kind, x: float, buttons) -> None:
    pos = QPointF(x, 40)
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else \
        Qt.MouseButton.NoButton
    ev = QMouseEvent(kind, pos, QPointF(view.mapToGlobal(pos.toPoint())), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, ev)


def test_wheel_zooms_about_the_cursor_and_drag_pans(qtbot, timeline):
    view = timeline
    x = view.mark_pos(2).x()
    t_at = view.t_of(x)
    width = view.t_hi - view.t_lo
    send_wheel(view, x, 2)
    assert not view.auto_fit
    assert view.t_hi - view.t_lo == pytest.approx(width / 1.25 ** 2)
    assert view.t_of(x) == pytest.approx(t_at), "the time under the cursor stays put"
    lo = view.t_lo
    left = Qt.MouseButton.LeftButton
    send_mouse(view, QEvent.Type.MouseButtonPress, 400, left)
    send_mouse(view, QEvent.Type.MouseMove, 300, left)
    send_mouse(view, QEvent.Type.MouseButtonRelease, 300, Qt.MouseButton.NoButton)
    per_px = (view.t_hi - view.t_lo) / view.plot_w()
    assert view.t_lo == pytest.approx(lo + 100 * per_px), "dragging left shows later times"
    view.mouseDoubleClickEvent(None)
    assert view.auto_fit


def test_a_hundred_thousand_updates_are_aggregated_when_zoomed_out(qtbot):
    evs = []
    for k in range(100_000):
        evs.append(Event(len(evs), T0 + 10_000 * k, "enqueue", k + 1, 1, 0, f"p{k % 4}", 0,
                         "set", ((0, 1), (k % 8, k % 8 + 1)), 1.0))
    for k in range(60_000):
        evs.append(Event(len(evs), T0 + 10_000 * k + 5_000, "apply", k + 1, 1, 0, "", 1, "set"))
    view = shown_timeline(qtbot, evs, 1000, 220)
    view.grab()   # paints now
    assert view.marks_drawn <= 2 * view.width(), "zoomed out: per-pixel densities"
    view.set_window(0, 50 * 10_000)             # 50 enqueues (and their applies)
    view.grab()   # paints now
    assert 0 < view.marks_drawn <= MAX_MARKS
    assert view.marks_drawn in (100, 101, 102), "zoomed in: one mark per enqueue and apply"
    k = view.row_at(view.mark_pos(20).x(), view.mark_pos(20).y())
    assert k == 20 and view.tooltip_text(k).startswith("seq 21, set by p0")
