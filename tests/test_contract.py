"""The manager contract (SPEC §3), one guarantee at a time, on every backend.

Every test is parametrized by backend name through the ``backend`` fixture, so a
new backend joins by registering itself: no test is copied.
"""

from __future__ import annotations

import gc
import queue
import random
import resource
import threading
import time

import numpy as np
import pytest
from conftest import CONTRACT_BACKENDS, backend_param, wait_until

import app
from app import Add, Fill, Scale, Set, Write
from app.reference import ReferenceModel, first_difference, same_bits


@pytest.fixture(params=CONTRACT_BACKENDS)
def backend(request) -> str:
    """c, gl and the numpy reference backend (the GL scheduler without GL)."""
    return backend_param(request)

WAIT = 10.0  # seconds: the bound on every wait in this file


def assert_front(m, ref: ReferenceModel) -> None:
    front = m.front()
    flush = m.backend == "gl"
    assert same_bits(front, ref.front, flush_subnormals=flush), first_difference(front, ref.front)


def start_threads(targets):
    threads = [threading.Thread(target=t, name=f"test-producer-{k}") for k, t in enumerate(targets)]
    for t in threads:
        t.start()
    return threads


def join_all(threads, wait: float = WAIT):
    for t in threads:
        t.join(wait)
    assert not any(t.is_alive() for t in threads), "a thread did not finish in time"


# ---------------------------------------------------------------- basics


def test_basic_round_trip(open_mgr):
    m = open_mgr((8, 8))
    ref = ReferenceModel((8, 8))
    ups = [Fill(((0, 4), (0, 4)), 1.0), Set((7, 7), 2.5), Add(((2, 8), (2, 8)), 0.25),
           Scale(((0, 8), (0, 2)), -3.0), Write(((6, 8), (0, 3)), np.arange(6).reshape(2, 3))]
    seqs = [m.enqueue(u) for u in ups]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for u in ups:
        ref.apply(u)
    assert m.synchronize(timeout=WAIT) == 1
    ref.synchronize()
    assert_front(m, ref)
    f = m.front()
    assert f.dtype == np.float32 and f.shape == (8, 8)
    assert not f.flags.writeable


def test_fill_value_and_shapes(backend, open_mgr):
    for shape in [(5,), (3, 4), (2, 3, 4)]:
        m = open_mgr(shape, fill=-1.5)
        m.synchronize(timeout=WAIT)
        assert np.all(m.front() == np.float32(-1.5)) and m.front().shape == shape


def test_sequence_numbers_and_epochs(open_mgr):
    m = open_mgr((4, 4))
    s1 = m.enqueue(Set((0, 0), 1.0))
    s2 = m.enqueue_many([Set((0, 1), 1.0), Set((0, 2), 1.0)])
    s3 = m.set_many(np.array([[1, 1], [2, 2], [3, 3]]), np.array([1.0, 2.0, 3.0]))
    assert [s1, *s2, *map(int, s3)] == list(range(s1, s1 + 6))
    assert [m.synchronize(timeout=WAIT) for _ in range(3)] == [1, 2, 3]
    assert m.stats().epoch == 3


# ---------------------------------------------------------------- §3.1 order


def test_fifo_order_across_threads(open_mgr):
    """Non-commuting updates from 4 threads: the front equals the reference
    replayed in sequence-number order, whatever the interleaving."""
    shape = (6, 6)
    m = open_mgr(shape)
    logs: list[list[tuple[int, object]]] = [[] for _ in range(4)]

    def producer(k):
        rnd = random.Random(k)
        for i in range(150):
            r0, c0 = rnd.randrange(6), rnd.randrange(6)
            region = ((r0, min(6, r0 + 3)), (c0, min(6, c0 + 3)))
            u = [Fill(region, float(k * 1000 + i)), Add(region, 0.5), Scale(region, -1.25),
                 Set((r0, c0), float(i))][i % 4]
            logs[k].append((m.enqueue(u), u))

    join_all(start_threads([lambda k=k: producer(k) for k in range(4)]))
    m.synchronize(timeout=WAIT)
    ordered = sorted((s, u) for log in logs for s, u in log)
    assert [s for s, _ in ordered] == list(range(1, 601)), "sequence numbers are not 1..600"
    ref = ReferenceModel(shape)
    for _, u in ordered:
        ref.apply(u)
    ref.synchronize()
    assert_front(m, ref)
    applied = [e for e in m.events()[0] if e.kind == "apply"]
    seqs = [s for e in applied for s in range(e.seq, e.seq + e.count)]
    assert seqs == list(range(1, 601)), "the worker did not apply in FIFO order"


