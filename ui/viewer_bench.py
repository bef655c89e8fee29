"""The viewer figures of ``bufferscope bench`` (SPEC §8), measured in one process.

``python -m ui.viewer_bench --shape 1024x1024 --backends c,gl`` prints progress on
stderr and one JSON line on stdout:

* ``empty_fps`` — the limit: an empty ``QOpenGLWidget`` (it clears and asks for
  the next frame at once) as the central widget of a window of the same size;
* for each backend and shape (``--shape`` and 4096×4096), the main window on the
  ``stress`` scenario with auto-sync unbounded (the clock at its 1 ms floor: a
  synchronize is asked for as soon as the previous one has been handled):
  frames/s the view painted, epochs/s, texture rows and bytes uploaded per frame
  (on the sync worker when ``uploads_on_worker``; 0 when the view samples the GL
  backend's texture), and sync → pixel: the time
  from ``synchronize`` returning (on the session's worker) to the swap of the
  first frame that shows that epoch or a newer one, in ms and in frames at the
  view's measured rate (median and p99).

``bufferscope bench`` runs it as a child under the current display: the bench's
own process never imports Qt. Without a display it says so (``error``) and
measures nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

WINDOW = (1400, 900)
BIG = (4096, 4096)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _wait(seconds: float) -> None:
    from PyQt6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def measure_empty(size: tuple[int, int], seconds: float) -> float:
    """Frames/s of an empty QOpenGLWidget filling a window of ``size``."""
    from OpenGL import GL
    from PyQt6.QtOpenGLWidgets import QOpenGLWidget
    from PyQt6.QtWidgets import QMainWindow

    class Empty(QOpenGLWidget):
        frames = 0

        def paintGL(self) -> None:
            GL.glClearColor(0.1, 0.1, 0.1, 1.0)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
            self.frames += 1
            self.update()

    win = QMainWindow()
    widget = Empty()
    win.setCentralWidget(widget)
    win.resize(*size)
    win.show()
    _wait(1.0)
    f0, t0 = widget.frames, time.monotonic()
    _wait(seconds)
    fps = (widget.frames - f0) / (time.monotonic() - t0)
    win.close()
    win.deleteLater()
    _wait(0.2)
    return fps


def measure_viewer(backend: str, shape: tuple[int, ...], size: tuple[int, int],
                   seconds: float, warmup: float = 2.0) -> dict:
    """The main window on ``stress`` at ``shape``, auto-sync unbounded (see the module doc)."""
    from .main_window import MainWindow

    win = MainWindow(backend, shape, "stress", autosync_hz=1000.0)
    try:
        win.resize(*size)
        win.show()
        s, view = win.session, win.view
        if s.backend != backend or tuple(s.shape) != tuple(shape):
            raise RuntimeError(f"the window opened {s.backend} {s.shape}: {s.last_error}")
        synced: dict[int, float] = {}
        swaps: list[tuple[float, int]] = []
        s.sigFrontChanged.connect(
            lambda e, _f: synced.__setitem__(int(e), s.synced_at) if s.synced_at else None)
        view.frameSwapped.connect(
            lambda: swaps.append((time.monotonic(), -1 if view.drawn_epoch is None
                                  else int(view.drawn_epoch))))
        deadline = time.monotonic() + warmup + 30.0
        _wait(warmup)
        while s.epoch < 3 and time.monotonic() < deadline:
            _wait(0.1)
        rd = view.renderer
        up = s.front_uploader      # uploads on the sync worker (None: the view uploads)

        def uploaded() -> tuple[int, int]:
            rows, nbytes = rd.total_uploaded
            if up is not None:
                rows, nbytes = rows + up.total_rows, nbytes + up.total_bytes
            return rows, nbytes

        f0, e0, u0, t0 = view.frame_count(), s.epoch, uploaded(), time.monotonic()
        _wait(seconds)
        t1 = time.monotonic()
        frames, epochs = view.frame_count() - f0, s.epoch - e0
        u1 = uploaded()
        rows, nbytes = u1[0] - u0[0], u1[1] - u0[1]
        fps = frames / (t1 - t0)
        lat = []
        for epoch, at in synced.items():
            if not t0 <= at <= t1 - 0.2:
                continue
            shown = next((t for t, e in swaps if t >= at and e >= epoch), None)
            if shown is not None:
                lat.append(shown - at)
        return {
            "backend": backend, "shape": list(shape), "window": list(size),
            "fps": fps, "epochs_per_s": epochs / (t1 - t0),
            "samples_texture": bool(view.using_shared_texture),
            "uploads_on_worker": up is not None and up is s.front_uploader,
            "rows_per_frame": rows / max(frames, 1), "bytes_per_frame": nbytes / max(frames, 1),
            "plane_rows": int(shape[-2]) if len(shape) > 1 else 1,
            "latency_ms_median": None if not lat else 1e3 * _pct(lat, 50),
            "latency_ms_p99": None if not lat else 1e3 * _pct(lat, 99),
            "latency_frames_median": None if not lat else _pct(lat, 50) * fps,
            "latency_frames_p99": None if not lat else _pct(lat, 99) * fps,
            "latency_samples": len(lat),
            "renderer": view.gl_info.get("renderer", "?"),
        }
    finally:
        win.close()
        win.deleteLater()
        _wait(0.3)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a shape is sizes joined by x (like 1024x1024), got {text!r}") from None
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ValueError(f"a shape has 1 to 3 positive sizes, got {text!r}")
    return shape


def run(backends, shape, seconds: float, size=WINDOW, log=_log) -> dict:
    from app.display import display_problem

    problem = display_problem()
    if problem:
        return {"error": problem}
    from .launch import _application

    app = _application()  # noqa: F841 (kept alive while measuring)
    shapes = [tuple(shape)] + ([BIG] if tuple(shape) != BIG else [])
    out: dict = {"window": list(size), "cases": []}
    log(f"  viewer: an empty QOpenGLWidget in a {size[0]}x{size[1]} window (the limit)...")
    out["empty_fps"] = measure_empty(size, seconds)
    for shp in shapes:
        for b in backends:
            log(f"  viewer: {b}, stress at {'x'.join(map(str, shp))}, auto-sync unbounded...")
            try:
                out["cases"].append(measure_viewer(b, shp, size, seconds))
            except Exception as exc:
                out["cases"].append({"backend": b, "shape": list(shp),
                                     "error": f"{type(exc).__name__}: {exc}"})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="1024x1024")
    p.add_argument("--backends", default="c,gl")
    p.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    print(json.dumps(run(backends, parse_shape(args.shape), args.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
