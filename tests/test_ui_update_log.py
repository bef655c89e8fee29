"""The update log (ui/update_log.py): its model against hand-built update streams with
known answers (numpy and GL backends, through the real ``HistoryFeed``), 100 000
rows appended and filtered in a bounded number of model signals, follow-tail,
the outline of a selected row, and the dropped-events warning."""

from __future__ import annotations

import pytest
from conftest import backend_param
from PyQt6.QtCore import QObject, pyqtSignal

import app
import ui.testing  # noqa: F401  (prepares Qt first)
from app import Add, Fill, Set
from app.history import UpdateHistory
from app.manager import Event
from ui.display_state import DisplayState
from ui.history_columns import HistoryColumns, LogFilter, nd_box, plane_box
from ui.history_feed import HistoryFeed
from ui.log_bench import OPS, synthetic_events
from ui.update_log import UpdateLogDock
from ui.update_log_model import (
    COL_APP,
    COL_EPOCH,
    COL_OP,
    COL_PRODUCER,
    COL_REGION,
    COL_SEQ,
    COL_STATE,
    COL_VALUE,
    UpdateLogModel,
)

WAIT = 10.0


class FakeSession(QObject):
    """What ``HistoryFeed`` reads of a Session: a manager, its offsets and two signals."""

    sigManagerChanged = pyqtSignal()
    sigFrontChanged = pyqtSignal(int, object)

    def __init__(self, manager) -> None:
        super().__init__()
        self.manager = manager
        self.seq_offset = self.epoch_offset = 0
        self.history_continues = False


@pytest.fixture(params=["numpy", "gl"])
def backend(request) -> str:
    return backend_param(request)


def texts(model: UpdateLogModel, col: int) -> list[str]:
    return [model.text(model.row(i), col) for i in range(model.rowCount())]


def test_the_log_model_tells_a_hand_built_stream(qtbot, backend):
    with app.open_manager(backend, (4, 4)) as m:
        session = FakeSession(m)
        feed = HistoryFeed(session)
        columns = HistoryColumns(feed)
        model = UpdateLogModel(columns)
        m.enqueue(Fill(((0, 2), (0, 2)), 1.0))
        m.synchronize(timeout=WAIT)
        m.pause()
        m.enqueue(Add(((1, 3), (1, 3)), 2.0))
        m.set_many([[3, 3], [0, 0]], [5.0, 6.0])
        m.enqueue(Set((2, 1), -0.5))
        feed.poll()     # (its timer polls too: either way the rows come in)
        qtbot.waitUntil(lambda: model.rowCount() == 4, timeout=5000)
        assert texts(model, COL_SEQ) == ["1", "2", "3–4", "5"]
        assert texts(model, COL_OP) == ["fill", "add", "set ×n", "set"]
        assert texts(model, COL_REGION) == ["[0:2, 0:2]", "[1:3, 1:3]",
                                            "2 elements in [0:4, 0:4]", "(2, 1)"]
        assert texts(model, COL_VALUE) == ["1", "2", "5 … 6", "-0.5"]
        assert texts(model, COL_PRODUCER) == ["MainThread"] * 4
        assert texts(model, COL_STATE) == ["visible", "pending", "pending", "pending"]
        assert texts(model, COL_EPOCH) == ["1", "", "", ""]
        assert texts(model, COL_APP)[1:] == ["", "", ""], "nothing applied: no apply time"

        m.step(2)   # the Add and the first element of the run
        qtbot.waitUntil(lambda: m.stats().applied_seq == 3, timeout=5000)
        feed.poll()
        qtbot.waitUntil(lambda: texts(model, COL_STATE) == ["visible", "applied", "pending",
                                                            "pending"], timeout=5000)
        assert texts(model, COL_APP)[2].endswith("(1/2)"), "a part-applied run says how far"
        assert columns.newest_applied_row() == 2

        m.resume()
        m.synchronize(timeout=WAIT)
        feed.poll()
        assert texts(model, COL_STATE) == ["visible"] * 4
        assert texts(model, COL_EPOCH) == ["1", "2", "2", "2"]
        enq = [float(t) for t in texts(model, 5)]
        app_ms = [float(t.split()[0]) for t in texts(model, COL_APP)]
        assert enq == sorted(enq) and all(a >= e for a, e in zip(app_ms, enq))


# -- 100 000 rows --------------------------------------------------------------------------

def grow(h: UpdateHistory, columns: HistoryColumns, n: int, batch: int) -> None:
    done = len(h.rows)
    while done < n:
        end = min(n, done + batch)
        evs = synthetic_events(done, end, h.next_event)
        h.ingest(evs, h.next_event + len(evs))
        columns.sync()
        done = end


