"""Live attach overhead for ``bufferscope bench`` (SPEC §8: an attached viewer slows the
observed program by <= 10%). Qt-free.

A producer program (a child process) does ``set_many`` batches of 4096 random
elements + ``synchronize`` in a loop on a 1024x1024 buffer and reports its rate.
It runs unpublished, published with nobody attached, and published with a viewer
(this process) reading every message; the rounds alternate so that a noisy machine
affects every mode alike, and ``measure`` returns the median of each mode against
the unpublished one. ``benchmarks/attach_overhead.py`` prints it as a table.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the repository

PRODUCER = r"""
import sys, time
import numpy as np
import app
backend, h, w, batch, warm, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
if len(sys.argv) > 7:
    from app import live
    live.DUTY = float(sys.argv[7])
m = app.open_manager(backend, (h, w))
rng = np.random.default_rng(1)
idx = [np.stack([rng.integers(0, h, batch), rng.integers(0, w, batch)], axis=1) for _ in range(16)]
vals = [rng.standard_normal(batch).astype(np.float32) for _ in range(16)]
print("ready", flush=True)
t_end = time.monotonic() + warm
i = 0
while time.monotonic() < t_end:
    m.set_many(idx[i % 16], vals[i % 16]); m.synchronize(10); i += 1
n, t0, c0 = 0, time.monotonic(), time.process_time()
t_end = t0 + seconds
while True:
    m.set_many(idx[n % 16], vals[n % 16]); m.synchronize(10); n += 1
    if n % 8 == 0 and time.monotonic() >= t_end:
        break
dt, cpu = time.monotonic() - t0, time.process_time() - c0
from app import live
pub = sum(p.cpu_s for p in list(live._publishers))
print(f"rate {n * batch / dt:.1f} cpu_per_mupdate {cpu / (n * batch) * 1e6:.4f} "
      f"publisher_cpu_share {pub / dt:.4f}", flush=True)
m.close()
"""


def _viewer(path: str, stop: threading.Event, got: dict) -> None:
    """Attach as soon as the socket exists and read everything until the program ends."""
    from app.attach import AttachError, Client, ProgramEnded, Update

    deadline = time.monotonic() + 20
    client = None
    while client is None and not stop.is_set() and time.monotonic() < deadline:
        try:
            client = Client(path, timeout=5)
        except AttachError:
            time.sleep(0.01)
    if client is None:
        return
    try:
        while not stop.is_set():
            try:
                msg = client.recv(0.5)
            except TimeoutError:
                continue
            if isinstance(msg, Update):
                got["updates"] = got.get("updates", 0) + 1
                got["fronts"] = got.get("fronts", 0) + (msg.front is not None)
                got["events"] = got.get("events", 0) + len(msg.events)
                got["skipped"] = got.get("skipped", 0) + msg.skipped
    except (ProgramEnded, AttachError):
        pass
    finally:
        client.close()


def run_once(mode: str, backend: str, shape: tuple[int, int], batch: int, seconds: float,
             warm: float = 0.7, duty: float | None = None) -> tuple[float, dict]:
    """One producer run in ``mode`` ("off", "idle", "viewer"): its updates/s, viewer counts."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("BUFFERSCOPE_LISTEN", None)
    got: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bs.sock")
        if mode != "off":
            env["BUFFERSCOPE_LISTEN"] = path
        stop = threading.Event()
        t = None
        if mode == "viewer":
            t = threading.Thread(target=_viewer, args=(path, stop, got), name="attach-viewer")
            t.start()
        try:
            out = subprocess.run(
                [sys.executable, "-c", PRODUCER, backend, str(shape[0]), str(shape[1]), str(batch),
                 str(warm), str(seconds), *([] if duty is None else [str(duty)])],
                env=env, capture_output=True, text=True, timeout=seconds + warm + 60)
        finally:
            stop.set()
            if t is not None:
                t.join(10)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("rate ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"producer failed ({out.returncode}): {out.stderr[-500:]}")
    f = lines[-1].split()
    got["cpu_per_mupdate"] = float(f[3])
    got["publisher_cpu_share"] = float(f[5])
    return float(f[1]), got


def measure(backend: str = "c", shape: tuple[int, int] = (1024, 1024), batch: int = 4096,
            seconds: float = 3.0, rounds: int = 3, duty: float | None = None) -> dict:
    """Median updates/s of each mode and the ratios against the unpublished run."""
    modes = ("off", "idle", "viewer")
    rates: dict[str, list[float]] = {k: [] for k in modes}
    cpu: dict[str, list[float]] = {k: [] for k in modes}
    share: dict[str, list[float]] = {k: [] for k in modes}
    viewer: dict = {}
    for _ in range(rounds):
        for mode in modes:
            r, got = run_once(mode, backend, shape, batch, seconds, duty=duty)
            rates[mode].append(r)
            cpu[mode].append(got.pop("cpu_per_mupdate"))
            share[mode].append(got.pop("publisher_cpu_share"))
            for k, v in got.items():
                viewer[k] = viewer.get(k, 0) + v
    med = {k: statistics.median(v) for k, v in rates.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "backend": backend, "shape": list(shape), "batch": batch, "seconds": seconds,
        "rounds": rounds, "rates": rates, "median": med,
        "idle_ratio": med["idle"] / med["off"], "viewer_ratio": med["viewer"] / med["off"],
        "cpu_s_per_mupdate": cpu_med,
        "viewer_cpu_ratio": cpu_med["viewer"] / cpu_med["off"],
        "publisher_cpu_share": {k: statistics.median(v) for k, v in share.items()},
        "viewer_received": viewer,
    }
