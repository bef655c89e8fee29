"""The trace player window's docks (``ui.trace_docks``): the update log, the timeline
and the element history over a trace recorded on the real C backend by racing
producer threads, linked to the player both ways — a row selected scrubs the player
to right after that update (checked bit for bit against a numpy replay of the trace
up to it), a scrub selects the row of the last update shown; race flags in the rows;
the hover readout's last writer; a capped history says so."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import require_backend
from PyQt6.QtCore import Qt

import app
from app import Add, Fill, Scale, Set, Write
from app.keyframes import TraceIndex
from app.reference import ReferenceModel, same_bits
from app.trace import SyncMarker, read_trace
from ui.testing import require_gl  # prepares Qt first
from ui.update_log_model import COL_EPOCH, COL_OP, COL_PRODUCER, COL_RACE, COL_SEQ, RACE_BG

WAIT_MS = 20_000
SHAPE = (16, 20)


def record_race(path, epochs: int = 6) -> None:
    """Three producer threads race on overlapping squares of a C manager (cffi releases
    the GIL: they race in C) while this thread synchronizes; the C library writes the trace.
    Every epoch holds a round of all three (a barrier per round): a producer that ran all
    its updates in one time slice would otherwise leave epochs without a race."""
    require_backend("c")
    per_round = 60 // epochs
    with app.open_manager("c", SHAPE, fill=0.5, trace=str(path)) as m:
        go, done = threading.Barrier(4), threading.Barrier(4)

        def produce(k: int) -> None:
            rng = np.random.default_rng(k)
            for rnd in range(epochs):
                go.wait(timeout=30)
                for i in range(rnd * per_round, (rnd + 1) * per_round):
                    r, c = (int(x) for x in rng.integers(0, 12, 2))
                    kind = (Fill, Add, Scale)[i % 3]
                    m.enqueue(kind(((r, r + 5), (c, c + 6)),
                                   float(k + 1) * (0.5 if kind is Scale else 1)))
                    if i % 20 == 0:
                        m.set_many(rng.integers(0, 16, (6, 2)), rng.standard_normal(6))
                    if i == 30:
                        m.enqueue(Write(((0, 2), (0, 3)),
                                        np.array([[np.nan, np.inf, -0.0], [1e-3, k, -k]])))
                done.wait(timeout=30)

        threads = [threading.Thread(target=produce, args=(k,), name=f"producer-{k}") for k in range(3)]
        for t in threads:
            t.start()
        for _ in range(epochs):
            go.wait(timeout=30)
            done.wait(timeout=30)
            m.synchronize(timeout=30)
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()


@pytest.fixture(scope="module")
def race_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("docks") / "race.jsonl"
    record_race(path)
    trace = read_trace(path)
    updates = [r for r in trace.records if not isinstance(r.item, SyncMarker)]
    assert [r.seq for r in updates] == list(range(1, len(updates) + 1))
    assert len({r.producer for r in updates}) == 3
    return path, trace


def back_after(trace, seq: int) -> np.ndarray:
    """The numpy reference replay of the trace's records up to update ``seq``: its back."""
    m = ReferenceModel(trace.shape, trace.fill)
    for rec in trace.records:
        if isinstance(rec.item, SyncMarker):
            m.synchronize()
            continue
        m.apply(rec.item)
        if rec.seq == seq:
            return m.back.copy()
    raise AssertionError(f"no update {seq}")


def last_seq_of_epoch(trace, epoch: int) -> int | None:
    """The seq of the last update before the ``epoch``-th sync line (None: epoch 0)."""
    if epoch == 0:
        return None
    syncs, last = 0, None
    for rec in trace.records:
        if isinstance(rec.item, SyncMarker):
            syncs += 1
            if syncs == epoch:
                return last
        else:
            last = rec.seq
    return last


def touches(u, index) -> bool:
    if isinstance(u, Set):
        return tuple(u.index) == tuple(index)
    return all(a <= i < b for i, (a, b) in zip(index, u.region))


def _window(qtbot, path, size=(1400, 900)):
    require_gl()
    from ui.trace_window import TracePlayerWindow

    w = TracePlayerWindow(str(path))
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    p = w.player
    qtbot.waitUntil(lambda: p.index is not None and p.shown == (p.index.n_epochs, None),
                    timeout=WAIT_MS)
    return w


def _wait_shown(qtbot, player, epoch, seq=None):
    qtbot.waitUntil(lambda: player.shown == (epoch, seq), timeout=WAIT_MS)