def test_four_producers_lose_nothing(open_mgr):
    m = open_mgr((4, 4), max_pending=64)
    n = 500

    def producer():
        for _ in range(n):
            m.enqueue(Add(((0, 4), (0, 4)), 1.0))

    threads = start_threads([producer] * 4)
    epochs = []
    while any(t.is_alive() for t in threads):
        epochs.append(m.synchronize(timeout=WAIT))
    join_all(threads)
    m.synchronize(timeout=WAIT)
    assert np.all(m.front() == 4 * n)
    assert epochs == sorted(epochs)


# ---------------------------------------------------------------- §3.2 visibility


def test_visibility_nothing_more_nothing_less(open_mgr):
    m = open_mgr((8, 8))
    m.enqueue(Fill(((0, 8), (0, 8)), 1.0))
    m.synchronize(timeout=WAIT)
    m.enqueue(Fill(((0, 8), (0, 8)), 2.0))
    wait_until(lambda: m.stats().applied_seq == 2, what="worker to apply")
    assert np.all(m.front() == 1.0), "an update queued after the sync became visible"
    m.synchronize(timeout=WAIT)
    assert np.all(m.front() == 2.0)


def test_visibility_with_a_concurrent_producer(open_mgr):
    """Fill k everywhere for k = 1, 2, ...: after each sync the front is uniform
    and holds a value between the last seq before the call and after it. (The
    bound keeps the producer from queueing more than a sync can drain in time.)"""
    m = open_mgr((32, 32), max_pending=2048)
    stop = threading.Event()

    def producer():
        k = 0
        while not stop.is_set() and k < 200_000:
            k += 1
            m.enqueue(Fill(((0, 32), (0, 32)), float(k)))

    (t,) = start_threads([producer])
    try:
        for _ in range(50):
            lo = m.stats().last_seq
            m.synchronize(timeout=WAIT)
            hi = m.stats().last_seq
            f = m.front()
            v = float(f[0, 0])
            assert np.all(f == v), "a swap exposed a half-applied update"
            assert lo <= v <= hi
    finally:
        stop.set()
        join_all([t])


# ---------------------------------------------------------------- §3.3 stable front


def test_front_stable_between_syncs(open_mgr):
    m = open_mgr((16, 16))
    m.enqueue(Fill(((0, 16), (0, 16)), 3.0))
    m.synchronize(timeout=WAIT)
    view = m.front()
    snapshot = view.copy()
    for i in range(300):
        m.enqueue(Add(((0, 16), (i % 16, i % 16 + 1)), 1.0))
    wait_until(lambda: m.stats().applied_seq == m.stats().last_seq, what="worker to drain")
    assert np.array_equal(m.front(), snapshot)
    assert np.array_equal(view, snapshot)


# ---------------------------------------------------------------- §3.4 no stale back


def test_no_stale_back(open_mgr):
    m = open_mgr((8, 8))
    m.enqueue(Fill(((0, 4), (0, 8)), 1.0))  # A
    m.synchronize(timeout=WAIT)
    m.enqueue(Fill(((4, 8), (0, 8)), 2.0))  # B
    m.synchronize(timeout=WAIT)
    f = m.front()
    assert np.all(f[:4] == 1.0) and np.all(f[4:] == 2.0), "update A lost after two swaps"
    m.synchronize(timeout=WAIT)
    assert np.all(m.front()[:4] == 1.0) and np.all(m.front()[4:] == 2.0)


@pytest.mark.parametrize("n_updates", [3, 40])  # replay the batch / copy the whole buffer
def test_back_catch_up_small_and_large_batches(open_mgr, n_updates):
    shape = (4, 4)
    m = open_mgr(shape)
    ref = ReferenceModel(shape)
    rnd = random.Random(n_updates)
    for _ in range(5):
        for _ in range(n_updates):
            u = Add(((rnd.randrange(4), 4), (0, rnd.randrange(1, 5))), rnd.choice([0.5, -1.0, 3.0]))
            m.enqueue(u)
            ref.apply(u)
        m.synchronize(timeout=WAIT)
        ref.synchronize()
        assert_front(m, ref)


# ---------------------------------------------------------------- §3.5 no lost wakeups


