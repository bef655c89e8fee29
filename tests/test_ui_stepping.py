"""Stepping that shows (ui/debug_controls.py) in the main window on the GL backend:
a step marks and selects the update it applied, the Back view shows the buffer
being built (compared with the numpy reference backend stepped alike), run to
seq stops at the seq, a watch on an element stops before the right seq and the
UI names it, an empty queue banks no step, and the keys reach the controls.

GL tests: skipped locally where no OpenGL 3.3 context can be made, FAIL on CI.
"""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6.QtGui import QKeySequence
from ui_fixtures import windows

import app
from app import Add, Fill, Scale, Set, why_not
from ui.testing import require_gl, sync  # prepares Qt first

pytestmark = pytest.mark.gl


@pytest.fixture
def make_window(qtbot):
    """make_window(**kwargs) -> a shown MainWindow, on the GL backend unless asked."""
    require_gl()
    with windows(qtbot, before_close=lambda w: w.debug_controls.wait_idle()) as make:
        yield lambda **kwargs: make(**{"backend": "gl", **kwargs})


def messages(w) -> list[str]:
    return [text for _t, text in w.statusbar.history]


def applied(w) -> int:
    return w.session.manager.stats().applied_seq


def test_a_step_marks_what_it_applied_and_the_back_view_shows_the_back(make_window, qtbot):
    w = make_window(shape=(4, 6))
    dc, log, s = w.debug_controls, w.update_log, w.session
    ups = [Set((0, 0), 5.0), Add(((1, 3), (2, 5)), 2.0), Scale(((0, 2), (0, 6)), 3.0)]
    s.manager.enqueue(Fill(((0, 4), (0, 6)), 1.0))
    sync(qtbot, s)
    assert not dc.back_action.isEnabled(), "the back changes while the worker runs"
    dc.set_paused(True)
    assert dc.back_action.isEnabled() and s.paused
    for u in ups:
        s.manager.enqueue(u)
    with app.open_manager("numpy", (4, 6)) as ref:
        ref.enqueue(Fill(((0, 4), (0, 6)), 1.0))
        ref.synchronize(timeout=10)
        ref.pause()
        for u in ups:
            ref.enqueue(u)

        dc.step()
        qtbot.waitUntil(lambda: log.model.stepped_row == 1, timeout=5000)
        assert log.selected_seq() == 2, "the step selects the update it applied"
        assert w.state.selection == ((0, 1), (0, 1)), "and outlines what it wrote"
        assert "stepped: applied seq 2, set by MainThread" in messages(w)

        ref.step(1)
        qtbot.waitUntil(lambda: ref.stats().applied_seq == 2, timeout=5000)
        sampled = w.view.using_shared_texture
        dc.show_back(True)
        qtbot.waitUntil(lambda: dc.back_seq == 2, timeout=5000)
        assert np.array_equal(w.view.front(), ref.back()), "the view shows the back"
        assert "BACK" in dc.status.text()

        dc.step()
        ref.step(1)
        qtbot.waitUntil(lambda: ref.stats().applied_seq == 3, timeout=5000)
        qtbot.waitUntil(lambda: dc.back_seq == 3 and log.model.stepped_row == 2, timeout=5000)
        assert np.array_equal(w.view.front(), ref.back()), "each step shows the new back"
        assert w.view.front()[1, 2] == 3.0 and s.front()[1, 2] == 1.0, "the front is not touched"

    dc.show_back(False)
    qtbot.waitUntil(lambda: np.array_equal(w.view.front(), np.ones((4, 6), np.float32)),
                    timeout=5000)
    assert w.view.using_shared_texture == sampled, "the view samples the front as before"

    dc.set_paused(False)
    assert log.model.stepped_row is None, "running: nothing is marked as just applied"


