"""The viewer rows of ``bufferscope bench`` (SPEC §8): frames/s on the ``stress``
scenario at ``--shape`` and at 4096×4096 against an empty ``QOpenGLWidget`` in a
window of the same size (the limit, measured in the same run), the texture bytes
uploaded per frame, and sync → pixel in frames.

Measured by ``ui.viewer_bench`` in a child process under the current display
(the bench's own process never imports Qt); its progress lines pass through to
stderr. Without a display the row says so and the rest of the bench goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .bench_report import Figure

VIEWER_SMALL_TARGET = 0.8     # x the empty QOpenGLWidget's frames/s
VIEWER_BIG_FPS = 30.0         # frames/s at 4096x4096
SYNC_TO_PIXEL_FRAMES = 2.0


def run_child(backends, shape: tuple[int, ...], seconds: float) -> dict:
    """What ``python -m ui.viewer_bench`` measured (``{"error": ...}`` when it could not)."""
    from .display import display_problem

    problem = display_problem()
    if problem:
        return {"error": problem}
    cmd = [sys.executable, "-m", "ui.viewer_bench", "--shape", "x".join(map(str, shape)),
           "--backends", ",".join(backends), "--seconds", str(seconds)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=900,
                           cwd=root)
    except subprocess.TimeoutExpired:
        return {"error": "the viewer measurement did not finish in 900 s"}
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        return {"error": f"the viewer measurement failed (exit status {r.returncode})"}
    return json.loads(lines[-1])


def _shape_name(shape) -> str:
    return "x".join(str(n) for n in shape)


def figures(result: dict, shape: tuple[int, ...]) -> list[Figure]:
    """The table rows of one child's result."""
    if "error" in result:
        return [Figure(f"viewer: {result['error']}"[:130], "ui", float("nan"), "")]
    w, h = result["window"]
    empty = result["empty_fps"]
    figs = [Figure(f"empty QOpenGLWidget, {w}x{h} window", "ui", empty, "frames/s",
                   note="the limit of the viewer at --shape")]
    for c in result["cases"]:
        b, shp = c["backend"], tuple(c["shape"])
        name = f"viewer, stress {_shape_name(shp)}, auto-sync unbounded"
        if "error" in c:
            figs.append(Figure(f"{name}: {c['error']}"[:110], b, float("nan"), ""))
            continue
        moved = (f"{c['rows_per_frame']:.0f} of {c['plane_rows']} rows, "
                 f"{c['bytes_per_frame'] / 2**20:.2f} MiB per frame")
        how = (f"the sync worker uploads {moved} into the texture it samples"
               if c.get("uploads_on_worker") else
               "samples the backend's texture" if c["samples_texture"] else f"uploads {moved}")
        note = f"{c['epochs_per_s']:.1f} epochs/s; {how}"
        if shp == tuple(shape):
            figs.append(Figure(name, b, c["fps"], "frames/s", "empty QOpenGLWidget", empty,
                               f">= {VIEWER_SMALL_TARGET}x", VIEWER_SMALL_TARGET, note=note))
        else:
            figs.append(Figure(name, b, c["fps"], "frames/s", "target", VIEWER_BIG_FPS,
                               f">= {VIEWER_BIG_FPS:.0f} frames/s", 1.0, note=note))
        med, p99 = c["latency_frames_median"], c["latency_frames_p99"]
        name = f"sync -> pixel, stress {_shape_name(shp)}, median"
        if med is None:       # too slow to show an epoch in the run: nothing to judge
            figs.append(Figure(name, b, float("nan"), "frames", note="no epoch shown in the run"))
            continue
        figs.append(Figure(
            name, b, med, "frames", "target", SYNC_TO_PIXEL_FRAMES,
            f"<= {SYNC_TO_PIXEL_FRAMES:.0f} frames", 1.0, higher_is_better=False,
            note=f"p99 {p99:.2f} frames; {c['latency_ms_median']:.0f} / "
                 f"{c['latency_ms_p99']:.0f} ms"))
    return figs


def bench_viewer(backends, shape: tuple[int, ...], seconds: float) -> list[Figure]:
    return figures(run_child(backends, shape, seconds), shape)
