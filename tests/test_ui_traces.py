"""Traces in the app: the player (open with progress/cancel, scrub, play, keys), File-menu
record / open / Perfetto / lockstep, the lockstep view, ``bufferscope open``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PyQt6.QtCore import Qt

import app
from app import Set
from app.cli import main as cli_main
from app.keyframes import TraceIndex
from app.reference import same_bits
from app.trace import TraceWriter
from tests.test_keyframes import make_trace, random_updates, reference_fronts
from tests.test_lockstep import Perturbing
from ui.testing import open_window, require_gl, sync  # prepares Qt first

WAIT_MS = 20_000


@pytest.fixture
def small_trace(tmp_path):
    rng = np.random.default_rng(11)
    items = random_updates(rng, (24, 32), 400)
    path = make_trace(tmp_path / "t.jsonl", (24, 32), items)
    return path, reference_fronts((24, 32), 0.0, items)


def _player_window(qtbot, path=None):
    from ui.trace_player import TracePlayerWindow

    w = TracePlayerWindow(str(path) if path else None)
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def _wait_shown(qtbot, player, epoch, seq=None):
    qtbot.waitUntil(lambda: player.shown == (epoch, seq), timeout=WAIT_MS)


def test_the_player_opens_a_trace_and_scrubs_it(qtbot, small_trace):
    require_gl()
    path, fronts = small_trace
    w = _player_window(qtbot, path)
    p = w.player
    qtbot.waitUntil(lambda: p.index is not None, timeout=WAIT_MS)
    last = len(fronts) - 1
    assert p.slider.maximum() == last
    _wait_shown(qtbot, p, last)
    assert same_bits(p.view.front(), fronts[last])
    assert "opened" in w.statusBar().currentMessage()
    for e in (3, 0, last // 2, 1):
        p.slider.setValue(e)
        _wait_shown(qtbot, p, e)
        assert same_bits(p.view.front(), fronts[e]), e
    # Keys: Right/Left step an epoch, Home/End.
    p.setFocus()
    qtbot.keyClick(p, Qt.Key.Key_Right)
    _wait_shown(qtbot, p, 2)
    qtbot.keyClick(p, Qt.Key.Key_End)
    _wait_shown(qtbot, p, last)
    qtbot.keyClick(p, Qt.Key.Key_Left)
    _wait_shown(qtbot, p, last - 1)
    qtbot.keyClick(p, Qt.Key.Key_Home)
    _wait_shown(qtbot, p, 0)
    assert p.slider.value() == 0
    # Seq-precise: the back right after seq 50 (the 5th update).
    p.seq_box.setValue(50)
    qtbot.waitUntil(lambda: p.shown is not None and p.shown[1] == 50, timeout=WAIT_MS)
    idx = TraceIndex.open(path)
    assert same_bits(p.view.front(), idx.state_at_seq(50).back)
    assert "right after seq 50" in p.info.text()
    # Play to the end.
    p.speed.setValue(240)
    p.show_epoch(last - 5)
    _wait_shown(qtbot, p, last - 5)
    p.play_button.setChecked(True)
    qtbot.waitUntil(lambda: not p.playing and p.shown == (last, None), timeout=WAIT_MS)
    assert p.play_button.text() == "Play"
    # The history the other docks can read.
    assert p.history.rows and p.history.rows[0].seq == 10


def test_a_malformed_trace_names_its_line_and_loads_nothing(qtbot, tmp_path, small_trace):
    require_gl()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"format": "bufferscope-trace", "version": 1, "shape": [4]}) + "\n"
                   + '{"op": "sync"}\n{"op": "frobnicate"}\n')
    w = _player_window(qtbot, bad)
    p = w.player
    qtbot.waitUntil(lambda: bool(p.error), timeout=WAIT_MS)
    assert "line 3" in p.error and "unknown op" in p.error
    assert "line 3" in w.statusBar().currentMessage()
    assert p.index is None and not p.slider.isEnabled() and not p.loading
    # A good trace, then a bad one: the good one stays.
    path, fronts = small_trace
    p.open_trace(str(path))
    qtbot.waitUntil(lambda: p.index is not None and not p.loading, timeout=WAIT_MS)
    good = p.index
    p.error = ""
    p.open_trace(str(bad))
    qtbot.waitUntil(lambda: bool(p.error), timeout=WAIT_MS)
    assert p.index is good


def test_cancel_while_opening(qtbot, tmp_path):
    require_gl()
    path = tmp_path / "big.jsonl"
    with TraceWriter(path, (64,)) as wr:
        for k in range(200_000):
            wr.add(Set((k % 64,), float(k)))
    w = _player_window(qtbot)
    p = w.player
    p.open_trace(str(path))
    assert p.loading
    qtbot.waitUntil(lambda: p.progress.value() > 0, timeout=WAIT_MS)
    qtbot.mouseClick(p.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not p.loading, timeout=WAIT_MS)
    assert p.index is None and "cancelled" in w.statusBar().currentMessage()


def test_lockstep_view_names_a_planted_difference(qtbot, small_trace):
    from ui.lockstep_view import LockstepView

    path, _ = small_trace

    def opener(name, shape, fill=0.0):
        m = app.open_manager(name, shape, fill=fill)
        return Perturbing(m, nth=7, index=(0, 0), delta=math.inf) if name == "numpy" else m

    v = LockstepView(str(path), ("c", "numpy"), opener=opener)
    qtbot.addWidget(v)
    v.show()
    with qtbot.waitSignal(v.sigFinished, timeout=WAIT_MS):
        v.run_button.click()
    d = v.result.difference
    assert d is not None and d.index[0] >= 0
    assert "differ" in v.verdict.text() and str(d.index) in v.verdict.text()
    assert v.listing.count() == d.count or v.listing.count() == 200
    assert v.image.pixmap() is not None and not v.image.pixmap().isNull()
    # Without the planted difference: proved identical.
    v.opener = None
    with qtbot.waitSignal(v.sigFinished, timeout=WAIT_MS):
        v.run_button.click()
    assert v.result.identical and "identical on c and numpy" in v.verdict.text()


def test_record_open_and_lockstep_from_the_file_menu(qtbot, tmp_path):
    require_gl()
    from ui.trace_menu import install_trace_menu

    w = open_window(qtbot, backend="gl", scenario="racing", autosync_hz=30.0)
    if w.session.backend != "gl":
        pytest.skip(f"gl backend not opened: {w.session.last_error}")
    acts = install_trace_menu(w)
    texts = [a.text() for a in w.menuBar().actions()[0].menu().actions()]
    assert texts.index("Record…") < texts.index("Quit")
    assert {"Stop recording", "Open trace…", "Export Perfetto…", "Lockstep C vs GL…"} <= set(texts)
    for _ in range(3):
        sync(qtbot, w.session)
    out = tmp_path / "rec.jsonl"
    assert acts.start_recording(str(out))
    assert acts.stop_action.isEnabled() and not acts.record_action.isEnabled()
    start = acts.recording.start_epoch
    for _ in range(5):
        sync(qtbot, w.session)
    w.session.stop_scenario()
    end = sync(qtbot, w.session)
    s = acts.stop_recording()
    assert s is not None, w.statusbar.history[-1][1]
    assert out.exists() and s.first_epoch == start and s.last_epoch >= end - 1
    assert "recorded epochs" in w.statusbar.history[-1][1]
    # The last recorded epoch is the front the session shows now (nothing changes after).
    idx = TraceIndex.open(out)
    assert same_bits(idx.front_at(idx.n_epochs), w.session.front(), flush_subnormals=True)

    pw = acts.open_trace(str(out))
    qtbot.addWidget(pw)
    qtbot.waitUntil(lambda: pw.player.index is not None, timeout=WAIT_MS)
    lv = acts.open_lockstep(backends=("c", "numpy"))
    qtbot.addWidget(lv)
    assert lv.source == str(out)
    with qtbot.waitSignal(lv.sigFinished, timeout=WAIT_MS):
        lv.run()
    assert lv.result.identical, lv.verdict.text()

    perf = tmp_path / "live.json"
    assert acts.export_perfetto(str(perf))
    doc = json.loads(perf.read_text())
    assert any(e.get("ph") == "X" for e in doc["traceEvents"])


def test_a_c_backend_session_is_recorded_and_replays_to_its_front(qtbot, tmp_path):
    """The C backend's events say what each update wrote: its sessions record too."""
    require_gl()
    w = open_window(qtbot, backend="c", scenario="racing")
    acts = w.trace_actions
    out = tmp_path / "rec.jsonl"
    assert acts.start_recording(str(out))
    for _ in range(3):
        sync(qtbot, w.session)
    w.session.stop_scenario()
    sync(qtbot, w.session)
    front = np.array(w.session.front(), copy=True)
    assert acts.stop_recording() is not None, w.statusbar.history[-1][1]
    idx = TraceIndex.open(out)
    assert same_bits(idx.front_at(idx.n_epochs), front)