def test_a_hundred_thousand_rows_append_and_filter_in_few_model_signals(qtbot):
    h = UpdateHistory()
    columns = HistoryColumns()
    columns.set_history(h)
    model = UpdateLogModel(columns)
    inserted, resets = [], []
    model.rowsInserted.connect(lambda _p, a, b: inserted.append(b - a + 1))
    model.modelReset.connect(lambda: resets.append(1))

    grow(h, columns, 100_000, batch=10_000)
    assert model.rowCount() == 100_000
    assert inserted == [10_000] * 10, "one insert per batch, not per row"

    model.set_filter(LogFilter(producer="beta"))
    assert resets == [1], "a filter is one reset"
    assert model.rowCount() == len(range(1, 100_000, 3))
    assert [model.row(i).seq for i in range(3)] == [2, 5, 8]
    assert model.row(model.rowCount() - 1).producer == "beta"

    model.set_filter(LogFilter(producer="beta", op="add"))    # k % 3 == 1 and k % 4 == 1
    want = [k + 1 for k in range(100_000) if k % 3 == 1 and k % 4 == 1]
    assert [model.row(i).seq for i in range(model.rowCount())] == want

    model.set_filter(LogFilter(seq_lo=50_000, seq_hi=50_009))
    assert [model.row(i).seq for i in range(model.rowCount())] == list(range(50_000, 50_010))

    box = ((0, 4), (8, 12))   # the fills/adds/scales of c0 in 5..11 (k*4 mod 1000), and no sets
    model.set_filter(LogFilter(box=box))
    got = [model.row(i).seq for i in range(model.rowCount())]
    want = [k + 1 for k in range(100_000)
            if OPS[k % 4] != "set" and (k * 4) % 1000 < 12 and (k * 4) % 1000 + 4 > 8]
    want += [k + 1 for k in range(100_000)
             if OPS[k % 4] == "set" and k % 7 < 4 and 8 <= k % 7 < 12]
    assert got == sorted(want) and got

    # Appending while filtered adds only the matching rows, in one insert.
    model.set_filter(LogFilter(producer="gamma"))
    inserted.clear()
    grow(h, columns, 100_300, batch=300)
    assert inserted == [100] and model.rowCount() == len(range(2, 100_300, 3))
    model.set_filter(LogFilter())
    assert model.rowCount() == 100_300


def test_state_changes_are_one_data_changed_per_poll(qtbot):
    h = UpdateHistory()
    columns = HistoryColumns()
    columns.set_history(h)
    model = UpdateLogModel(columns)
    grow(h, columns, 1000, batch=1000)
    changed = []
    model.dataChanged.connect(lambda a, b, _r: changed.append((a.row(), b.row())))
    applies = [Event(h.next_event + i, 5_000_000 + i, "apply", i + 1, 1, 0, "", 1, OPS[i % 4])
               for i in range(600)]
    h.ingest(applies, h.next_event + 600)
    columns.sync()
    assert changed == [(0, 999)] and columns.applied_rows == 600
    assert model.text(model.row(599), COL_STATE) == "applied"
    assert model.text(model.row(600), COL_STATE) == "pending"


# -- the dock ------------------------------------------------------------------------------------

@pytest.fixture
def dock(qtbot):
    h = UpdateHistory()
    columns = HistoryColumns()
    columns.set_history(h)
    state = DisplayState()
    d = UpdateLogDock(columns, state, lambda: 2)
    qtbot.addWidget(d)
    d.resize(900, 400)
    d.show()
    qtbot.waitExposed(d)
    d.h, d.st = h, state
    return d


def test_follow_tail_keeps_the_newest_in_view_until_the_user_scrolls_up(qtbot, dock):
    bar = dock.table.verticalScrollBar()
    grow(dock.h, dock.columns, 500, batch=500)
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=5000)
    grow(dock.h, dock.columns, 800, batch=300)
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=5000)
    assert dock.follow.isChecked()
    bar.setValue(10)                                   # the user scrolls up
    assert not dock.follow.isChecked()
    grow(dock.h, dock.columns, 900, batch=100)
    assert bar.value() == 10, "not following: the view stays where the user put it"
    bar.setValue(bar.maximum())                        # the user scrolls back to the end
    assert dock.follow.isChecked()
    grow(dock.h, dock.columns, 1000, batch=100)
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=5000)
    dock.select_seq(5)                                 # looking at one row: not following
    assert not dock.follow.isChecked()
    dock.follow.setChecked(True)
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=5000)


