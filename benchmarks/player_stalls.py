"""The trace player on a large trace: how long the GUI thread is held at once (the
longest gap between 10 ms timer ticks) while it opens, scrubs, selects log rows and
scrolls the log (issue 9: a 1 M-update trace opens and scrubs without freezing the GUI).
A program, not a test.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/player_stalls.py \
        /tmp/big.jsonl [UPDATES] [--reuse]

Writes a trace of UPDATES (default 1 000 000) updates from three producers (sets, with a
fill and an add every 50) unless ``--reuse`` says the file is there already.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from app import Add, Fill, Set  # noqa: E402
from app.trace import TraceWriter  # noqa: E402


def write_trace(path: str, n: int) -> None:
    rng = np.random.default_rng(0)
    with TraceWriter(path, (256, 256)) as w:
        t = 100.0
        for k in range(n):
            t += 1e-5
            p = f"producer-{k % 3}"
            r, c = (int(x) for x in rng.integers(0, 200, 2))
            if k % 50 == 0:
                u = Fill(((r, r + 40), (c, c + 40)), float(k % 7))
            elif k % 50 == 1:
                u = Add(((r, r + 40), (c, c + 40)), 0.5)
            else:
                u = Set((k * 7 % 256, k * 13 % 256), float(k % 11))
            w.add(u, seq=k + 1, producer=p, t=t)
            if k % 2000 == 1999:
                w.sync(t=t)
        w.sync(t=t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("updates", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--reuse", action="store_true", help="the trace is there already")
    args = ap.parse_args()
    if not args.reuse:
        t0 = time.perf_counter()
        write_trace(args.path, args.updates)
        print(f"wrote {args.updates} updates in {time.perf_counter() - t0:.1f} s")

    from ui.launch import _application

    qapp = _application()
    from PyQt6.QtCore import QTimer

    from ui.trace_window import TracePlayerWindow

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)

    def wait(cond, seconds: float = 300.0) -> None:
        deadline = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > deadline:
                raise SystemExit("timed out")
            qapp.processEvents()
            time.sleep(0.002)

    def phase(name: str) -> None:
        print(f"{name}: longest GUI stall {max(gaps, default=0) * 1000:.0f} ms")
        gaps.clear()
        last[0] = time.perf_counter()

    w = TracePlayerWindow()
    w.show()
    wait(lambda: w.isVisible())
    for _ in range(20):
        qapp.processEvents()
        time.sleep(0.005)
    phase("window up (imports, GL, menus)")
    p = w.player
    t0 = time.perf_counter()
    p.open_trace(args.path)
    wait(lambda: p.index is not None and p.shown is not None)
    print(f"opened in {time.perf_counter() - t0:.1f} s: {p.index.n_updates} updates, "
          f"{p.index.n_epochs} epochs, the docks' history {len(p.history.rows)} rows")
    phase("open")
    n = p.index.n_epochs
    for e in sorted({min(x, n) for x in (1, 50, 99, 100, 101, 250, n // 2, n)}):
        p.show_epoch(e)
        wait(lambda e=e: p.shown == (e, None))
    phase("scrub by epoch")
    log = w.docks.log
    for k in (0, 1000, 50_000, 150_000, log.model.rowCount() - 1):
        log.table.selectRow(min(k, log.model.rowCount() - 1))
        for _ in range(5):
            qapp.processEvents()
            time.sleep(0.01)
    phase("select rows")
    bar = log.table.verticalScrollBar()
    for v in np.linspace(0, bar.maximum(), 20):
        bar.setValue(int(v))
        qapp.processEvents()
    phase("scroll the log")
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
