"""``app.history``: the index every debug view reads, built from a manager's events,
checked against hand-built update streams with known answers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import backend_param

import app
from app import Add, Fill, Scale, Set, Write
from app.history import UpdateHistory

WAIT = 10.0


@pytest.fixture(params=["numpy", "gl", "c"])
def backend(request) -> str:
    return backend_param(request)


def ingest_all(h: UpdateHistory, m) -> None:
    evs, nxt = m.events(h.next_event)
    h.ingest(evs, nxt)


def test_rows_states_and_epochs(open_mgr):
    m = open_mgr((4, 4))
    h = UpdateHistory(fill=0.0)
    m.enqueue(Fill(((0, 2), (0, 2)), 1.0))
    m.synchronize(timeout=WAIT)
    m.pause()
    m.enqueue(Add(((1, 3), (1, 3)), 2.0))
    m.set_many([[3, 3], [0, 0]], [5.0, 6.0])
    ingest_all(h, m)
    assert [(r.seq, r.count, r.op, r.state) for r in h.rows] == [
        (1, 1, "fill", "visible"), (2, 1, "add", "pending"), (3, 2, "set", "pending")]
    assert h.rows[0].epoch_visible == 1
    m.step(1)
    m.resume()
    m.synchronize(timeout=WAIT)
    ingest_all(h, m)
    assert [r.epoch_visible for r in h.rows] == [1, 2, 2]
    assert h.row_of(4) is h.rows[2] and h.row_of(5) is None
    assert h.rows[2].bbox() == ((0, 4), (0, 4))


def test_element_history_names_every_writer_with_values_before_and_after(open_mgr):
    m = open_mgr((4, 4), fill=0.5)
    h = UpdateHistory(fill=0.5)
    m.enqueue(Fill(((0, 4), (0, 4)), 1.0))
    m.enqueue(Add(((1, 2), (1, 2)), 2.0))
    m.synchronize(timeout=WAIT)
    m.enqueue(Scale(((0, 2), (0, 2)), -3.0))
    m.set_many([[1, 1], [2, 2], [1, 1]], [7.0, 8.0, 9.0])
    m.enqueue(Write(((1, 3), (0, 2)), np.array([[10.0, 11.0], [12.0, 13.0]])))
    m.enqueue(Set((0, 0), 4.0))          # does not touch (1, 1)
    m.synchronize(timeout=WAIT)
    ingest_all(h, m)
    got = [(e.row.op, e.before, e.after, e.row.epoch_visible) for e in h.element_history((1, 1))]
    assert got == [("fill", 0.5, 1.0, 1), ("add", 1.0, 3.0, 1), ("scale", 3.0, -9.0, 2),
                   ("set", -9.0, 9.0, 2), ("write", 9.0, 11.0, 2)]
    assert float(m.front()[1, 1]) == got[-1][2], "the history ends at the front's value"


def test_races_between_producers_name_winner_and_loser(open_mgr):
    m = open_mgr((8, 8))
    h = UpdateHistory()
    m.pause()

    def produce(name, update):
        t = threading.Thread(target=lambda: m.enqueue(update), name=name)
        t.start()
        t.join(WAIT)

    produce("A", Fill(((0, 4), (0, 4)), 1.0))
    produce("B", Add(((2, 6), (2, 6)), 5.0))       # overlaps A, does not commute: a race
    produce("C", Add(((3, 5), (3, 5)), 1.0))       # overlaps B but Add+Add commute; overlaps A
    produce("A", Fill(((6, 8), (6, 8)), 2.0))      # no overlap with anyone else
    m.resume()
    m.synchronize(timeout=WAIT)
    ingest_all(h, m)
    races = h.races(1)
    pairs = sorted((r.loser.producer, r.winner.producer, r.overlap) for r in races)
    assert pairs == [("A", "B", ((2, 4), (2, 4))), ("A", "C", ((3, 4), (3, 4)))]
    assert h.races(2) == []


@pytest.mark.parametrize("ring_backend", ["numpy"])
def test_a_wrapped_ring_is_counted(ring_backend):
    with app.open_manager(ring_backend, (4,), event_capacity=8) as m:
        h = UpdateHistory()
        for k in range(20):   # a sync each: consecutive Sets would share one event
            m.enqueue(Set((k % 4,), float(k)))
            m.synchronize(timeout=WAIT)
        ingest_all(h, m)
        assert h.dropped > 0 and h.next_event == m.events()[1]
        hist = h.element_history((0,))
        assert hist == [] or hist[0].before is None, "unknown before what was dropped"


def _session(m, rng, epochs: int) -> None:
    """Racing-free scripted epochs of every kind of update, each made visible."""
    shape = m.shape
    for _ in range(epochs):
        r, c = int(rng.integers(shape[0])), int(rng.integers(shape[1]))
        m.enqueue(Fill(((0, r + 1), (0, c + 1)), float(rng.integers(9))))
        m.enqueue(Add(((r, shape[0]), (c, shape[1])), 1.5))
        m.set_many(rng.integers(0, shape, size=(5, 2)), rng.random(5).astype(np.float32))
        m.enqueue(Write(((r, r + 1), (0, shape[1])), rng.random((1, shape[1]))))
        m.synchronize(timeout=WAIT)


def test_a_bounded_history_keeps_the_newest_rows_and_says_what_it_let_go_of(open_mgr):
    m = open_mgr((6, 7))
    rng = np.random.default_rng(3)
    _session(m, rng, 30)
    full = UpdateHistory()
    ingest_all(full, m)
    assert len(full.rows) == 120
    t = full.tail(keep_rows=50, keep_marks=40)
    assert [r.seq for r in t.rows] == [r.seq for r in full.rows[70:]]
    assert t.forgotten == sum(r.count for r in full.rows[:70]) and full.forgotten == 0
    assert len(t.marks) <= 40 and t.marks[-1] is full.marks[-1]
    # Queries over what is kept answer as the full history does.
    for row in t.rows[::7]:
        assert t.row_of(row.seq) is row and t.row_index(row.seq) == t.rows.index(row)
    kept_epochs = [e for e in full.epochs() if e in t.epochs()]
    assert kept_epochs and kept_epochs == t.epochs()
    for e in kept_epochs[1:]:
        assert t.rows_visible_at(e) == full.rows_visible_at(e)
    for idx in [(0, 0), (5, 6), (3, 2)]:
        assert t.last_writer(idx) is full.last_writer(idx)
        got, want = t.element_history(idx), full.element_history(idx)
        assert [e.row for e in got] == [e.row for e in want if e.row.seq >= t.rows[0].seq]
        assert got[0].before is None, "what came before the kept rows is unknown"
        assert got[-1].after == want[-1].after == float(m.front()[idx])
    # It keeps growing from where it was cut.
    _session(m, rng, 2)
    ingest_all(t, m)
    assert len(t.rows) == 58 and t.rows[-1].epoch_visible == 32


def test_letting_go_of_payloads_keeps_rows_and_their_boxes(open_mgr):
    m = open_mgr((6, 7))
    rng = np.random.default_rng(4)
    _session(m, rng, 10)
    h = UpdateHistory()
    ingest_all(h, m)
    held = h.payload_units
    assert held == 10 * (5 + 7)          # set_many values and Write data
    boxes = [r.bbox() for r in h.rows]
    before = {idx: h.element_history(idx) for idx in [(0, 0), (2, 3)]}
    h.last_writer((0, 0))                 # the box index is built before letting go
    let_go = h.let_go_payloads(held // 2)
    assert let_go > 0 and h.payload_units <= held // 2
    assert [r.bbox() for r in h.rows] == boxes, "a row keeps the box it wrote in"
    gone = [r for r in h.rows if r.payload_dropped]
    assert len(gone) == let_go and all(r.values is None and r.indices is None for r in gone)
    assert gone[-1].seq < min(r.seq for r in h.rows if r.values is not None)
    for idx, want in before.items():
        got = h.element_history(idx)
        assert [e.row for e in got] == [e.row for e in want] or \
            {e.row.seq for e in want} <= {e.row.seq for e in got}
        # Rows that kept their payload still give exact values after the last let-go one.
        assert got[-1].after == want[-1].after == float(m.front()[idx]) or \
            got[-1].row.payload_dropped