def test_concurrent_synchronize_calls_all_return(open_mgr):
    m = open_mgr((16, 16), max_pending=1024)
    stop = threading.Event()
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def producer():
        while not stop.is_set():
            m.enqueue(Add(((0, 16), (0, 16)), 1.0))

    def syncer():
        try:
            for _ in range(40):
                e = m.synchronize(timeout=WAIT)
                with lock:
                    results.append(e)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    (p,) = start_threads([producer])
    syncers = start_threads([syncer] * 8)
    join_all(syncers, 6 * WAIT)   # 320 syncs against a flooding producer: bounded, not timed
    stop.set()
    join_all([p])
    assert not errors, errors
    assert len(results) == 8 * 40
    assert m.stats().epoch >= max(results) >= 1


def test_sync_on_idle_worker_many_times(open_mgr):
    m = open_mgr((4,))
    for i in range(1, 501):
        assert m.synchronize(timeout=WAIT) == i


# ---------------------------------------------------------------- §3.6 payload ownership


def test_payload_ownership(open_mgr):
    m = open_mgr((4, 4))
    data = np.ones((2, 2), dtype=np.float32)
    m.enqueue(Write(((0, 2), (0, 2)), data))
    data[:] = 99.0
    idx = np.array([[3, 3], [2, 2]])
    vals = np.array([5.0, 6.0], dtype=np.float32)
    m.set_many(idx, vals)
    idx[:] = 0
    vals[:] = -1.0
    region = [[2, 3], [0, 1]]
    m.enqueue(Fill(region, 7.0))
    region[0][1] = 4
    del data, idx, vals
    gc.collect()
    m.synchronize(timeout=WAIT)
    f = m.front()
    assert np.all(f[:2, :2] == 1.0) and f[3, 3] == 5.0 and f[2, 2] == 6.0 and f[2, 0] == 7.0
    assert f[3, 0] == 0.0


# ---------------------------------------------------------------- §3.7 errors

BAD_UPDATES = [
    (Set((1,), 1.0), "dimensions"),
    (Set((4, 0), 1.0), "out of bounds"),
    (Set((-1, 0), 1.0), "out of bounds"),
    (Set((0.5, 0), 1.0), "integer"),
    (Set((True, 0), 1.0), "integer"),
    (Fill(((0, 5), (0, 1)), 1.0), "beyond the size"),
    (Fill(((3, 1), (0, 1)), 1.0), "start 3 > stop 1"),
    (Fill(((-1, 1), (0, 1)), 1.0), "negative"),
    (Fill(((0, 1),), 1.0), "pairs"),
    (Add(((0, 1), (0, 1)), "x"), "real number"),
    (Scale(((0, 1), (0, 1)), None), "real number"),
    (Set((0, 0), 1 + 2j), "real number"),
    (Set((0, 0), 10**400), "too large for a float"),
    (Write(((0, 2), (0, 2)), np.zeros((2, 3))), "does not match"),
    (Write(((0, 2), (0, 2)), [["a", "b"], ["c", "d"]]), "real numbers"),
    ("not an update", "not an update"),
]


@pytest.mark.parametrize("bad,words", BAD_UPDATES, ids=[w for _, w in BAD_UPDATES])
def test_bad_update_raises_and_queues_nothing(open_mgr, bad, words):
    m = open_mgr((4, 4))
    m.enqueue(Fill(((0, 4), (0, 4)), 1.0))
    before = m.stats().last_seq
    with pytest.raises(ValueError, match=words):
        m.enqueue(bad)
    with pytest.raises(ValueError, match=f"update 1: .*{words}"):
        m.enqueue_many([Set((0, 0), 5.0), bad])
    assert m.stats().last_seq == before, "something was queued"
    m.enqueue(Set((1, 1), 2.0))
    m.synchronize(timeout=WAIT)
    assert m.front()[1, 1] == 2.0 and m.front()[0, 0] == 1.0


