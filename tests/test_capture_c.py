"""Capture on the C backend (SPEC §5): the C library writes the trace itself, for
BUFFERSCOPE_TRACE and for ``open_manager("c", ..., trace=path)``. Racing Python
threads (cffi releases the GIL, so they race in C) over several epochs: the
trace replays to each epoch's front, bit for bit. Tests that set the
environment variable run in a subprocess (the file numbering is per process)."""

from __future__ import annotations

import gc
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from conftest import replay_epochs, require_backend, wait_until

from app import Add, Fill, Scale, Set, Write, open_manager
from app.trace import SyncMarker

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHAPE = (24, 32)


@pytest.fixture(autouse=True)
def _c_backend():
    require_backend("c")


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def race(m, epochs=4, rounds=150):
    """Two producers race on overlapping regions while the caller synchronizes
    `epochs` times; returns the front after each synchronize (and the last)."""
    start = threading.Barrier(3)

    def filler():
        start.wait()
        for r in range(rounds):
            m.enqueue(Fill(((r % 5, 16), (0, 20)), float(r)))
            m.set_many(np.array([[r % 24, (r * 7) % 32], [(r * 3) % 24, r % 32]]),
                       np.array([r * 0.5, -r], dtype=np.float32))
            time.sleep(0)   # hand over the GIL: a race, not two runs in a row

    def writer():
        start.wait()
        for r in range(rounds):
            m.enqueue(Write(((8, 20), (10, 26)), np.full((12, 16), -0.25 * r, dtype=np.float32)))
            m.enqueue_many([Add(((0, 24), (15, 17)), 0.1), Scale(((5, 10), (0, 32)), 1.5),
                            Set((23, 31), float("nan") if r % 7 == 0 else r / 3)])
            time.sleep(0)

    threads = [threading.Thread(target=filler, name="filler"),
               threading.Thread(target=writer, name="writer")]
    for t in threads:
        t.start()
    start.wait()
    fronts = []
    for _ in range(epochs):
        m.synchronize(timeout=30)
        fronts.append(m.front().copy())
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    m.synchronize(timeout=30)
    fronts.append(m.front().copy())
    return fronts


def assert_replays(path, fronts):
    trace, replayed, trailing = replay_epochs(path)
    assert trailing == 0, "updates after the last sync line"
    assert len(replayed) == len(fronts)
    for k, (a, b) in enumerate(zip(replayed, fronts)):
        assert np.array_equal(bits(a), bits(b)), f"epoch {k + 1} differs"
    updates = [rec for rec in trace.records if not isinstance(rec.item, SyncMarker)]
    assert [rec.seq for rec in updates] == list(range(1, len(updates) + 1))
    producers = [rec.producer for rec in updates]
    assert len(set(producers)) == 2 and all(p.startswith("thread-") for p in producers)
    switches = sum(a != b for a, b in zip(producers, producers[1:]))
    assert switches >= 2, "the producers did not race"
    return trace


def test_trace_argument_records_a_race_that_replays_epoch_by_epoch(tmp_path):
    path = tmp_path / "run.jsonl"
    with open_manager("c", SHAPE, fill=0.5, trace=path) as m:
        fronts = race(m)
    trace = assert_replays(path, fronts)
    assert trace.shape == SHAPE and trace.fill == 0.5


def test_trace_is_written_while_the_program_runs(tmp_path):
    path = tmp_path / "live.jsonl"
    with open_manager("c", SHAPE, trace=str(path)) as m:
        m.enqueue(Fill(((0, 2), (0, 2)), 1.0))
        m.synchronize(timeout=10)
        deadline = threading.Event()
        for _ in range(50):   # flushed within about 0.1 s, not only at close
            if path.read_text().count("\n") >= 3:
                break
            deadline.wait(0.05)
        lines = path.read_text().splitlines()
        assert len(lines) == 3 and '"op": "fill"' in lines[1] and '"op": "sync"' in lines[2]


def _library_threads() -> int:
    """The C library's threads in this process (it names them bs-worker, bs-trace)."""
    n = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                n += f.read().startswith("bs-")
        except OSError:   # ended meanwhile
            pass
    return n


def test_unwritable_trace_raises_naming_the_path_and_leaves_nothing_open(tmp_path):
    bad = tmp_path / "no-such-dir" / "run.jsonl"
    gc.collect()   # managers of earlier tests may still own worker threads
    threads = _library_threads()
    with pytest.raises(OSError, match=f"cannot write the trace {bad}: No such file or directory"):
        open_manager("c", SHAPE, trace=bad)
    # pthread_join returns when the worker has exited, a moment before the kernel drops
    # its /proc entry: wait (bounded) for the entry to go rather than read it at once.
    wait_until(lambda: _library_threads() <= threads, 10, "the worker or writer thread to end")
    with pytest.raises(OSError, match="not a regular file"):
        open_manager("c", SHAPE, trace="/dev/null")
    with pytest.raises(ValueError, match="trace path is NULL or empty"):
        open_manager("c", SHAPE, trace="")
    with pytest.raises(TypeError):
        open_manager("c", SHAPE, trace=3)
    wait_until(lambda: _library_threads() <= threads, 10, "the worker or writer thread to end")


SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from app import open_manager
from test_capture_c import race
fronts = []
for k in range({managers}):
    with open_manager("c", (24, 32), fill=float(k)) as m:
        fronts.append(np.stack(race(m, epochs=3, rounds=60)))
np.save({out!r}, np.stack(fronts))
print("done")
"""


def run_script(tmp_path, trace, managers):
    out = tmp_path / "fronts.npy"
    code = SCRIPT.format(tests=str(ROOT / "tests"), managers=managers, out=str(out))
    env = {**os.environ, "BUFFERSCOPE_TRACE": str(trace)}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r, np.load(out)


def test_environment_variable_traces_every_manager_with_numbered_files(tmp_path):
    r, fronts = run_script(tmp_path, tmp_path / "run.jsonl", managers=3)
    names = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert names == ["run.1.jsonl", "run.2.jsonl", "run.jsonl"]
    for k, name in enumerate(["run.jsonl", "run.1.jsonl", "run.2.jsonl"]):
        trace = assert_replays(tmp_path / name, list(fronts[k]))
        assert trace.fill == float(k)
    assert r.stderr == ""


def test_environment_variable_without_extension_appends_the_number(tmp_path):
    run_script(tmp_path, tmp_path / "trace", managers=2)
    assert (tmp_path / "trace").is_file() and (tmp_path / "trace.1").is_file()


def test_unwritable_environment_variable_warns_once_and_runs_untraced(tmp_path):
    bad = tmp_path / "missing" / "run.jsonl"
    r, fronts = run_script(tmp_path, bad, managers=2)
    assert fronts.shape[0] == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "continuing without a trace" in lines[0]
