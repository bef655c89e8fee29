"""The Python scheduler (``app.scheduler``) beyond the shared contract suite: the
queue bound in element units, cancelled markers, ``timeout=0``, step credits,
Ctrl+C, read-only fronts — on the numpy reference backend (no GL needed) and on
the GL backend, which is the same scheduler with a GPU executor.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import backend_param, require_backend, wait_until

import app
from app import Add, Fill, Scale, Set, Write
from app.reference import ReferenceModel, same_bits

WAIT = 10.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["numpy", "gl", "c"])
def backend(request) -> str:
    return backend_param(request)


def test_a_write_counts_its_elements_against_the_bound(open_mgr):
    m = open_mgr((64, 64), max_pending=5000)
    m.pause()
    whole = np.ones((64, 64), dtype=np.float32)
    # 4096 elements fit a bound of 5000 once; a second does not.
    m.enqueue(Write(((0, 64), (0, 64)), whole), block=False)
    with pytest.raises(queue.Full, match="element units"):
        m.enqueue(Write(((0, 64), (0, 64)), whole), block=False)
    assert m.stats().pending == 4096
    m.resume()
    m.synchronize(timeout=WAIT)
    # A Write larger than the bound is admitted alone into an empty queue ...
    small = open_mgr((64, 64), max_pending=100)
    small.pause()
    small.enqueue(Write(((0, 64), (0, 64)), whole * 2), block=False)
    # ... and nothing else joins it while it waits.
    with pytest.raises(queue.Full):
        small.enqueue(Set((0, 0), 1.0), block=False)
    small.resume()
    small.synchronize(timeout=WAIT)
    assert np.all(small.front() == 2.0)


def test_a_thousand_full_buffer_writes_do_not_grow_memory(open_mgr):
    """The outside attack: 1000 full-buffer writes on a paused manager, block=False."""
    m = open_mgr((256, 256), max_pending=1 << 18)
    m.pause()
    block = np.zeros((256, 256), dtype=np.float32)
    accepted = 0
    with pytest.raises(queue.Full):
        for _ in range(1000):
            m.enqueue(Write(((0, 256), (0, 256)), block), block=False)
            accepted += 1
    assert accepted == (1 << 18) // (256 * 256)   # 4 buffers' worth: the bound, not 1000


def test_cancelled_markers_do_not_pile_up(open_mgr):
    m = open_mgr((8, 8))
    m.pause()
    m.enqueue(Set((0, 0), 1.0))
    for _ in range(3000):
        with pytest.raises(TimeoutError):
            m.synchronize(timeout=1e-6)
    if m.backend == "c":   # the library's own counts of its queue
        entries, markers = m._queue_counts()
    else:
        sched = m._sched
        with sched.lock:
            entries, markers = len(sched.queue), sched.markers_queued
    assert markers <= 1, "a cancelled marker at the tail is dropped"
    assert entries <= 2
    m.resume()
    assert m.synchronize(timeout=WAIT) == 1
    assert m.front()[0, 0] == 1.0


def test_timeout_zero_on_an_idle_empty_manager_always_succeeds(open_mgr):
    m = open_mgr((16, 16))
    m.enqueue(Fill(((0, 16), (0, 16)), 3.0))
    m.synchronize(timeout=WAIT)
    epochs = [m.synchronize(timeout=0) for _ in range(100)]
    assert epochs == list(range(2, 102))
    assert np.all(m.front() == 3.0)


def test_timeout_zero_with_work_or_paused_raises_at_once(open_mgr):
    m = open_mgr((16, 16))
    m.pause()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="paused"):
        m.synchronize(timeout=0)      # paused, nothing queued: still refused (SPEC §3.11)
    m.enqueue(Set((1, 1), 5.0))
    with pytest.raises(TimeoutError, match="pending"):
        m.synchronize(timeout=0)
    assert time.monotonic() - t0 < 5.0
    assert m.stats().epoch == 0
    m.resume()
    assert m.synchronize(timeout=WAIT) == 1 and m.front()[1, 1] == 5.0


def test_step_credit_is_never_banked_on_an_empty_queue(open_mgr):
    m = open_mgr((4, 4))
    m.pause()
    m.step(5)                       # nothing queued: no credit kept
    for k in range(3):
        m.enqueue(Set((0, k), float(k + 1)))
    time.sleep(0.2)                 # the worker would apply them now if credit were banked
    assert m.stats().applied_seq == 0
    m.step(2)
    wait_until(lambda: m.stats().applied_seq == 2, what="two steps applied")
    time.sleep(0.1)
    assert m.stats().applied_seq == 2
    m.step(10)                      # only one is left: only one credit is kept
    wait_until(lambda: m.stats().applied_seq == 3, what="the last step applied")
    m.enqueue(Set((3, 3), 9.0))
    time.sleep(0.2)
    assert m.stats().applied_seq == 3, "the extra credits were not banked"
    m.resume()
    m.synchronize(timeout=WAIT)
    assert m.front()[3, 3] == 9.0


def test_the_numpy_and_gl_fronts_match_the_reference_after_a_swap_in_the_caller(open_mgr):
    """The fast path (nothing queued, back caught up): the slots are exchanged in
    the caller; the new front still holds every update, and the next updates land
    on a current back (no stale back)."""
    m = open_mgr((8, 8))
    ref = ReferenceModel((8, 8))
    for k in range(5):
        u = Fill(((k, k + 2), (0, 8)), float(k))
        m.enqueue(u)
        ref.apply(u)
        m.synchronize(timeout=WAIT)
        ref.synchronize()
        m.synchronize(timeout=WAIT)       # idle: swapped in the caller
        ref.synchronize()
        assert same_bits(m.front(), ref.front)


def test_ctrl_c_interrupts_a_blocked_synchronize_and_the_manager_stays_usable(backend):
    script = textwrap.dedent(f"""
        import os, signal, threading, time
        import app
        from app import Set
        m = app.open_manager({backend!r}, (8, 8), max_pending=1)
        m.pause()
        m.enqueue(Set((0, 0), 1.0))
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            m.synchronize(timeout=None)
            print("NOT INTERRUPTED")
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - t0 - 0.3, 3))
        # A blocking enqueue on the full queue is interruptible too.
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            m.enqueue(Set((1, 1), 2.0))
            print("NOT INTERRUPTED")
        except KeyboardInterrupt:
            print("interrupted enqueue")
        m.resume()
        e = m.synchronize(timeout=10)
        f = m.front()
        print("usable", e, f[0, 0], f[1, 1])
        m.close()
    """)
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("interrupted after"), r.stdout
    assert float(lines[0].split()[-1]) < 0.1, "KeyboardInterrupt within 0.1 s"
    assert lines[1] == "interrupted enqueue", r.stdout
    # The cancelled sync swapped nothing; the interrupted enqueue queued nothing.
    assert lines[2] == "usable 1 1.0 0.0", r.stdout


@pytest.mark.parametrize("fronts", ["numpy", "gl", "c"])
def test_front_arrays_cannot_be_made_writable(fronts, request):
    if fronts == "gl":
        request.getfixturevalue("qapp")
    require_backend(fronts)
    with app.open_manager(fronts, (4, 4)) as m:
        m.enqueue(Set((0, 0), 1.0))
        m.synchronize(timeout=WAIT)
        f = m.front()
        with pytest.raises(ValueError):
            f.setflags(write=True)
        with pytest.raises(ValueError):
            f[0, 0] = 5.0
        assert m.front()[0, 0] == 1.0


def test_gl_manager_opened_first_in_a_worker_thread_exits_cleanly():
    """The outside attack: the QGuiApplication made in a thread that has ended
    crashed Qt at exit (exit 139 in 5 of 6 runs)."""
    require_backend("gl")
    script = textwrap.dedent("""
        import threading
        import app
        from app import Fill
        def work():
            m = app.open_manager("gl", (16, 16))
            m.enqueue(Fill(((0, 4), (0, 4)), 1.0))
            m.synchronize(timeout=20)
            assert m.front()[0, 0] == 1.0
            m.close()
            m2 = app.open_manager("gl", (4,))   # a second one reuses the application
            m2.close()
        t = threading.Thread(target=work)
        t.start()
        t.join(60)
        print("done")
    """)
    env = {**os.environ, "PYTHONPATH": ROOT}
    for _ in range(4):
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, env=env, cwd=ROOT)
        assert r.returncode == 0 and r.stdout.strip() == "done", (r.returncode, r.stderr[-2000:])


def test_events_say_what_each_update_wrote(open_mgr):
    m = open_mgr((4, 5))
    m.enqueue(Set((1, 2), 3.0))
    m.enqueue(Fill(((0, 2), (1, 3)), 1.5))
    m.set_many([[0, 0], [3, 4], [0, 0]], [1.0, 2.0, 3.0])
    data = np.arange(4.0).reshape(2, 2)
    m.enqueue(Write(((2, 4), (0, 2)), data))
    data[:] = -1      # the event references the manager's copy, not the caller's array
    m.synchronize(timeout=WAIT)
    events = m.events()[0]
    for kind in ("enqueue", "apply"):
        got = [e for e in events if e.kind == kind]
        assert [(e.seq, e.count, e.op) for e in got] == [(1, 1, "set"), (2, 1, "fill"),
                                                         (3, 3, "set"), (6, 1, "write")]
        s, f, sm, w = got
        assert (s.region, s.value) == (((1, 2), (2, 3)), 3.0)
        assert (f.region, f.value) == (((0, 2), (1, 3)), 1.5)
        assert sm.indices.tolist() == [[0, 0], [3, 4], [0, 0]] and sm.values.tolist() == [1, 2, 3]
        assert w.region == ((2, 4), (0, 2)) and w.values.tolist() == [[0, 1], [2, 3]]
        with pytest.raises(ValueError):
            w.values[0, 0] = 9.0          # read-only: the ring's record cannot be edited
        assert not any(e.payload_dropped for e in got)


def test_stepping_a_set_many_chunk_reports_each_steps_elements(open_mgr):
    m = open_mgr((2, 2))
    m.pause()
    m.set_many([[0, 0], [0, 1], [1, 0]], [1.0, 2.0, 3.0])
    m.step(1)
    wait_until(lambda: m.stats().applied_seq == 1, what="one step")
    m.step(2)
    wait_until(lambda: m.stats().applied_seq == 3, what="two more")
    applied = [e for e in m.events()[0] if e.kind == "apply"]
    assert [(e.seq, e.count) for e in applied] == [(1, 1), (2, 2)]
    assert applied[0].indices.tolist() == [[0, 0]] and applied[0].values.tolist() == [1.0]
    assert applied[1].indices.tolist() == [[0, 1], [1, 0]] and applied[1].values.tolist() == [2, 3]


def test_event_payloads_stay_within_a_budget(open_mgr, monkeypatch):
    from app import scheduler

    monkeypatch.setattr(scheduler, "EVENT_PAYLOAD_UNITS", 1000)
    m = open_mgr((64, 64))
    if m.backend == "c":   # the library keeps its own budget (bs_set_payload_budget)
        m._set_payload_budget(1000)

        def in_use():
            return m._payload_in_use()
    else:
        def in_use():
            return m._sched.ev_payload
    for _ in range(40):
        m.set_many(np.zeros((100, 2), dtype=np.int64), np.ones(100))
        m.enqueue(Write(((0, 10), (0, 10)), np.ones((10, 10))))
    m.synchronize(timeout=WAIT)
    assert in_use() <= 1000
    events = [e for e in m.events()[0] if e.kind in ("enqueue", "apply")]
    dropped = [e for e in events if e.payload_dropped]
    kept = [e for e in events if not e.payload_dropped]
    assert dropped and kept, "the oldest let go of their payloads, the newest kept them"
    assert max(e.index for e in dropped) < min(e.index for e in kept)
    assert all(e.values is None and e.indices is None for e in dropped)
    writes = [e for e in dropped if e.op == "write"]
    assert writes and all(e.region == ((0, 10), (0, 10)) for e in writes), "the region stays"


def test_back_shows_the_buffer_being_built_while_paused(open_mgr):
    m = open_mgr((2, 3))
    m.enqueue(Fill(((0, 2), (0, 3)), 1.0))
    m.synchronize(timeout=WAIT)
    with pytest.raises(ValueError, match="paused"):
        m.back()
    m.pause()
    m.enqueue(Set((0, 0), 5.0))
    m.enqueue(Set((1, 2), 6.0))
    m.step(1)
    wait_until(lambda: m.stats().applied_seq == 2, what="one step")
    assert m.back().tolist() == [[5, 1, 1], [1, 1, 1]], "the back holds the stepped update"
    assert m.front().tolist() == [[1, 1, 1], [1, 1, 1]], "the front does not"
    m.step(1)
    wait_until(lambda: m.stats().applied_seq == 3, what="second step")
    assert m.back().tolist() == [[5, 1, 1], [1, 1, 6]]


def test_a_watch_pauses_the_worker_before_the_update_that_writes_the_element(open_mgr):
    m = open_mgr((4, 4))
    m.set_watch(elements=[(2, 2)])
    m.enqueue(Fill(((0, 2), (0, 2)), 1.0))            # seq 1: does not write (2, 2)
    m.set_many([[0, 0], [1, 1], [2, 2], [3, 3]], [1.0, 2.0, 3.0, 4.0])   # seqs 2..5: seq 4 does
    m.enqueue(Add(((2, 4), (2, 4)), 10.0))            # seq 6 writes it too
    wait_until(lambda: m.stats().paused and m.stats().applied_seq == 3,
               what="the watch to pause the worker before seq 4, inside the set_many run")
    brk = [e for e in m.events()[0] if e.kind == "break"]
    assert [(e.seq, e.op) for e in brk] == [(4, "set")]
    assert brk[0].indices.tolist()[0] == [2, 2]
    m.step(1)                                          # applies exactly the watched update
    wait_until(lambda: m.stats().applied_seq == 4, what="the step")
    assert m.back()[2, 2] == 3.0
    m.resume()                                         # runs on to the next writer of (2, 2)
    wait_until(lambda: m.stats().paused and m.stats().applied_seq == 5, what="the next writer")
    assert [e.seq for e in m.events()[0] if e.kind == "break"] == [4, 6]
    m.set_watch()                                      # cleared: runs to the end
    m.resume()
    m.synchronize(timeout=WAIT)
    assert m.front()[2, 2] == 13.0


def test_watch_by_op_and_producer(open_mgr):
    import threading

    m = open_mgr((4,))
    m.set_watch(ops=["scale"], producers=["painter"])
    m.enqueue(Set((0,), 1.0))
    m.enqueue(Scale(((0, 4),), 2.0))
    wait_until(lambda: m.stats().paused and m.stats().applied_seq == 1, what="the op watch")
    m.resume()
    t = threading.Thread(target=lambda: m.enqueue(Fill(((1, 2),), 7.0)), name="painter")
    t.start()
    t.join(WAIT)
    wait_until(lambda: m.stats().paused and m.stats().applied_seq == 2, what="the producer watch")
    assert [(e.seq, e.producer) for e in m.events()[0] if e.kind == "break"][-1] == (3, "painter")
    with pytest.raises(ValueError, match="unknown op"):
        m.set_watch(ops=["explode"])
    with pytest.raises(ValueError, match="out of bounds"):
        m.set_watch(elements=[(9,)])


@pytest.mark.parametrize("shape", [(2**70,), (2**40, 2**40), (10**400,)])
def test_a_shape_beyond_memory_is_a_memory_error_naming_the_limit(backend, shape):
    """SPEC §3.7: MemoryError naming the memory, or (GL) ValueError naming the GL limit."""
    expected = (MemoryError, ValueError) if backend == "gl" else MemoryError
    with pytest.raises(expected, match="available|GL_MAX_TEXTURE_SIZE"):
        app.open_manager(backend, shape)


def test_a_step_of_several_stops_at_a_watch_and_keeps_no_credit(open_mgr):
    """Stepping 5 with a watched update third: two are applied, the worker stops
    before the watched one, and the leftover credit does not let it through; the
    break event comes after the apply events of what was applied before it."""
    m = open_mgr((4,))
    m.pause()
    for k in range(4):
        m.enqueue(Set((k,), float(k + 1)))
    m.set_watch(elements=[(2,)])
    m.step(5)
    wait_until(lambda: m.stats().applied_seq == 2, what="the two updates before the watch")
    time.sleep(0.2)
    assert m.stats().applied_seq == 2, "no credit carried past the watch"
    evs = [e for e in m.events()[0] if e.kind in ("apply", "break")]
    applied = [s for e in evs if e.kind == "apply" for s in range(e.seq, e.seq + e.count)]
    assert (evs[-1].kind, evs[-1].seq) == ("break", 3) and applied == [1, 2]


def test_per_call_sets_keep_one_event_each_whoever_enqueued_them(open_mgr):
    """The per-call fast path (a producer's Sets share one queue entry on the Python
    backends): every Set still has its own enqueue and apply event, seq, producer,
    index and value, in enqueue order, and the front is the reference's bit for bit."""
    import threading

    m = open_mgr((6, 7))
    ref = ReferenceModel((6, 7))
    m.pause()
    script = [Set((1, 2), 0.1), Set((5, 6), -2.0), Set((1, 2), 3.0)]
    other = [Set((0, 0), 7.5), Set((1, 2), 9.25)]
    for u in script:
        m.enqueue(u)
    m.enqueue(Fill(((2, 4), (0, 7)), 4.0))
    m.enqueue(Set((3, 3), 1e300))      # beyond float32: +inf, as numpy rounds it
    t = threading.Thread(target=lambda: [m.enqueue(u) for u in other], name="other-producer")
    t.start()
    t.join(WAIT)
    assert not t.is_alive()
    m.enqueue(Set((4, 4), 5.0))
    everything = [*script, Fill(((2, 4), (0, 7)), 4.0), Set((3, 3), 1e300), *other, Set((4, 4), 5.0)]
    for u in everything:
        ref.apply(u)
    m.resume()
    m.synchronize(timeout=WAIT)
    ref.synchronize()
    assert same_bits(m.front(), ref.front)
    events = m.events()[0]
    who = ["MainThread"] * 5 + ["other-producer"] * 2 + ["MainThread"]
    for kind in ("enqueue", "apply"):
        got = [e for e in events if e.kind == kind]
        assert [(e.seq, e.count, e.producer) for e in got] == [
            (k + 1, 1, p) for k, p in enumerate(who)]
        for e, u in zip(got, everything):
            if type(u) is Set:   # the value written (C and the Python backends: float32)
                assert e.region == tuple((i, i + 1) for i in u.index)
                with np.errstate(over="ignore"):
                    assert same_bits(np.float32(e.value), np.float32(u.value))
    enq = [e.t_ns for e in events if e.kind == "enqueue"]
    assert enq == sorted(enq), "enqueue times in enqueue order"