@pytest.mark.parametrize(
    "indices,values,words",
    [
        (np.array([[0, 0], [4, 0]]), np.array([1.0, 2.0]), "out of bounds"),
        (np.array([[0, 0], [0, -1]]), np.array([1.0, 2.0]), "out of bounds"),
        (np.array([0, 1]), np.array([1.0, 2.0]), r"shape \(n, 2\)"),
        (np.array([[0, 0]]), np.array([1.0, 2.0]), "values must have shape"),
        (np.array([[0.5, 0]]), np.array([1.0]), "integers"),
        (np.array([[0, 0]]), np.array(["a"]), "real numbers"),
    ],
)
def test_bad_set_many(open_mgr, indices, values, words):
    m = open_mgr((4, 4), max_pending=1)
    with pytest.raises(ValueError, match=words):
        m.set_many(indices, values)
    with pytest.raises(ValueError, match=words):  # invalid beats "would not fit the queue"
        m.set_many(indices, values, block=False)
    assert m.stats().last_seq == 0
    m.synchronize(timeout=WAIT)
    assert np.all(m.front() == 0.0)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        (dict(shape=()), "1 to 3 dimensions"),
        (dict(shape=(2, 2, 2, 2)), "1 to 3 dimensions"),
        (dict(shape=(0, 4)), "must be >= 1"),
        (dict(shape=(4, -1)), "must be >= 1"),
        (dict(shape=(4.5, 2)), "integer"),
        (dict(shape="4x4"), "tuple"),
        (dict(shape=(4, 4), fill="zero"), "fill must be a real number"),
        (dict(shape=(4, 4), max_pending=0), "max_pending must be >= 1"),
    ],
)
def test_bad_open_arguments(backend, kwargs, words):
    with pytest.raises(ValueError, match=words):
        app.open_manager(backend, **kwargs)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'vulkan'"):
        app.open_manager("vulkan", (4, 4))


def test_buffer_too_large(backend):
    with pytest.raises((MemoryError, ValueError), match=r"(GiB|limit|bytes|too large)"):
        app.open_manager(backend, (1 << 20, 1 << 20, 1 << 10))


def test_timeout_leaves_manager_usable(open_mgr):
    m = open_mgr((4, 4))
    m.pause()
    m.enqueue(Fill(((0, 4), (0, 4)), 1.0))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        m.synchronize(timeout=0.05)
    assert time.monotonic() - t0 < 2.0
    m.resume()
    m.enqueue(Add(((0, 4), (0, 4)), 1.0))
    m.synchronize(timeout=WAIT)
    assert np.all(m.front() == 2.0)


def test_a_timed_out_synchronize_swaps_nothing_later(open_mgr):
    """After a TimeoutError the front (and the view of it) stays valid: the
    abandoned sync does not swap when the worker later gets there (§3.3)."""
    m = open_mgr((4,))
    m.pause()
    m.enqueue(Fill(((0, 4),), 1.0))
    with pytest.raises(TimeoutError, match="nothing was swapped"):
        m.synchronize(timeout=0.05)
    view = m.front()
    m.resume()
    wait_until(lambda: m.stats().applied_seq == 1, what="the fill to be applied")
    time.sleep(0.05)
    assert m.stats().epoch == 0 and view.tolist() == [0, 0, 0, 0] and m.front().tolist() == [0] * 4
    assert m.synchronize(timeout=WAIT) == 1
    assert m.front().tolist() == [1, 1, 1, 1]


def test_worker_failure_is_reported_once_and_worker_survives(open_mgr):
    m = open_mgr((4, 4))
    ref = ReferenceModel((4, 4))
    m.enqueue(Fill(((0, 4), (0, 4)), 1.0))
    ref.apply(Fill(((0, 4), (0, 4)), 1.0))
    m.synchronize(timeout=WAIT)  # the fill is applied before the fault is armed
    m.inject_worker_fault(after=2)
    m.enqueue(Add(((0, 4), (0, 4)), 1.0))  # applied
    ref.apply(Add(((0, 4), (0, 4)), 1.0))
    m.enqueue(Scale(((0, 4), (0, 4)), 10.0))  # fails in the worker, skipped
    with pytest.raises(app.BackendError, match="failed"):
        m.synchronize(timeout=WAIT)
    ref.synchronize()
    assert_front(m, ref)
    m.enqueue(Add(((0, 2), (0, 2)), 5.0))
    ref.apply(Add(((0, 2), (0, 2)), 5.0))
    m.synchronize(timeout=WAIT)  # no error the second time
    ref.synchronize()
    assert_front(m, ref)


def test_closed_manager(backend):
    m = app.open_manager(backend, (4, 4))
    view = m.front()
    m.close()
    m.close()  # idempotent
    assert m.closed
    calls = [
        lambda: m.enqueue(Set((0, 0), 1.0)),
        lambda: m.enqueue(Set((99, 99), 1.0)),  # closed comes first, whatever the update
        lambda: m.enqueue_many([Set((0, 0), 1.0)]),
        lambda: m.set_many(np.array([[0, 0]]), np.array([1.0])),
        lambda: m.synchronize(timeout=1.0),
        m.front,
        m.stats,
        m.events,
        m.pause,
        m.resume,
        m.step,
    ]
    for call in calls:
        with pytest.raises(app.ManagerClosedError):
            call()
    assert issubclass(app.ManagerClosedError, RuntimeError)
    assert float(view.sum()) == 0.0  # a view taken before close stays readable


