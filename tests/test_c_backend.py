"""C-backend specifics beyond the shared contract: the memory the catch-up
bookkeeping may take, and what an injected fault names."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rss_mib

import app
from app import Fill, Set


@pytest.mark.parametrize("kind", ["empty fills", "single sets"])
def test_catch_up_bookkeeping_stays_near_one_buffer(kind):
    """400,000 tiny or empty updates between two syncs must cost about a buffer
    (4 MiB at most here) however many they are: 136 bytes of bookkeeping kept for
    each would be 52 MiB. A first round of 100,000 fills the event ring and the
    allocator's pools (about 14 MiB), so what is measured is what grows with the count."""
    shape = (64, 64) if kind == "empty fills" else (1024, 1024)  # 16 KiB or 4 MiB
    with app.open_manager("c", shape, max_pending=5000) as m:  # the queue's own share stays small
        m.synchronize(timeout=10)
        if kind == "empty fills":
            batch = [Fill(((0, 0), (0, 64)), 1.0)] * 5000
        else:
            batch = [Set((i % 1024, i // 1024), 2.0) for i in range(5000)]
        for _ in range(20):
            m.enqueue_many(batch)
        m.synchronize(timeout=30)
        before = rss_mib()
        for _ in range(80):
            m.enqueue_many(batch)
        m.synchronize(timeout=30)
        grown = rss_mib() - before
        m.synchronize(timeout=30)
        assert m.front()[0, 0] == (0.0 if kind == "empty fills" else 2.0)
    assert grown < 8, f"RSS grew by {grown:.1f} MiB for 400,000 {kind}"


def test_injected_fault_names_the_whole_chunk():
    with app.open_manager("c", (8,)) as m:
        m.inject_worker_fault(after=1)
        seqs = m.set_many(np.array([[1], [2], [3]]), np.array([1.0, 2.0, 3.0]))
        with pytest.raises(app.BackendError, match=f"seq {seqs[0]}..{seqs[-1]} failed"):
            m.synchronize(timeout=10)
        assert m.front().tolist() == [0.0] * 8, "the failed chunk was applied after all"


@pytest.mark.parametrize("bad", [-1, 0, 2**64])
def test_inject_fault_arguments(bad):
    with app.open_manager("c", (2,)) as m, pytest.raises(ValueError, match="after must be"):
        m.inject_worker_fault(after=bad)


def test_step_count_out_of_range():
    with app.open_manager("c", (2,)) as m:
        m.pause()
        with pytest.raises(ValueError, match="step count"):
            m.step(2**64)
        m.resume()
