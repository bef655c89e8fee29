"""Recording a live session from its history (app.recording): the trace replays to the
front the session showed at every epoch after Record started."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import app
from app import Add, Fill, Scale, Set, Write
from app.history import UpdateHistory
from app.keyframes import TraceIndex
from app.manager import Event
from app.recording import Recording, RecordingError
from app.reference import first_difference, same_bits
from app.scenarios import get_scenario
from app.trace import read_trace
from tests.conftest import require_backend


def _feed(m, history: UpdateHistory) -> None:
    events, nxt = m.events(history.next_event)
    history.ingest(events, nxt)


def _extra_producer(m, stop: threading.Event, shape) -> threading.Thread:
    """A producer with the ops the racing scenario lacks: Set, set_many, Write, NaN/Inf."""

    def run() -> None:
        rng = np.random.default_rng(5)
        k = 0
        while not stop.is_set():
            k += 1
            idx = np.stack([rng.integers(0, s, 16) for s in shape], axis=1)
            vals = rng.normal(size=16).astype(np.float32)
            vals[0] = [np.nan, np.inf, -np.inf, 1.0][k % 4]
            m.set_many(idx, vals)
            r = int(rng.integers(0, shape[0] - 3))
            m.enqueue_many([
                Set((r, r), float(k)),
                Write(((r, r + 3), (0, 4)), rng.normal(size=(3, 4)).astype(np.float32)),
                Add(((0, shape[0]), (r, r + 1)), 0.5),
                Scale(((r, r + 2), (0, shape[1])), 1.5),
                Fill(((r, r + 1), (2, 5)), -2.0),
            ])
            stop.wait(0.01)

    t = threading.Thread(target=run, name="extra-producer")
    t.start()
    return t


@pytest.mark.parametrize("backend", ["numpy", "gl"])
def test_recording_replays_to_every_front_after_the_start(backend, tmp_path, request):
    if backend == "gl":
        request.getfixturevalue("qapp")
    require_backend(backend)
    shape = (32, 32)
    m = app.open_manager(backend, shape)
    history = UpdateHistory(fill=m.fill)
    stop = threading.Event()
    run = get_scenario("racing").start(m, rate=100.0)   # three racing producers
    extra = _extra_producer(m, stop, shape)
    try:
        for _ in range(4):                  # the session runs a while before Record
            m.synchronize(timeout=10)
            _feed(m, history)
        rec = Recording.start(m, history)
        fronts = {rec.start_epoch: rec.keyframe}
        for _ in range(20):
            epoch = m.synchronize(timeout=10)
            fronts[epoch] = np.array(m.front(), copy=True)
            _feed(m, history)
            stop.wait(0.01)
    finally:
        stop.set()
        run.stop(5.0)
        extra.join(5.0)
        m.close()
    assert not extra.is_alive()
    summary = rec.write(tmp_path / "rec.jsonl")
    assert summary.epochs == 21 and summary.updates > 40
    assert (summary.first_epoch, summary.last_epoch) == (rec.start_epoch, rec.start_epoch + 20)
    idx = TraceIndex.open(tmp_path / "rec.jsonl")
    assert idx.n_epochs == 21 and idx.seq_kind == "trace"
    producers = {r.producer for r in read_trace(tmp_path / "rec.jsonl").records if r.producer}
    assert "extra-producer" in producers and len(producers) >= 4   # keyframe + racing threads
    flush = backend == "gl"
    for k in range(1, idx.n_epochs + 1):
        want = fronts[rec.start_epoch + k - 1]
        got = idx.front_at(k)
        assert same_bits(got, want, flush_subnormals=flush), f"epoch {k}: {first_difference(got, want)}"


def test_a_dropped_payload_refuses_the_recording(tmp_path):
    h = UpdateHistory()
    ev = [Event(0, 1, "enqueue", 1, 1, 0, "a", 0, "fill", ((0, 2),), 1.0),
          Event(1, 2, "enqueue", 2, 1, 0, "b", 0, "write", ((0, 2),), None, None, None, True),
          Event(2, 3, "visible", 3, 0, 1, "", 0, "")]
    rec = Recording(h, np.zeros(2, np.float32), start_epoch=0, start_seq=0)
    h.ingest(ev, 3)
    assert "seq 2 (write by b) lost its payload" in rec.problems()[0]
    with pytest.raises(RecordingError, match="not a faithful recording"):
        rec.write(tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_dropped_events_refuse_the_recording(tmp_path):
    h = UpdateHistory()
    rec = Recording(h, np.zeros(2, np.float32), start_epoch=0, start_seq=0)
    h.ingest([Event(5, 3, "visible", 3, 0, 1, "", 0, "")], 6)   # events 0-4 lost
    assert "5 ordering events were dropped" in rec.problems()[0]
    with pytest.raises(RecordingError):
        rec.write(tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_an_idle_session_records_its_keyframe_and_empty_epochs(tmp_path):
    with app.open_manager("numpy", (3,), fill=2.0) as m:
        m.enqueue(Set((1,), 7.0))
        m.synchronize(timeout=5)
        h = UpdateHistory(fill=2.0)
        _feed(m, h)
        rec = Recording.start(m, h)
        m.synchronize(timeout=5)
        m.synchronize(timeout=5)
        _feed(m, h)
    s = rec.write(tmp_path / "r.jsonl")
    assert (s.epochs, s.updates) == (3, 1)
    idx = TraceIndex.open(tmp_path / "r.jsonl")
    assert [idx.front_at(k).tolist() for k in (1, 3)] == [[2, 7, 2]] * 2