def test_close_wakes_a_blocked_synchronize(backend):
    m = app.open_manager(backend, (4, 4))
    m.pause()
    m.enqueue(Set((0, 0), 1.0))
    errors = []

    def syncer():
        try:
            m.synchronize(timeout=WAIT)
        except app.ManagerClosedError as exc:
            errors.append(exc)

    (t,) = start_threads([syncer])
    time.sleep(0.05)
    m.close()
    join_all([t])
    assert len(errors) == 1


# ---------------------------------------------------------------- §3.8 bounded memory


def test_bounded_queue_blocks_or_raises_full(open_mgr):
    m = open_mgr((4, 4), max_pending=4)
    m.pause()
    for i in range(4):
        m.enqueue(Set((0, i), 1.0))
    with pytest.raises(queue.Full):
        m.enqueue(Set((1, 0), 1.0), block=False)
    with pytest.raises(queue.Full):
        m.set_many(np.array([[2, 2]]), np.array([1.0]), block=False)
    assert m.stats().pending == 4
    done = threading.Event()

    def blocked_producer():
        m.enqueue(Set((1, 1), 2.0))
        done.set()

    (t,) = start_threads([blocked_producer])
    assert not done.wait(0.2), "enqueue on a full queue did not block"
    m.resume()
    assert done.wait(WAIT)
    join_all([t])
    m.synchronize(timeout=WAIT)
    assert m.front()[1, 1] == 2.0 and np.all(m.front()[0] == 1.0)


def test_set_many_larger_than_the_bound(open_mgr):
    m = open_mgr((64, 64), max_pending=100)
    rnd = np.random.default_rng(1)
    idx = rnd.integers(0, 64, size=(1000, 2))
    vals = rnd.standard_normal(1000).astype(np.float32)
    seqs = m.set_many(idx, vals)
    assert len(seqs) == 1000 and np.all(np.diff(seqs.astype(np.int64)) > 0)
    m.synchronize(timeout=WAIT)
    ref = ReferenceModel((64, 64))
    ref.set_many(idx, vals)
    ref.synchronize()
    assert_front(m, ref)


def test_open_close_cycles_do_not_leak(backend):
    cycles = 200

    def one():
        with app.open_manager(backend, (64, 64)) as m:
            m.enqueue(Fill(((0, 64), (0, 64)), 1.0))
            m.set_many(np.array([[1, 1]]), np.array([2.0]))
            m.synchronize(timeout=WAIT)
            m.front()

    for _ in range(10):
        one()
    gc.collect()
    threads0 = threading.active_count()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(cycles):
        one()
    gc.collect()
    assert threading.active_count() == threads0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert grown_mib < 40, f"peak RSS grew by {grown_mib:.1f} MiB over {cycles} cycles"


# ---------------------------------------------------------------- pause / step, events (§4)


def test_pause_and_single_step(open_mgr):
    """Each step applies exactly one element update, in order; a sync waits for
    everything queued before it, so it completes only once the steps (or a
    resume) got there."""
    m = open_mgr((4,))
    m.pause()
    m.enqueue(Fill(((0, 4),), 1.0))
    m.set_many(np.array([[0], [1], [2]]), np.array([5.0, 6.0, 7.0]))
    m.enqueue(Add(((0, 4),), 1.0))
    time.sleep(0.02)
    assert m.stats().applied_seq == 0, "a paused worker applied an update"
    for n in range(1, 5):
        m.step(1)
        wait_until(lambda n=n: m.stats().applied_seq == n, what=f"step {n}")
        time.sleep(0.01)
        assert m.stats().applied_seq == n, "a step applied more than one update"
    with pytest.raises(TimeoutError):
        m.synchronize(timeout=0.05)  # the Add (seq 5) is still unapplied
    m.step(1)
    m.synchronize(timeout=WAIT)
    assert m.front().tolist() == [6, 7, 8, 2]
    applied = [(e.seq, e.count) for e in m.events()[0] if e.kind == "apply"]
    assert applied == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]
    m.resume()
    m.enqueue(Scale(((0, 4),), 2.0))
    m.synchronize(timeout=WAIT)
    assert m.front().tolist() == [12, 14, 16, 4]


