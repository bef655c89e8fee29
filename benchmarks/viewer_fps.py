"""Viewer frames/s on a live scenario (SPEC §8: >= 60 on the 1024x1024 scenario
under Mesa llvmpipe). A program, not a test.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/viewer_fps.py gl
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/viewer_fps.py c --hz 60

Opens the main window on the "stress" scenario, lets it warm up, then counts the
frames the view painted and the epochs it saw, and how many texture rows it
uploaded per frame (0 when it samples the GL backend's front texture).
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("backend", choices=["c", "gl"])
    p.add_argument("--hz", type=float, default=60.0, help="auto-sync rate")
    p.add_argument("--size", default="1400x900", help="window size")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--scenario", default="stress")
    args = p.parse_args()
    w, h = (int(x) for x in args.size.split("x"))

    from ui.launch import _application

    app = _application()
    from PyQt6.QtCore import QEventLoop, QTimer

    from ui.main_window import MainWindow

    def wait(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    win = MainWindow(args.backend, None, args.scenario, autosync_hz=args.hz)
    win.resize(w, h)
    win.show()
    wait(2.0)
    view = win.view
    rows: list[int] = []
    renderer = view.renderer
    upload = renderer.upload

    def counting_upload(src):
        upload(src)
        rows.append(renderer.uploaded_rows)

    renderer.upload = counting_upload
    e0, t0 = win.session.epoch, time.monotonic()
    wait(args.seconds)
    dt = time.monotonic() - t0
    frames = sum(1 for t in view._frame_times if t >= t0)
    shape = win.session.shape
    print(f"{args.backend}: {args.scenario} {'x'.join(map(str, shape))}, window {w}x{h}, "
          f"auto-sync {args.hz:.0f} Hz: {frames / dt:.1f} frames/s, "
          f"{(win.session.epoch - e0) / dt:.1f} epochs/s, "
          f"{'samples the front texture' if view.using_shared_texture else 'uploads'}, "
          f"{sum(rows) / max(1, len(rows)):.0f} of {shape[-2] if len(shape) > 1 else 1} rows "
          f"uploaded per frame; renderer {view.gl_info.get('renderer', '?')}")
    win.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
