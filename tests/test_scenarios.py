"""The built-in scenarios (app/scenarios.py): start, produce, stop and join; the
racing producers' result equals the reference model replayed in seq order."""

from __future__ import annotations

import threading
import time

import pytest

from app import ReferenceModel, open_manager
from app.reference import first_difference, same_bits
from app.scenarios import SCENARIOS, Scenario, get_scenario

REQUIRED = ("waves", "racing", "sparse", "stress")


def _alive(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _run_for(m, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m.synchronize(5.0)
        time.sleep(0.01)


def test_registry_has_the_required_scenarios():
    for name in REQUIRED:
        sc = SCENARIOS[name]
        assert isinstance(sc, Scenario) and sc.name == name
        assert sc.description and sc.producers >= 1 and sc.rate > 0
        assert 1 <= len(sc.shape) <= 3
    assert SCENARIOS["stress"].shape == (1024, 1024)
    assert SCENARIOS["racing"].producers >= 2
    with pytest.raises(ValueError, match="unknown scenario 'nope'.*waves"):
        get_scenario("nope")


@pytest.mark.parametrize("name", REQUIRED)
def test_scenario_starts_produces_and_stops(name):
    sc = SCENARIOS[name]
    with open_manager("c", sc.shape, max_pending=1 << 16) as m:
        run = sc.start(m)
        assert [t.name for t in run.threads] == [
            f"{name}-producer-{k}" for k in range(1, sc.producers + 1)]
        _run_for(m, 0.3)
        assert run.stop(timeout=5.0)
        assert not _alive(f"{name}-producer-")
        assert run.errors == []
        assert run.enqueued > 0
        m.synchronize(5.0)
        st = m.stats()
        assert st.last_seq >= run.enqueued and st.visible_seq == st.last_seq
        producers = {e.producer for e in m.events(0)[0] if e.kind == "enqueue"}
        assert any(p.startswith(f"{name}-producer-") for p in producers)


@pytest.mark.parametrize("shape", [(64,), (32, 48), (3, 16, 16)])
def test_scenarios_work_on_any_ndim(shape):
    for sc in SCENARIOS.values():
        with open_manager("c", shape) as m:
            run = sc.start(m, rate=200.0)
            _run_for(m, 0.1)
            assert run.stop(5.0)
            assert run.errors == [], (sc.name, run.errors)
            assert run.enqueued > 0, sc.name


def test_racing_front_equals_reference_replay_of_the_applied_order():
    sc = SCENARIOS["racing"]
    with open_manager("c", sc.shape) as m:
        run = sc.start(m, rate=200.0, seed=1, record=True)
        _run_for(m, 0.5)
        assert run.stop(5.0)
        m.synchronize(5.0)
        front = m.front().copy()
        events, _ = m.events(0)
    assert run.errors == []
    record = sorted(run.record, key=lambda r: r[0])
    seqs = [s for s, _ in record]
    assert seqs == list(range(1, len(seqs) + 1)), "every seq was recorded exactly once"
    # The worker applied the updates in seq (queue) order, interleaving the producers.
    applied = [e.seq for e in events if e.kind == "apply"]
    assert applied == sorted(applied)
    by_producer = {e.producer for e in events if e.kind == "enqueue"}
    assert {f"racing-producer-{k}" for k in range(1, sc.producers + 1)} <= by_producer
    ref = ReferenceModel(sc.shape)
    for _, update in record:
        ref.apply(update)
    assert same_bits(front, ref.back), first_difference(front, ref.back)


def test_producers_end_quietly_when_the_manager_closes():
    sc = SCENARIOS["sparse"]
    m = open_manager("c", (64, 64))
    run = sc.start(m, rate=200.0)
    _run_for(m, 0.05)
    m.close()
    deadline = time.monotonic() + 5.0
    while run.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not run.running
    assert run.errors == []
    assert run.stop(1.0)


def test_a_full_queue_is_back_pressure_not_an_error():
    sc = SCENARIOS["sparse"]  # 64-element set_many per tick cannot fit a queue of 8
    with open_manager("c", (32, 32), max_pending=8) as m:
        m.pause()
        run = sc.start(m, rate=200.0)
        deadline = time.monotonic() + 5.0
        while run.dropped_ticks == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert run.dropped_ticks > 0
        assert run.stop(5.0)
        assert run.errors == []


def test_producers_hold_back_while_the_manager_is_paused():
    sc = SCENARIOS["racing"]
    with open_manager("c", (32, 32)) as m:
        m.pause()
        run = sc.start(m, rate=500.0)
        time.sleep(0.3)
        pending = m.stats().pending
        # Never more than the backlog cap plus one tick of each producer.
        assert pending <= sc.max_backlog + 2 * sc.producers
        assert run.stop(5.0)
        m.resume()
        m.synchronize(5.0)


def test_pause_and_resume_a_run():
    sc = SCENARIOS["waves"]
    with open_manager("c", (16, 16)) as m:
        run = sc.start(m, rate=200.0)
        _run_for(m, 0.05)
        run.pause()
        time.sleep(0.05)
        m.synchronize(5.0)
        n = m.stats().last_seq
        time.sleep(0.1)
        assert m.stats().last_seq == n
        run.resume()
        deadline = time.monotonic() + 5.0
        while m.stats().last_seq == n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert m.stats().last_seq > n
        assert run.stop(5.0)


def test_rate_must_be_positive():
    with open_manager("c", (4, 4)) as m:
        with pytest.raises(ValueError, match="rate"):
            SCENARIOS["waves"].start(m, rate=0)
