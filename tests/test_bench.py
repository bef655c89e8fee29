"""``bufferscope bench`` is a program, not a test: nothing here asserts a time.
These check that it measures every figure of SPEC §8 it claims and writes them
for tools, and that the baseline really is the original sketch."""

from __future__ import annotations

import json
import math

from app.bench import SketchManager, table
from app.cli import main as cli_main


def test_baseline_sketch_applies_updates_and_swaps():
    m = SketchManager((4, 4))
    try:
        m.enqueue(("set", (1, 2), 5.0))
        m.synchronize()
        assert m.front[1, 2] == 5.0
        m.enqueue(("set", (0, 0), 1.0))
        m.synchronize()
        # The sketch's known flaw, kept on purpose: the back was stale, the first update is lost.
        assert m.front[0, 0] == 1.0 and m.front[1, 2] == 0.0
    finally:
        m.close()


def test_bench_quick_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli_main(["bench", "--quick", "--backends", "c", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    fig = json.loads(out.read_text())
    for key in ("baseline_updates_per_s", "baseline_sync_median_us", "numpy_scatter_per_s",
                "memcpy_bytes_per_s", "c_per_call_per_s", "c_set_many_per_s", "c_sync_median_us",
                "c_sync_p99_us", "c_sync100_1mib_us", "c_sync100_64mib_us", "c_write16mib_bytes_per_s"):
        assert key in fig and math.isfinite(fig[key]) and fig[key] > 0, key
    assert "c: set_many(4096) updates/s" in printed and "baseline" in printed
    assert table(fig) in printed