def test_the_log_lists_every_update_of_the_trace(qtbot, race_trace):
    path, trace = race_trace
    w = _window(qtbot, path)
    log = w.docks.log
    updates = [r for r in trace.records if not isinstance(r.item, SyncMarker)]
    model = log.model
    assert model.rowCount() == len(updates) == w.player.index.n_updates
    got = [(model.text(model.row(k), COL_SEQ), model.text(model.row(k), COL_PRODUCER),
            model.text(model.row(k), COL_OP)) for k in range(model.rowCount())]
    assert got == [(str(r.seq), r.producer, r.item.op) for r in updates]
    # The epoch each became visible: one more than the syncs before it.
    epochs, syncs = [], 0
    for rec in trace.records:
        if isinstance(rec.item, SyncMarker):
            syncs += 1
        else:
            epochs.append(str(syncs + 1))
    assert [model.text(model.row(k), COL_EPOCH) for k in range(model.rowCount())] == epochs
    assert log.windowTitle() == "Update log" and log.isVisible() and w.docks.timeline.isVisible()
    tl = w.docks.timeline.view
    assert len(w.docks.columns.swap_t) == w.player.index.n_epochs, "a swap line per sync"
    # Opened at the last epoch: the last update is selected, the cursor at the last swap.
    assert log.selected_seq() == updates[-1].seq
    assert tl.selected_row == len(updates) - 1
    assert tl.cursor_t == w.docks.columns.swap_t[-1]


