"""How fast the update log takes in rows while it follows the tail: the figure
``bufferscope bench`` reports for the log (SPEC §7: 100 000+ rows stay responsive).

``python -m ui.log_bench [N]`` prints one JSON line: rows appended per second with
the dock shown and painting, and the slowest batch (ms) — the longest the GUI
thread was busy at once. Runs on Qt's offscreen platform when there is no
display. Also the home of ``synthetic_events``, the stream the log's tests use.
"""

from __future__ import annotations

import json
import os
import sys
import time

from app.history import UpdateHistory
from app.manager import Event

PRODUCERS = ("alpha", "beta", "gamma")
OPS = ("fill", "add", "scale", "set")


def synthetic_events(a: int, b: int, first_index: int) -> list[Event]:
    """Enqueue events for seqs [a, b): producer k % 3, op k % 4, a 4×4 box moving right."""
    out = []
    for k in range(a, b):
        op = OPS[k % 4]
        c0 = (k * 4) % 1000
        region = ((k % 7, k % 7 + 1),) * 2 if op == "set" else ((0, 4), (c0, c0 + 4))
        out.append(Event(first_index + k - a, 1_000_000 + 1000 * k, "enqueue", k + 1, 1, 0,
                         PRODUCERS[k % 3], 0, op, region, float(k % 10)))
    return out


def measure(n: int = 100_000, batch: int = 2_000) -> dict:
    from app.display import has_display

    if not has_display():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtWidgets import QApplication

    from .history_columns import HistoryColumns
    from .update_log import UpdateLogDock

    app = QApplication.instance() or QApplication(sys.argv[:1])
    h = UpdateHistory()
    columns = HistoryColumns()
    columns.set_history(h)
    dock = UpdateLogDock(columns)
    dock.resize(900, 500)
    dock.show()
    app.processEvents()
    worst = 0.0
    t0 = time.perf_counter()
    done = 0
    while done < n:
        t = time.perf_counter()
        end = min(n, done + batch)
        evs = synthetic_events(done, end, h.next_event)
        h.ingest(evs, h.next_event + len(evs))
        columns.sync()
        app.processEvents()          # the table scrolls to the tail and paints
        worst = max(worst, time.perf_counter() - t)
        done = end
    dt = time.perf_counter() - t0
    rows = dock.model.rowCount()
    dock.close()
    return {"rows": rows, "rows_per_s": rows / dt, "worst_batch_ms": worst * 1e3, "batch": batch}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