def test_selecting_a_row_outlines_its_region_and_names_its_seq(qtbot, dock):
    grow(dock.h, dock.columns, 20, batch=20)
    with qtbot.waitSignal(dock.sigSeqSelected, timeout=5000) as sig:
        dock.table.selectRow(9)                       # k = 9: an "add" on [0:4, 36:40]
    assert sig.args == [10]
    assert dock.st.selection == ((0, 4), (36, 40))
    assert dock.select_seq(4) and dock.st.selection == ((3, 4), (3, 4)), "a set: its element"
    assert dock.selected_seq() == 4


def test_the_header_counts_what_the_ring_lost(qtbot, dock):
    grow(dock.h, dock.columns, 5, batch=5)
    assert "lost" not in dock.header.text()
    dock.h.dropped = 12_345
    dock.columns.sync()
    grow(dock.h, dock.columns, 6, batch=1)
    assert ("12 345 earlier events were lost: the ring wrapped, or an attached program "
            "skipped them") in dock.header.text()


def test_the_filter_controls_and_the_selection_box(qtbot, dock):
    grow(dock.h, dock.columns, 60, batch=60)
    dock.producer_combo.setCurrentText("gamma")
    dock.apply_filter()
    assert {dock.model.row(i).producer for i in range(dock.model.rowCount())} == {"gamma"}
    dock.producer_combo.setCurrentIndex(0)
    dock.seq_from.setText("10")
    dock.seq_to.setText("12")
    dock.apply_filter()
    assert [dock.model.row(i).seq for i in range(dock.model.rowCount())] == [10, 11, 12]
    dock.seq_from.clear()
    dock.seq_to.clear()
    dock.st.set_selection(((0, 1), (0, 5)))
    dock.box_check.setChecked(True)
    seqs = [dock.model.row(i).seq for i in range(dock.model.rowCount())]
    assert seqs == [1, 2, 8, 36], "the fills/adds over columns 0..4 and the sets of (0, 0)"
    dock.box_check.setChecked(False)
    assert dock.model.rowCount() == 60


def test_plane_boxes_of_1d_2d_3d_regions():
    assert plane_box(((2, 5),), 1) == (((0, 1), (2, 5)), None)
    assert plane_box(((1, 2), (3, 4)), 2) == (((1, 2), (3, 4)), None)
    assert plane_box(((0, 2), (1, 2), (3, 4)), 3) == (((1, 2), (3, 4)), (0, 2))
    assert nd_box(((0, 1), (2, 5)), 1) == ((2, 5),)
    assert nd_box(((1, 2), (3, 4)), 3, z=7) == ((7, 8), (1, 2), (3, 4))


def test_painting_a_hundred_thousand_rows_asks_only_for_the_rows_in_view(qtbot, dock):
    grow(dock.h, dock.columns, 100_000, batch=50_000)
    calls = []
    data = dock.model.data

    def counting(index, role=0):
        calls.append(index.row())
        return data(index, role)

    dock.model.data = counting     # the view calls the Python override
    dock.table.viewport().grab()
    assert calls, "the table painted"
    rows = set(calls)
    shown = dock.table.viewport().height() // dock.table.verticalHeader().defaultSectionSize() + 2
    assert len(rows) <= shown and min(rows) >= 100_000 - shown, "only the tail, in view"


def test_a_long_session_is_bounded_and_the_log_says_what_was_let_go_of(qtbot, backend,
                                                                        monkeypatch):
    import ui.history_feed as hf

    monkeypatch.setattr(hf, "MAX_ROWS", 40)
    monkeypatch.setattr(hf, "KEEP_ROWS", 25)
    monkeypatch.setattr(hf, "PAYLOAD_UNITS", 64)
    with app.open_manager(backend, (8, 8)) as m:
        session = FakeSession(m)
        feed = HistoryFeed(session)
        columns = HistoryColumns(feed)
        model = UpdateLogModel(columns)
        log = UpdateLogDock(columns, DisplayState())
        qtbot.addWidget(log)
        for k in range(60):
            m.enqueue(Fill(((0, 8), (0, 8)), float(k)))
            m.set_many([[k % 8, 0], [0, k % 8]], [1.0, 2.0])
            m.synchronize(timeout=WAIT)
            feed.poll()
        h = feed.history
        assert len(h.rows) <= 40 and h.rows[-1].seq == 179
        assert h.forgotten > 0 and h.forgotten + sum(r.count for r in h.rows) == 180
        assert h.payload_units <= 64
        qtbot.waitUntil(lambda: model.rowCount() == len(h.rows), timeout=5000)
        assert texts(model, COL_SEQ)[-1] == "179–180"
        assert "let go of to bound memory" in log.header.text()
        # While a recording reads the history, nothing is let go of.
        feed.hold = 1
        n0 = len(feed.history.rows)
        for k in range(30):
            m.enqueue(Set((1, 1), float(k)))
            m.synchronize(timeout=WAIT)
            feed.poll()
        assert len(feed.history.rows) == n0 + 30