def test_selecting_a_row_scrubs_the_player_to_right_after_that_update(qtbot, race_trace):
    path, trace = race_trace
    w = _window(qtbot, path)
    p, log = w.player, w.docks.log
    table, model = log.table, log.model
    n = model.rowCount()
    for k in (0, n // 3, n // 2 + 1, n - 1):
        seq = model.row(k).seq
        index = model.index(k, 0)
        table.scrollTo(index)
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                         pos=table.visualRect(index).center())
        qtbot.waitUntil(lambda s=seq: p.shown is not None and p.shown[1] == s, timeout=WAIT_MS)
        assert same_bits(p.view.front(), back_after(trace, seq)), f"seq {seq}"
        assert p.seq_box.value() == seq and log.selected_seq() == seq
        assert f"right after seq {seq}" in p.info.text()
        assert w.docks.timeline.view.selected_row == k
        assert w.docks.timeline.view.cursor_t == w.docks.columns.t_enq[k]
    # A mark clicked on the timeline: that update, in the log and in the player.
    tl = w.docks.timeline.view
    tl.fit()
    qtbot.mouseClick(tl, Qt.MouseButton.LeftButton, pos=tl.mark_pos(n // 5).toPoint())
    assert tl.selected_row is not None
    seq = model.row(tl.selected_row).seq
    qtbot.waitUntil(lambda: p.shown is not None and p.shown[1] == seq, timeout=WAIT_MS)
    assert log.selected_seq() == seq and same_bits(p.view.front(), back_after(trace, seq))
    log.select_seq(model.row(n - 1).seq, emit=False)
    # Arrow keys walk the calls one by one.
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Up)
    seq = model.row(n - 2).seq
    qtbot.waitUntil(lambda: p.shown is not None and p.shown[1] == seq, timeout=WAIT_MS)
    assert same_bits(p.view.front(), back_after(trace, seq))
    # Elsewhere by the slider, then Enter on the selected row: back to that update.
    p.slider.setValue(1)
    _wait_shown(qtbot, p, 1)
    k = n // 4
    log.select_seq(model.row(k).seq, emit=False)
    qtbot.keyClick(table, Qt.Key.Key_Return)
    seq = model.row(k).seq
    qtbot.waitUntil(lambda: p.shown is not None and p.shown[1] == seq, timeout=WAIT_MS)
    assert same_bits(p.view.front(), back_after(trace, seq))


def test_scrubbing_to_an_epoch_selects_its_last_update(qtbot, race_trace):
    path, trace = race_trace
    w = _window(qtbot, path)
    p, log, tl = w.player, w.docks.log, w.docks.timeline.view
    last = p.index.n_epochs
    syncs = [rec for rec in trace.records if isinstance(rec.item, SyncMarker)]
    for epoch in (2, 0, last // 2, 1, last):
        p.slider.setValue(epoch)
        _wait_shown(qtbot, p, epoch)
        want = last_seq_of_epoch(trace, epoch)
        assert log.selected_seq() == want, epoch
        if want is None:
            assert tl.selected_row is None and tl.cursor_t == w.docks.columns.t0
        else:
            k = w.docks.feed.history.row_index(want)
            assert tl.selected_row == k and log.model.row(log.table.currentIndex().row()).seq == want
            assert tl.cursor_t == int(syncs[epoch - 1].t * 1e9), "the cursor on that epoch's swap"
            assert p.seq_box.value() == want
    # The keys the player had still step epochs.
    p.setFocus()
    qtbot.keyClick(p, Qt.Key.Key_Home)
    _wait_shown(qtbot, p, 0)
    qtbot.keyClick(p, Qt.Key.Key_Right)
    _wait_shown(qtbot, p, 1)
    assert log.selected_seq() == last_seq_of_epoch(trace, 1)


def test_race_flags_in_the_rows_and_the_readout_names_the_last_writer(qtbot, race_trace):
    path, trace = race_trace
    w = _window(qtbot, path)
    p, model = w.player, w.docks.log.model
    h = p.history
    p.show_epoch(0)
    _wait_shown(qtbot, p, 0)
    epoch = p.next_race()
    assert epoch is not None, "three producers on overlapping squares raced"
    _wait_shown(qtbot, p, epoch)
    raced = set(h.race_seqs(epoch))
    assert raced
    for k in range(model.rowCount()):
        r = model.row(k)
        if r.epoch_visible != epoch:
            continue
        text = model.text(r, COL_RACE)
        bg = model.data(model.index(k, COL_SEQ), Qt.ItemDataRole.BackgroundRole)
        if r.seq in raced:
            assert text.startswith(("won against seq", "lost to seq")), text
            assert bg is not None and bg.color() == RACE_BG
        else:
            assert text == "" and bg is None
    # The readout over an element in the first race's overlap: the last update in the
    # trace, up to this epoch, that wrote it.
    race = h.races(epoch)[0]
    index = tuple(a for a, _ in race.overlap)
    want = None
    syncs = 0
    for rec in trace.records:
        if isinstance(rec.item, SyncMarker):
            syncs += 1
            if syncs == epoch:
                break
        elif touches(rec.item, index):
            want = rec
    p._on_hover(index)
    assert f"last write: seq {want.seq} {want.item.op} by {want.producer}" in p.readout.text()
    # The element history follows a clicked element and checks it against the front.
    dock = w.docks.history
    p.view.sigElementClicked.emit(index)
    assert dock.isVisible() and dock.index == index
    assert "✓" in dock.footer.text() and f"as seq {want.seq} left it" in dock.footer.text()
    # By seq: the back buffer right after an earlier update of that element.
    first = next(rec for rec in trace.records
                 if not isinstance(rec.item, SyncMarker) and touches(rec.item, index))
    p.show_seq(first.seq)
    qtbot.waitUntil(lambda: p.shown is not None and p.shown[1] == first.seq, timeout=WAIT_MS)
    assert f"last write: seq {first.seq} {first.item.op}" in p.readout.text()
    assert f"back buffer after seq {first.seq}" in dock.footer.text() and "✓" in dock.footer.text()


def test_a_capped_history_says_so(qtbot, race_trace, monkeypatch):
    path, trace = race_trace
    opened = TraceIndex.open.__func__

    def open_capped(cls, path, **kw):
        return opened(cls, path, history_rows=40, **kw)

    monkeypatch.setattr(TraceIndex, "open", classmethod(open_capped))
    w = _window(qtbot, path)
    p, log = w.player, w.docks.log
    n = p.index.n_updates
    assert not p.index.history_complete and log.model.rowCount() == 40
    assert f"the first 40 of {n} updates" in log.windowTitle()
    assert f"the first 40 of {n} updates" in w.docks.timeline.windowTitle()
    # At the last epoch (beyond the history): nothing selected, the readout does not guess.
    assert log.selected_seq() is None
    p._on_hover((0, 0))
    assert "last write: not known (the player's history holds the first 40 updates)" in p.readout.text()
    # A row in the history still scrubs, bit for bit.
    log.table.selectRow(30)
    seq = log.model.row(30).seq
    qtbot.waitUntil(lambda: p.shown is not None and p.shown[1] == seq, timeout=WAIT_MS)
    assert same_bits(p.view.front(), back_after(trace, seq))