def test_a_full_queue_or_a_watch_takes_per_call_sets_the_general_way(open_mgr):
    """No room: the fast path defers to the general one (queue.Full, or waits);
    with a watch set each Set is stopped before on its own."""
    m = open_mgr((4, 4), max_pending=3)
    m.pause()
    for k in range(3):
        m.enqueue(Set((0, k), float(k)), block=False)
    with pytest.raises(queue.Full, match="element units"):
        m.enqueue(Set((1, 1), 1.0), block=False)
    m.resume()
    m.synchronize(timeout=WAIT)
    m.set_watch(producers=["MainThread"])
    for k in range(3):
        m.enqueue(Set((2, k), 10.0 + k))
    def progress():
        breaks = [e.seq for e in m.events()[0] if e.kind == "break"]
        return m.stats().applied_seq, breaks

    wait_until(lambda: progress()[1] == [4], what="the stop before the first Set")
    for _ in range(6):   # a step applies the Set stopped before, or finds the next stop
        before = progress()
        if before[0] == 6:
            break
        m.step(1)
        wait_until(lambda before=before: progress() != before, what="a step")
    assert progress() == (6, [4, 5, 6]), "a stop before each Set, each applied by a step"
    m.set_watch()
    m.resume()
    m.synchronize(timeout=WAIT)
    assert [float(m.front()[2, k]) for k in range(3)] == [10.0, 11.0, 12.0]
