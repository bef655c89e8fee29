"""The ``bufferscope`` command line (SPEC §6).

Exit status: 0 on success, 2 for bad input (arguments, malformed traces), 1 for
any other failure (a backend that cannot run here, a worker error). Errors are
one line on stderr that names the problem; no partial output file is written.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .backends import BACKENDS

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def parse_shape(text: str) -> tuple[int, ...]:
    """``"512x512"`` → ``(512, 512)``; 1 to 3 positive sizes."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: expected sizes like 512x512") from None
    if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: 1 to 3 sizes, each >= 1")
    return shape


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bufferscope",
        description="See what an asynchronous, double-buffered buffer manager does. "
        "Without a command, opens the application.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("gui", help="open the application (the default)")
    g.add_argument("--backend", choices=list(BACKENDS), default="c", help="manager backend (default: c)")
    g.add_argument("--shape", type=parse_shape, default=None, help="buffer shape, e.g. 512x512")
    g.add_argument("--scenario", default=None, help="built-in scenario to start with")

    r = sub.add_parser("replay", help="replay a trace headless and write the final front as .npy")
    r.add_argument("trace", help="trace file (JSON Lines, SPEC §5)")
    r.add_argument("--backend", choices=list(BACKENDS), default="c", help="manager backend (default: c)")
    r.add_argument("--out", required=True, help="where to write the final front (.npy)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per synchronize")

    b = sub.add_parser("bench", help="measure throughput and latency against the baseline (SPEC §8)")
    b.add_argument("--json", dest="json_out", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the figures as JSON instead of the table; with FILE, write them "
                   "there as well as printing the table")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (a rough, faster run)")
    b.add_argument("--backends", default="c,gl", help="backends to measure (default: c,gl)")

    s = sub.add_parser("screenshot", help="render the application headless to a PNG")
    s.add_argument("--backend", choices=list(BACKENDS), default="c")
    s.add_argument("--scenario", required=True, help="built-in scenario to run")
    s.add_argument("--shape", type=parse_shape, default=None)
    s.add_argument("--out", required=True, help="PNG file to write")
    return p


def _err(msg: str) -> None:
    print(f"bufferscope: error: {msg}", file=sys.stderr)


def cmd_replay(args) -> int:
    from .atomic import save_npy
    from .backends import open_manager, why_not
    from .errors import BackendError, BackendUnavailableError
    from .trace import TraceError, read_trace, replay

    try:
        trace = read_trace(args.trace)
    except TraceError as exc:
        _err(str(exc))
        return EXIT_USAGE
    reason = why_not(args.backend)
    if reason:
        _err(f"backend {args.backend!r} cannot run here: {reason}")
        return EXIT_FAIL
    show = sys.stderr.isatty()

    def progress(done, total):
        if show and total:
            print(f"\rreplaying {done}/{total} lines", end="", file=sys.stderr, flush=True)

    try:
        m = open_manager(args.backend, trace.shape, fill=trace.fill)
    except ValueError as exc:  # e.g. a shape beyond the GL implementation's limits
        _err(f"{args.trace}: the trace's buffer cannot be opened on {args.backend}: {exc}")
        return EXIT_USAGE
    except (MemoryError, BackendUnavailableError) as exc:
        _err(f"cannot open the {args.backend} manager: {exc}")
        return EXIT_FAIL
    try:
        with m:
            n = replay(trace, m, timeout=args.timeout, progress=progress)
            front = m.front().copy()
    except (BackendError, TimeoutError) as exc:
        _err(f"replay failed: {exc}")
        return EXIT_FAIL
    if show:
        print(file=sys.stderr)
    try:
        save_npy(args.out, front)
    except OSError as exc:
        _err(f"cannot write {args.out}: {exc.strerror or exc}")
        return EXIT_FAIL
    print(f"replayed {n} updates on {args.backend}; front {front.shape} written to {args.out}")
    return EXIT_OK


def _ui():
    # The UI is a layer above app/: loaded by name only when a GUI command runs,
    # so the core never imports it (checked by import-linter).
    return importlib.import_module("ui.launch")


def _needs_virtual_display() -> bool:
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("BUFFERSCOPE_NO_XVFB"))


def _rerun_under_xvfb(argv: list[str] | None) -> int:
    """A headless screenshot needs an OpenGL-capable display: run this same
    command again inside a private Xvfb (Mesa llvmpipe) when one can be started."""
    import shutil
    import subprocess

    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        _err("no display for the screenshot: set DISPLAY or install xvfb (xvfb-run)")
        return EXIT_FAIL
    args = sys.argv[1:] if argv is None else list(argv)
    env = {**os.environ, "BUFFERSCOPE_NO_XVFB": "1"}
    cmd = [xvfb_run, "-a", "-s", "-screen 0 1600x1000x24 +extension GLX +render -noreset",
           sys.executable, "-m", "app", *args]
    return subprocess.call(cmd, env=env)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cmd = args.command or "gui"
    if cmd == "replay":
        return cmd_replay(args)
    if cmd == "bench":
        from .bench import main as bench_main

        return bench_main(args)
    if cmd == "screenshot":
        if _needs_virtual_display():
            return _rerun_under_xvfb(argv)
        try:
            _ui().screenshot(args.backend, args.scenario, args.out, shape=args.shape)
        except ValueError as exc:
            _err(str(exc))
            return EXIT_USAGE
        except Exception as exc:  # a backend or GL failure: one line, not a traceback
            _err(f"screenshot failed: {type(exc).__name__}: {exc}")
            return EXIT_FAIL
        print(f"wrote {os.path.abspath(args.out)}")
        return EXIT_OK
    backend = getattr(args, "backend", "c")
    return _ui().gui(backend, getattr(args, "shape", None), getattr(args, "scenario", None))


if __name__ == "__main__":
    sys.exit(main())
