"""Capture from the user's own program (SPEC §5): ``open_manager(..., trace=...)`` and
``BUFFERSCOPE_TRACE`` on the scheduler backends. Racing producers replay, epoch by
epoch, to exactly the fronts the program saw."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from conftest import backend_param

import app
from app import Add, Fill, Scale, Set, Write
from app.reference import ReferenceModel, first_difference, same_bits
from app.trace import SyncMarker, read_trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["numpy", "gl"])
def backend(request) -> str:
    return backend_param(request)


def racing_session(m, epochs: int = 6) -> list[np.ndarray]:
    """Three producers race on overlapping regions while the main thread syncs."""
    fronts = []

    def produce(k: int) -> None:
        rng = np.random.default_rng(k)
        for i in range(150):
            r, c = (int(x) for x in rng.integers(0, 12, 2))
            kind = (Fill, Add, Scale)[i % 3]
            m.enqueue(kind(((r, r + 4), (c, c + 4)), float(k + 1) * (0.5 if kind is Scale else 1)))
            if i % 40 == 0:
                m.set_many(rng.integers(0, 16, (64, 2)), rng.standard_normal(64))
            if i % 70 == 0:
                m.enqueue(Write(((0, 2), (0, 3)), np.array([[np.nan, np.inf, -0.0], [1e-40, k, -k]])))

    threads = [threading.Thread(target=produce, args=(k,), name=f"producer-{k}") for k in range(3)]
    for t in threads:
        t.start()
    for _ in range(epochs):
        m.synchronize(timeout=30)
        fronts.append(m.front().copy())
    for t in threads:
        t.join(30)
    m.synchronize(timeout=30)
    fronts.append(m.front().copy())
    return fronts


def replay_fronts(path) -> list[np.ndarray]:
    """The front after each sync line of a trace, from the reference model."""
    tr = read_trace(path)
    ref = ReferenceModel(tr.shape, tr.fill)
    out = []
    for rec in tr.records:
        if isinstance(rec.item, SyncMarker):
            ref.synchronize()
            out.append(ref.front.copy())
        else:
            ref.apply(rec.item)
    return out


def test_racing_producers_replay_to_every_front_the_program_saw(backend, tmp_path, request):
    path = tmp_path / "run.jsonl"
    m = app.open_manager(backend, (16, 16), fill=0.5, trace=str(path))
    try:
        fronts = racing_session(m)
        # A timed-out sync swaps nothing and must not appear in the trace.
        m.pause()
        m.enqueue(Set((0, 0), 7.0))
        with pytest.raises(TimeoutError):
            m.synchronize(timeout=0.01)
        m.resume()
        m.synchronize(timeout=30)
        fronts.append(m.front().copy())
        m.synchronize(timeout=30)          # nothing queued: swapped in the caller
        fronts.append(m.front().copy())
    finally:
        m.close()
    got = replay_fronts(path)
    assert len(got) == len(fronts), "one sync line per epoch the program saw"
    flush = backend == "gl"
    for k, (a, b) in enumerate(zip(got, fronts)):
        assert same_bits(a, b, flush_subnormals=flush), f"epoch {k + 1}: {first_difference(a, b)}"
    tr = read_trace(path)
    seqs = [r.seq for r in tr.records if r.seq is not None]
    assert seqs == sorted(seqs) and seqs == list(range(1, len(seqs) + 1)), "sequence order"
    producers = {r.producer for r in tr.records if r.producer}
    assert {"producer-0", "producer-1", "producer-2"} <= producers


def test_the_environment_variable_captures_every_manager_with_numbered_names(tmp_path):
    script = textwrap.dedent("""
        import app
        from app import Fill
        for k in range(3):
            m = app.open_manager("numpy", (4, 4))
            m.enqueue(Fill(((0, k + 1), (0, 4)), float(k)))
            m.synchronize(timeout=10)
            if k < 2:
                m.close()
        # the last one is left open: the trace is complete at a normal exit
    """)
    env = {**os.environ, "PYTHONPATH": ROOT, "BUFFERSCOPE_TRACE": str(tmp_path / "run.jsonl")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    names = sorted(os.listdir(tmp_path))
    assert names == ["run.1.jsonl", "run.2.jsonl", "run.jsonl"]
    for k, name in enumerate(["run.jsonl", "run.1.jsonl", "run.2.jsonl"]):
        fronts = replay_fronts(tmp_path / name)
        expect = np.zeros((4, 4), dtype=np.float32)
        expect[: k + 1] = k
        assert len(fronts) == 1 and np.array_equal(fronts[0], expect), name


def test_a_trace_path_that_cannot_be_written_is_refused_clearly(tmp_path):
    with pytest.raises(OSError, match="cannot write the trace: .*does not exist"):
        app.open_manager("numpy", (4, 4), trace=str(tmp_path / "no" / "such" / "dir.jsonl"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="refusing to replace it"):
        app.open_manager("numpy", (4, 4), trace=str(fifo))
    assert os.path.exists(fifo) and not os.path.isfile(fifo)
    # the no_thread_left_behind fixture checks that the refused managers stopped their workers


def test_c_and_scheduler_managers_share_one_numbering(tmp_path, request):
    """BUFFERSCOPE_TRACE in a process with C and numpy managers: one numbering, no
    file written twice, each trace replays (the C library leaves the variable to
    the Python package, which numbers every manager)."""
    script = textwrap.dedent("""
        import app
        from app import Fill
        for k, backend in enumerate(["c", "numpy", "c", "numpy"]):
            with app.open_manager(backend, (4, 4)) as m:
                m.enqueue(Fill(((0, k + 1), (0, 4)), float(k + 1)))
                m.synchronize(timeout=10)
    """)
    env = {**os.environ, "PYTHONPATH": ROOT, "BUFFERSCOPE_TRACE": str(tmp_path / "run.jsonl")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    names = ["run.jsonl", "run.1.jsonl", "run.2.jsonl", "run.3.jsonl"]
    assert sorted(os.listdir(tmp_path)) == sorted(names)
    for k, name in enumerate(names):
        fronts = replay_fronts(tmp_path / name)
        expect = np.zeros((4, 4), dtype=np.float32)
        expect[: k + 1] = k + 1
        assert len(fronts) == 1 and np.array_equal(fronts[0], expect), name


def test_an_unwritable_environment_trace_warns_once_and_runs_untraced(tmp_path):
    script = textwrap.dedent("""
        import app
        from app import Set
        for backend in ["numpy", "c", "numpy"]:
            with app.open_manager(backend, (2,)) as m:
                m.enqueue(Set((0,), 1.0))
                assert m.synchronize(timeout=10) == 1
        print("ran")
    """)
    env = {**os.environ, "PYTHONPATH": ROOT,
           "BUFFERSCOPE_TRACE": str(tmp_path / "missing" / "run.jsonl")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip() == "ran", r.stderr
    assert r.stderr.count("continuing without a trace") == 1, r.stderr