def test_cli_open_refuses_a_bad_argument(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["open", str(tmp_path / "missing.jsonl")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.jsonl" in err[0] and "cannot open" in err[0]


def test_the_player_jumps_to_the_epoch_where_a_race_is_flagged(qtbot, tmp_path):
    """Two producers race in epoch 2 only: 'Next race' goes there, outlines the
    overlap and names winner and loser."""
    from app import Add, Fill


    require_gl()
    path = tmp_path / "race.jsonl"
    with TraceWriter(path, (8, 8)) as w:
        w.add(Fill(((0, 4), (0, 4)), 1.0), seq=1, producer="A")
        w.sync()
        w.add(Fill(((0, 4), (0, 4)), 2.0), seq=2, producer="A")
        w.add(Add(((2, 6), (2, 6)), 5.0), seq=3, producer="B")
        w.sync()
        w.add(Fill(((6, 8), (6, 8)), 3.0), seq=4, producer="B")
        w.sync()
    win = _player_window(qtbot, path)
    p = win.player
    qtbot.waitUntil(lambda: p.index is not None, timeout=WAIT_MS)
    p.show_epoch(0)
    _wait_shown(qtbot, p, 0)
    assert p.next_race() == 2
    _wait_shown(qtbot, p, 2)
    assert p.view.overlays.boxes("races") == (((2, 4), (2, 4)),)
    assert "seq 3 (B) won over seq 2 (A)" in p.info.text()
    assert p.next_race() is None, "no race after epoch 2"

