"""The race flag: updates from different producers in one epoch that overlap and do
not commute are outlined on the view, counted, and named in the element history;
the racing scenario lights it up. Also ``UpdateHistory.races`` against a brute
force reading of its definition on random streams."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_ui_element_history import make_debug_window, settle

from app import Add, Fill, Scale
from app.history import UpdateHistory
from app.manager import Event
from ui.overlays import RACE_COLOR
from ui.testing import close_enough, pixel

WAIT_MS = 5000


def produce(manager, name: str, update) -> None:
    t = threading.Thread(target=lambda: manager.enqueue(update), name=name)
    t.start()
    t.join(5.0)
    assert not t.is_alive()


@pytest.fixture(params=["numpy", "gl"])
def window(request, qtbot):
    w = make_debug_window(qtbot, request.param, shape=(8, 8))
    yield w
    w.close()


def test_two_producer_threads_racing_are_flagged_with_winner_and_loser(window, qtbot):
    w = window
    s = w.session
    s.set_paused(True)
    produce(s.manager, "producer-A", Fill(((0, 4), (0, 4)), 1.0))        # seq 1
    produce(s.manager, "producer-B", Add(((2, 6), (2, 6)), 5.0))         # seq 2: races seq 1
    produce(s.manager, "producer-A", Fill(((6, 8), (6, 8)), 2.0))        # seq 3: no overlap
    s.set_paused(False)
    epoch = settle(qtbot, w)
    hd = w.history_docks
    qtbot.waitUntil(lambda: hd.races.epoch == epoch, timeout=WAIT_MS)
    races = hd.races.races
    assert [(r.winner.seq, r.winner.producer, r.loser.seq, r.loser.producer, r.overlap)
            for r in races] == [(2, "producer-B", 1, "producer-A", ((2, 4), (2, 4)))]
    assert w.view.overlays.boxes("races") == (((2, 4), (2, 4)),)
    assert hd.status.text().startswith(f"1 race at epoch {epoch}")
    assert set(w.history_feed.history.race_seqs(epoch)) == {1, 2}, "for the update log"
    # Drawn in red on the outline of the overlap, not inside it.
    w.state.set_grid(False)
    img = w.view.grabFramebuffer()
    v = w.view
    (x0, y0), (x1, _) = v.camera.texel_center(2, 2), v.camera.texel_center(3, 3)
    sx, sy = v.camera.scale
    left, top = int(x0 - sx / 2) + 1, int(y0 - sy / 2) + 1        # just inside the box
    assert close_enough(pixel(img, left, int(y0)), RACE_COLOR)
    assert close_enough(pixel(img, int(x1), top), RACE_COLOR)
    assert not close_enough(pixel(img, int(x0), int(y0)), RACE_COLOR), "the inside is not tinted"
    # The element history names both sides.
    hd.follow((3, 3))
    lines = [[hd.dock.table.item(r, c).text() for c in range(6)]
             for r in range(hd.dock.table.rowCount())]
    assert [(ln[0], ln[1], ln[5]) for ln in lines] == [
        ("1", "producer-A", "lost to seq 2 (producer-B)"),
        ("2", "producer-B", "won against seq 1 (producer-A)")]
    hd.races_action.setChecked(False)
    assert w.view.overlays.boxes("races") == () and "race" not in hd.status.text()


def test_a_large_epoch_is_worked_out_off_the_gui_thread(window, qtbot, monkeypatch):
    """An epoch over RACE_ROWS updates is not worked out on the GUI thread: the flag says
    so, then shows the races when the race thread has them."""
    import ui.trace_races as trace_races

    monkeypatch.setattr(trace_races, "RACE_ROWS", 2)
    w = window
    s = w.session
    hd = w.history_docks
    gate = threading.Event()
    real = type(w.history_feed.history).races

    def slow_races(h, epoch):           # the race thread waits for the test's word
        if threading.current_thread() is not threading.main_thread():
            assert gate.wait(WAIT_MS / 1000)
        return real(h, epoch)

    monkeypatch.setattr(type(w.history_feed.history), "races", slow_races)
    s.set_paused(True)
    produce(s.manager, "producer-A", Fill(((0, 4), (0, 4)), 1.0))
    produce(s.manager, "producer-B", Add(((2, 6), (2, 6)), 5.0))
    produce(s.manager, "producer-A", Fill(((6, 8), (6, 8)), 2.0))
    s.set_paused(False)
    epoch = settle(qtbot, w)
    qtbot.waitUntil(lambda: hd.races.epoch == epoch, timeout=WAIT_MS)
    assert hd.races.text() == f"races at epoch {epoch}: being worked out (3 updates)…"
    assert hd.races.races == [] and w.view.overlays.boxes("races") == ()
    assert w.history_feed.hold == 1, "nothing is let go of while the race thread reads"
    gate.set()
    qtbot.waitUntil(lambda: len(hd.races.races) == 1, timeout=WAIT_MS)
    assert w.history_feed.hold == 0
    assert hd.races.text().startswith(f"1 race at epoch {epoch}")
    assert w.view.overlays.boxes("races") == (((2, 4), (2, 4)),)


def test_commuting_or_same_producer_updates_do_not_race(window, qtbot):
    w = window
    s = w.session
    s.set_paused(True)
    produce(s.manager, "producer-A", Add(((0, 4), (0, 4)), 1.0))
    produce(s.manager, "producer-B", Add(((2, 6), (2, 6)), 2.0))          # add + add commute
    produce(s.manager, "producer-B", Scale(((2, 6), (2, 6)), 2.0))        # same producer as above
    produce(s.manager, "producer-C", Fill(((6, 8), (0, 8)), 3.0))
    produce(s.manager, "producer-D", Fill(((6, 8), (0, 8)), 3.0))         # same constant
    s.set_paused(False)
    epoch = settle(qtbot, w)
    hd = w.history_docks
    qtbot.waitUntil(lambda: hd.races.epoch == epoch, timeout=WAIT_MS)
    assert [(r.winner.seq, r.loser.seq) for r in hd.races.races] == [(3, 1)], \
        "only B's Scale against A's Add"


def test_the_racing_scenario_lights_up_the_flag(window, qtbot):
    w = window
    s = w.session
    s.set_autosync(True, 30.0)
    # The scenario's own 128×128 buffer (numpy stands in place of a backend the app
    # opens itself: it races on the 8×8 one).
    assert s.start_scenario("racing", own_shape=s.backend != "numpy"), s.last_error
    hd = w.history_docks
    qtbot.waitUntil(lambda: len(hd.races.races) > 0, timeout=10_000)
    assert w.view.overlays.boxes("races")
    race = hd.races.races[0]
    assert race.winner.producer != race.loser.producer
    assert race.winner.producer.startswith("racing-producer-")
    s.stop_scenario()


# -- races() against its definition, brute force ---------------------------------------
def _stream(rng, n: int, shape=(12, 12)):
    """Events of n random updates, made visible in one epoch."""
    events, seq = [], 0
    for k in range(n):
        seq += 1
        producer = f"p{rng.integers(0, 3)}"
        kind = rng.integers(0, 5)
        if kind == 4:
            m = int(rng.integers(1, 6))
            idx = np.stack([rng.integers(0, s, m) for s in shape], axis=1).astype(np.int64)
            vals = rng.standard_normal(m).astype(np.float32)
            events.append(Event(k, k, "enqueue", seq, m, 0, producer, 0, "set",
                                indices=idx, values=vals))
            seq += m - 1
            continue
        region = tuple(tuple(sorted(int(x) for x in rng.integers(0, s + 1, 2))) for s in shape)
        op = ("fill", "add", "scale", "fill")[kind]
        value = float(rng.choice([1.0, 2.0]))
        events.append(Event(k, k, "enqueue", seq, 1, 0, producer, 0, op, region=region, value=value))
    events.append(Event(n, n, "visible", seq, 0, 1, "", 0, ""))
    return events


def _brute(h: UpdateHistory, epoch: int):
    from app.history import _commute

    rows = [r for r in h.rows_visible_at(epoch) if r.bbox() is not None]
    out = set()
    for j, later in enumerate(rows):
        for p in {r.producer for r in rows} - {later.producer}:
            for earlier in reversed(rows[:j]):
                if earlier.producer != p or _commute(earlier, later):
                    continue
                cells_a = _cells(earlier)
                common = cells_a & _cells(later)
                if common:
                    arr = np.array(sorted(common))
                    box = tuple((int(a), int(b) + 1) for a, b in zip(arr.min(0), arr.max(0)))
                    out.add((later.seq, earlier.seq, box))
                    break
    return out


def _cells(row):
    if row.indices is not None:
        return {tuple(int(x) for x in i) for i in row.indices}
    (r0, r1), (c0, c1) = row.region
    return {(r, c) for r in range(r0, r1) for c in range(c0, c1)}


@pytest.mark.parametrize("seed", range(6))
def test_races_match_their_definition(seed, monkeypatch):
    import app.races as races

    monkeypatch.setattr(races, "RACE_BLOCK", 7)      # exercise the look-back past a block
    rng = np.random.default_rng(seed)
    evs = _stream(rng, 60)
    h = UpdateHistory()
    h.ingest(evs, len(evs))
    got = {(r.winner.seq, r.loser.seq, r.overlap) for r in h.races(1)}
    want = _brute(h, 1)
    # An element set's exact overlap may need more than MAX_SET_TRIES earlier rows.
    assert got <= want and len(want - got) <= 2, (sorted(want - got), sorted(got - want))
    assert all(r.epoch == 1 for r in h.races(1))


def test_the_update_log_can_outline_a_selected_row(window, qtbot):
    w = window
    s = w.session
    assert s.enqueue(Fill(((1, 3), (2, 7)), 1.0)) is not None
    s.manager.set_many([[0, 0], [5, 5]], [1.0, 2.0])
    settle(qtbot, w)
    hd = w.history_docks
    rows = w.history_feed.history.rows
    hd.outline_row(rows[0])
    assert w.view.overlays.boxes("selected-row") == (((1, 3), (2, 7)),)
    hd.outline_row(rows[1])
    assert w.view.overlays.boxes("selected-row") == (((0, 1), (0, 1)), ((5, 6), (5, 6)))
    hd.outline_row(None)
    assert "selected-row" not in w.view.overlays.names()
