"""The soak (benchmarks/soak.py, issue 12) in a 30-second run: the real app cycles
scenarios, backend switches, shapes, pause/step, exports and zoom without growing
its memory or its threads, and without a stuck event loop.

Run in a subprocess (a crash or a hang cannot take the test session down), on the
display pytest-xvfb started for this process (its environment is passed on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ui.testing import require_gl  # prepares Qt first

pytestmark = [pytest.mark.gl, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(240)
def test_a_30_second_soak_keeps_memory_and_threads_flat(qapp):
    require_gl()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "soak.py"), "--seconds", "30"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr[-4000:]}"
    try:
        out = json.loads(lines[-1])
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary line:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    detail = f"\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"exit {proc.returncode}{detail}"
    assert out["ok"] and not out["deadlock"], detail
    assert out["cycles"] >= 1, detail
    assert out["rss_growth_mib"] <= out["rss_bound_mib"], detail
    assert out["threads_end"] <= out["threads_start"], detail
    assert out["enumerate_end"] <= out["enumerate_start"], detail
    assert not out["failures"] and not out["errors"], detail