def test_events_record_the_pipeline(open_mgr):
    m = open_mgr((4, 4))
    seq = m.enqueue(Set((0, 0), 1.0))
    seqs = m.set_many(np.array([[1, 1], [2, 2]]), np.array([1.0, 2.0]))
    m.synchronize(timeout=WAIT)
    events, nxt = m.events()
    kinds = [e.kind for e in events]
    for k in ("enqueue", "apply", "sync-begin", "swap", "visible"):
        assert k in kinds, f"no {k} event"
    enq = [e for e in events if e.kind == "enqueue"]
    assert enq[0].seq == seq and enq[0].op == "set"
    assert enq[0].producer == threading.current_thread().name
    assert enq[1].seq == int(seqs[0]) and enq[1].count == 2
    visible = [e for e in events if e.kind == "visible"]
    assert visible[-1].epoch == 1 and visible[-1].seq == int(seqs[-1])
    applies = [e for e in events if e.kind == "apply"]
    # Updates applied before the swap were written to the buffer that became the front.
    assert applies and all(a.slot == visible[-1].slot for a in applies if a.index < visible[-1].index)
    t = [e.t_ns for e in events]
    assert t == sorted(t), "event timestamps are not monotonic"
    more, nxt2 = m.events(nxt)
    assert more == [] and nxt2 == nxt
    m.enqueue(Set((3, 3), 1.0))
    more, _ = m.events(nxt)
    assert [e.kind for e in more] == ["enqueue"] or more[0].kind == "enqueue"


def test_a_dropped_manager_is_freed(backend):
    """Dropped without close(), after front() was taken: its worker still ends."""
    import os

    def os_threads():
        return len(os.listdir("/proc/self/task"))

    def use_and_drop():
        m = app.open_manager(backend, (64, 64))
        m.enqueue(Fill(((0, 64), (0, 64)), 1.0))
        m.synchronize(timeout=WAIT)
        assert m.front()[0, 0] == 1.0

    use_and_drop()
    gc.collect()
    before = os_threads()
    for _ in range(5):
        use_and_drop()
    deadline = time.monotonic() + WAIT
    while os_threads() > before and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert os_threads() <= before, "dropped managers kept their worker threads"


def test_catch_up_happens_even_while_paused(open_mgr):
    """A sync on an idle worker swaps at once; the new back is still brought up
    to date while the worker is paused (a later sync needs it)."""
    m = open_mgr((4, 4))
    m.enqueue(Fill(((0, 2), (0, 4)), 1.0))
    m.synchronize(timeout=WAIT)
    m.pause()
    assert m.synchronize(timeout=WAIT) == 2

    def caught_up_after_epoch_2():
        evs = m.events()[0]
        swap2 = next((e.index for e in evs if e.kind == "swap" and e.epoch == 2), None)
        return swap2 is not None and any(e.kind == "catch-up" and e.index > swap2 for e in evs)

    wait_until(caught_up_after_epoch_2, what="the catch-up after the second swap")
    m.resume()
    m.enqueue(Add(((0, 4), (0, 4)), 1.0))
    m.synchronize(timeout=WAIT)
    assert m.front()[:2].tolist() == [[2.0] * 4] * 2 and m.front()[2:].tolist() == [[1.0] * 4] * 2


def test_large_writes_idle_worker_and_queued_alike(open_mgr):
    """Writes of 65,536+ elements may be copied by the producer itself when the
    worker is idle; mixed with queued updates, pauses and syncs the result is
    still the reference, bit for bit."""
    shape = (512, 512)
    m = open_mgr(shape)
    ref = ReferenceModel(shape)
    rng = np.random.default_rng(11)

    def both(u):
        m.enqueue(u)
        ref.apply(u)

    for epoch in range(4):
        both(Write(((0, 512), (0, 512)), rng.standard_normal(shape).astype(np.float32)))
        both(Add(((100, 300), (0, 512)), 0.25))
        both(Write(((256, 512), (256, 512)), rng.standard_normal((256, 256))))
        if epoch == 2:
            m.pause()  # queued now, applied by the worker after resume
            both(Write(((0, 256), (0, 512)), np.full((256, 512), -3.5)))
            m.resume()
        both(Scale(((0, 512), (128, 130)), -2.0))
        m.synchronize(timeout=WAIT)
        ref.synchronize()
        assert_front(m, ref)