def test_run_to_seq_stops_at_that_seq_and_says_what_it_could_not_do(make_window, qtbot):
    w = make_window(shape=(4, 4))
    dc, s = w.debug_controls, w.session
    dc.set_paused(True)
    for k in range(10):
        s.manager.enqueue(Set((k % 4, k // 4), float(k)))
    assert dc.run_to_seq(7) == 7
    qtbot.waitUntil(lambda: applied(w) == 7, timeout=5000)
    qtbot.wait(150)
    assert applied(w) == 7, "exactly to seq 7"
    qtbot.waitUntil(lambda: w.update_log.model.stepped_row == 6, timeout=5000)
    assert w.update_log.selected_seq() == 7

    assert dc.run_to_seq(5) == 0
    assert "already applied" in messages(w)[-1]
    assert dc.run_to_seq(40) == 3
    assert "only up to seq 10 is queued" in messages(w)[-1]
    qtbot.waitUntil(lambda: applied(w) == 10, timeout=5000)
    s.manager.enqueue(Set((3, 3), 1.0))
    qtbot.wait(150)
    assert applied(w) == 10, "no step was saved up for seqs not yet queued"


def test_an_empty_queue_banks_no_step_and_the_ui_says_so(make_window, qtbot):
    w = make_window(shape=(4, 4))
    dc, s = w.debug_controls, w.session
    dc.set_paused(True)
    dc.step()
    assert "nothing is queued" in messages(w)[-1]
    s.manager.enqueue(Set((0, 0), 1.0))
    qtbot.wait(150)
    assert applied(w) == 0


def test_a_watch_on_an_element_stops_before_the_right_seq_and_names_it(make_window, qtbot):
    w = make_window(shape=(4, 4))
    dc, s, log = w.debug_controls, w.session, w.update_log
    dc.hovered = (2, 2)
    from ui.watch_dialog import WatchDialog

    dlg = WatchDialog(dc, w)
    assert dlg.elements.text() == "2, 2", "prefilled from the hovered element"
    assert dlg.chosen() == ([(2, 2)], [], [])
    dlg.apply()
    assert dc.watch == ([(2, 2)], [], [])
    dc.set_paused(True)
    s.manager.enqueue(Fill(((0, 2), (0, 2)), 1.0))                            # seq 1
    s.manager.set_many([[0, 0], [1, 1], [2, 2], [3, 3]], [1.0, 2.0, 3.0, 4.0])  # seqs 2..5
    s.manager.enqueue(Add(((2, 4), (2, 4)), 10.0))                            # seq 6
    dc.set_paused(False)                                                      # F5
    qtbot.waitUntil(lambda: dc.break_seq == 4, timeout=5000)
    assert s.paused, "the session knows the worker stopped"
    want = "stopped before seq 4 (set by MainThread) writing (2, 2)"
    assert want in messages(w)
    assert log.selected_seq() == 2 and log.model.break_row == 1, "the run holding seq 4"
    assert applied(w) == 3

    dc.step()                                  # applies exactly the watched update
    qtbot.waitUntil(lambda: applied(w) == 4 and dc.break_seq is None, timeout=5000)
    dc.set_paused(False)
    qtbot.waitUntil(lambda: dc.break_seq == 6, timeout=5000)
    assert "stopped before seq 6 (add by MainThread) writing (2, 2)" in messages(w)
    assert dc.set_watch([], [], []) is None
    dc.set_paused(False)
    qtbot.waitUntil(lambda: applied(w) == 6, timeout=5000)
    sync(qtbot, s)
    assert s.front()[2, 2] == 13.0


def test_run_to_epoch_pauses_when_the_epoch_is_visible(make_window, qtbot):
    w = make_window(shape=(4, 4))
    dc, s = w.debug_controls, w.session
    s.set_autosync(False)
    qtbot.waitUntil(lambda: not s.syncing, timeout=5000)   # the last auto-sync has landed
    target = s.epoch + 2
    assert dc.run_to_epoch(target)
    assert not s.paused
    s.manager.enqueue(Set((0, 0), 1.0))
    sync(qtbot, s)
    assert not s.paused
    s.manager.enqueue(Set((0, 0), 2.0))
    sync(qtbot, s)
    qtbot.waitUntil(lambda: s.paused, timeout=5000)
    assert s.epoch == target and dc.epoch_target is None


def test_keys_reach_the_debug_controls(make_window, qtbot):
    w = make_window(shape=(4, 4))
    dc, s = w.debug_controls, w.session
    assert dc.resume_action.shortcut().toString() == "F5"
    assert dc.pause_action.shortcut().toString() == "Shift+F5"
    assert dc.run_seq_action.shortcut().toString() == "Ctrl+G"
    assert dc.watch_action.shortcut().toString() == "Ctrl+B"
    w.activateWindow()
    w.view.setFocus()
    qtbot.waitUntil(lambda: w.isActiveWindow(), timeout=2000)
    qtbot.keySequence(w, QKeySequence("Shift+F5"))
    assert s.paused
    qtbot.keySequence(w, QKeySequence("F5"))
    assert not s.paused


def test_the_c_backend_offers_back_and_watch_too(make_window, qtbot):
    if why_not("c") is not None:
        pytest.skip(f"no C backend: {why_not('c')}")
    w = make_window(backend="c", shape=(4, 4))
    dc = w.debug_controls
    caps = w.session.manager.capabilities
    assert caps.watch and caps.back
    dc.set_paused(True)
    qtbot.waitUntil(lambda: dc.watch_action.isEnabled() and dc.back_action.isEnabled(),
                    timeout=5000)
