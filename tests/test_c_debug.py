"""C-backend debugging specifics (SPEC §4, §7) beyond the shared scheduler tests:
payloads shared with the queue and kept within the library's budget (exact while
their memory is reused), a large write copied straight into the back still
described, watches on producers that start while the worker is stopped, and
back() on a closed manager."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import wait_until

import app
from app import Fill, Set, Write
from app.reference import ReferenceModel, first_difference, same_bits

WAIT = 10.0


def test_a_large_direct_write_is_described_by_its_events():
    data = np.arange(256 * 256, dtype=np.float32).reshape(256, 256)
    with app.open_manager("c", (256, 256)) as m:
        m.enqueue(Write(((0, 256), (0, 256)), data))   # idle worker: copied by the producer
        m.synchronize(timeout=WAIT)
        writes = [e for e in m.events()[0] if e.op == "write"]
        assert [e.kind for e in writes] == ["enqueue", "apply"]
        for e in writes:
            assert not e.payload_dropped and e.values.shape == (256, 256)
            assert np.array_equal(e.values, data)
            with pytest.raises(ValueError):
                e.values.setflags(write=True)


def test_payload_budget_zero_keeps_op_and_region_only():
    with app.open_manager("c", (8, 8)) as m:
        m._set_payload_budget(0)
        m.enqueue(Write(((0, 2), (0, 2)), np.ones((2, 2))))
        m.set_many([[1, 1]], [2.0])
        m.enqueue(Fill(((0, 1), (0, 8)), 3.0))
        m.synchronize(timeout=WAIT)
        evs = [e for e in m.events()[0] if e.kind in ("enqueue", "apply")]
        w = [e for e in evs if e.op == "write"]
        s = [e for e in evs if e.op == "set"]
        f = [e for e in evs if e.op == "fill"]
        assert all(e.payload_dropped and e.values is None and e.region == ((0, 2), (0, 2)) for e in w)
        assert all(e.payload_dropped and e.indices is None for e in s)
        assert all(not e.payload_dropped and e.value == 3.0 for e in f), "fixed fields stay"
        assert m._payload_in_use() == 0


def test_wrapped_ring_lets_go_of_payloads():
    with app.open_manager("c", (4,), event_capacity=8) as m:
        for k in range(50):
            m.set_many([[k % 4]], [float(k)])
        m.synchronize(timeout=WAIT)
        assert m._payload_in_use() <= 8
        evs = m.events()[0]
        assert len(evs) <= 8
        assert all(e.indices is not None for e in evs if e.kind == "apply")


@pytest.mark.parametrize("shape", [(3000,), (96, 80), (12, 10, 9)])
def test_set_many_payloads_stay_exact_while_their_memory_is_reused(shape):
    """About 10 MB of set_many payloads under a 600,000-element budget: the events
    let go of the oldest payloads, and the library carves later calls' payloads from
    the 2 MiB pieces they held, while the payloads the events keep span several
    pieces. Every event that still has its payload gives exactly what its call wrote
    (a piece reused too early overwrites some), and every front equals the reference
    bit for bit."""
    rng = np.random.default_rng(7)
    ref = ReferenceModel(shape)
    calls = []   # (first seq, indices, values) as the call passed them
    with app.open_manager("c", shape) as m:
        m._set_payload_budget(600_000)
        for k in range(240):
            n = int(rng.integers(1, 10_000))
            idx = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
            vals = rng.standard_normal(n).astype(np.float32)
            seqs = m.set_many(idx, vals)
            ref.set_many(idx, vals)
            calls.append((int(seqs[0]), idx.copy(), vals.copy()))
            idx[:] = 0                     # the caller may change its arrays at once
            vals[:] = np.nan
            if k % 20 == 19:
                m.synchronize(timeout=WAIT)
                ref.synchronize()
                assert same_bits(m.front(), ref.front), first_difference(m.front(), ref.front)
        runs = [e for e in m.events()[0] if e.op == "set" and e.kind in ("enqueue", "apply")]
        kept = [e for e in runs if not e.payload_dropped]
        assert kept and len(kept) < len(runs), "the budget let go of some payloads, not all"
        firsts = [c[0] for c in calls]
        for e in kept:
            first, idx, vals = calls[int(np.searchsorted(firsts, e.seq, side="right")) - 1]
            j = e.seq - first
            assert np.array_equal(e.indices, idx[j:j + e.count]), f"event {e.index} indices"
            assert np.array_equal(e.values.view(np.uint32), vals[j:j + e.count].view(np.uint32)), \
                f"event {e.index} values"


def test_a_producer_that_starts_while_stopped_at_a_break_does_not_stop_it_again():
    """Its id is sent when it registers (replacing the watch in the library);
    the update the worker stopped before stays passed."""
    with app.open_manager("c", (4,)) as m:
        m.set_watch(elements=[(1,)], producers=["late"])
        m.enqueue(Set((1,), 1.0))                        # seq 1: watched element
        wait_until(lambda: m.stats().paused, what="the break before seq 1")
        t = threading.Thread(target=lambda: m.enqueue(Fill(((2, 3),), 5.0)), name="late")
        t.start()
        t.join(WAIT)                                     # seq 2: watched producer
        m.step(1)
        wait_until(lambda: m.stats().applied_seq == 1, what="the stopped-before update")
        breaks = [(e.seq, e.producer) for e in m.events()[0] if e.kind == "break"]
        assert breaks[0][0] == 1 and len([b for b in breaks if b[0] == 1]) == 1
        m.resume()
        wait_until(lambda: m.stats().paused and [e.seq for e in m.events()[0] if e.kind == "break"][-1] == 2,
                   what="the break before the late producer's update")
        m.set_watch()
        m.resume()
        m.synchronize(timeout=WAIT)
        assert m.front().tolist() == [0.0, 1.0, 5.0, 0.0]


def test_back_is_refused_when_closed_or_running():
    m = app.open_manager("c", (2, 2))
    with pytest.raises(ValueError, match="paused"):
        m.back()
    m.pause()
    assert m.back().tolist() == [[0, 0], [0, 0]]
    m.close()
    with pytest.raises(app.ManagerClosedError):
        m.back()
    with pytest.raises(app.ManagerClosedError):
        m.set_watch()


def test_a_large_write_stopped_at_a_watch_leaves_the_back_caught_up():
    """A whole-buffer Write right after a swap may skip the catch-up only when it is then
    written straight into the back; stopped before by a watch, it goes through the queue,
    and the back must still be the caught-up front (it was the previous epoch's)."""
    shape = (512, 512)
    ones = np.ones((256, 512), np.float32)
    twos = np.full(shape, 2.0, np.float32)
    for _ in range(5):      # the skip needs the catch-up still pending: try a few swaps
        with app.open_manager("c", shape) as m:
            m.set_watch(producers=["p7"])
            m.enqueue(Write(((0, 256), (0, 512)), ones))

            def p7():
                m.synchronize(timeout=WAIT)               # the swap: a catch-up is pending
                m.enqueue(Write(((0, 512), (0, 512)), twos))

            t = threading.Thread(target=p7, name="p7")
            t.start()
            t.join(WAIT)
            assert not t.is_alive()
            wait_until(lambda: m.stats().paused, what="the break before p7's write")
            back, front = m.back(), m.front()
            assert float(front[0, 0]) == 1.0
            assert np.array_equal(back, front), "the back is the caught-up front"
            m.set_watch()
            m.resume()
            m.synchronize(timeout=WAIT)
            assert np.array_equal(m.front(), twos)
