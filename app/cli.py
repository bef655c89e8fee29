"""The ``bufferscope`` command line (SPEC §6; documented in docs/cli.md).

Exit status: 0 on success, 2 for bad input (arguments, malformed traces, an
output path that cannot be written safely), 1 for any other failure (a backend
that cannot run here, a worker error, a failed write), 130 when interrupted.
Errors are one line on stderr that names the problem, never a traceback: every
argument is checked by its argparse ``type`` before any work starts, and
argparse's own errors are one line too. No partial output file is written
(``app.atomic``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .backends import BACKENDS

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (SPEC §6), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types: each refuses a bad value with one line naming it ------------------
def parse_shape(text: str) -> tuple[int, ...]:
    """``"512x512"`` → ``(512, 512)``; 1 to 3 positive sizes whose two buffers fit in
    the memory available now."""
    from .sysmem import check_buffers_fit

    parts = text.lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: expected sizes like 512x512") from None
    if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: 1 to 3 sizes, each >= 1")
    if any(n >= 1 << 63 for n in shape):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: each size must be < 2**63")
    try:
        check_buffers_fit(shape)
    except MemoryError as exc:
        raise argparse.ArgumentTypeError(f"shape {text!r} is too large: {exc}") from None
    return shape


def parse_timeout(text: str) -> float:
    """Seconds >= 0 (``inf``: wait as long as it takes)."""
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad timeout {text!r}: expected seconds, e.g. 60") from None
    if not t >= 0:
        raise argparse.ArgumentTypeError(f"bad timeout {text!r}: must be >= 0 seconds")
    return t


def parse_scenario(text: str) -> str:
    from .scenarios import get_scenario

    try:
        get_scenario(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parse_backend_list(text: str) -> tuple[str, ...]:
    names = tuple(b.strip() for b in text.split(",") if b.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"no backend named in {text!r}; e.g. c,gl")
    bad = [b for b in names if b not in BACKENDS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown backend {bad[0]!r}; choose from: {', '.join(BACKENDS)}")
    return names


def output_path(text: str) -> str:
    """A path where a regular file may be written (app.atomic.check_output_path)."""
    from .atomic import OutputPathError, check_output_path

    if text == "-":
        return text
    try:
        check_output_path(text)
    except OutputPathError as exc:
        raise argparse.ArgumentTypeError(str(exc.strerror or exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(
        prog="bufferscope",
        description="See what an asynchronous, double-buffered buffer manager does. "
        "Without a command, opens the application.",
        epilog="Exit status: 0 success, 1 failure (a backend that cannot run here, a worker "
        "error), 2 bad input (an argument, a malformed trace), 130 interrupted. "
        "Documentation: docs/cli.md.",
    )
    p.add_argument("--version", action="version", version=f"bufferscope {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    backends = list(BACKENDS)

    g = sub.add_parser("gui", help="open the application (the default)",
                       description="Open the application on a live scenario.")
    g.add_argument("--backend", choices=backends, default="c", help="manager backend (default: c)")
    g.add_argument("--shape", type=parse_shape, default=None,
                   help="buffer shape, 1 to 3 sizes, e.g. 512x512 (default: the scenario's)")
    g.add_argument("--scenario", type=parse_scenario, default=None,
                   help="built-in scenario to start with (waves, racing, sparse, stress; default: waves)")

    r = sub.add_parser("replay", help="replay a trace headless and write the final front as .npy",
                       description="Replay a trace (JSON Lines, docs/trace-format.md) on a backend, "
                       "streaming it line by line, and write the final front buffer as .npy. "
                       "A malformed trace is refused naming its line (exit 2) and nothing is written.")
    r.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines, docs/trace-format.md)")
    r.add_argument("--backend", choices=backends, default="c", help="manager backend (default: c)")
    r.add_argument("--out", required=True, type=output_path, metavar="FRONT.npy",
                   help="where to write the final front (.npy)")
    r.add_argument("--timeout", type=parse_timeout, default=60.0,
                   help="seconds allowed per synchronize (default: 60; inf: no limit)")

    b = sub.add_parser("bench", help="measure throughput and latency against limits measured in the same run",
                       description="Print the benchmark table (SPEC §8), measured in one run.")
    b.add_argument("--json", dest="json_out", nargs="?", const="-", default=None, metavar="FILE",
                   type=output_path,
                   help="print the figures as JSON instead of the table; with FILE, write them "
                   "there as well as printing the table")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (a rough, faster run)")
    b.add_argument("--backends", type=parse_backend_list, default=("c", "gl"),
                   help="comma-separated backends to measure (default: c,gl)")
    b.add_argument("--only", choices=("recording",), default=None,
                   help="measure only one group of figures: recording = set_many recorded to a "
                   "trace against the same run unrecorded (each backend)")
    b.add_argument("--shape", type=parse_shape, default=(1024, 1024),
                   help="the viewer's buffer for the viewer figures (default: 1024x1024; the "
                   "viewer is also measured at 4096x4096); needs a display (xvfb-run -a)")

    s = sub.add_parser("screenshot", help="render the application headless to a PNG",
                       description="Run a scenario in the application window for a moment and save "
                       "the window as PNG (starts a private Xvfb when there is no display).")
    s.add_argument("--backend", choices=backends, default="c", help="manager backend (default: c)")
    s.add_argument("--scenario", required=True, type=parse_scenario,
                   help="built-in scenario to run (waves, racing, sparse, stress)")
    s.add_argument("--shape", type=parse_shape, default=None, help="buffer shape, e.g. 512x512")
    s.add_argument("--out", required=True, type=output_path, metavar="SHOT.png", help="PNG file to write")

    e = sub.add_parser("export-perfetto", help="convert a trace to Chrome/Perfetto trace-event JSON",
                       description="Write a trace as Chrome trace-event JSON for ui.perfetto.dev or "
                       "chrome://tracing: a track per producer, one for the worker, one for syncs, "
                       "and flow arrows enqueue -> apply -> visible (docs/cli.md).")
    e.add_argument("trace", metavar="TRACE", help="trace file (JSON Lines, docs/trace-format.md)")
    e.add_argument("--out", required=True, type=output_path, metavar="TRACE.json", help="JSON file to write")

    o = sub.add_parser("open", help="open the application on a recorded trace (scrubber, play, lockstep)",
                       description="Open a trace (JSON Lines, docs/trace-format.md) in the trace "
                       "player: it is read as a stream with a progress bar, then any epoch or seq "
                       "can be shown (keyframes + replay), played, exported or run in lockstep.")
    o.add_argument("trace", metavar="TRACE", type=trace_path,
                   help="trace file (JSON Lines, docs/trace-format.md)")

    # attach has its own parser (app.attach.main); listed here for --help
    sub.add_parser("attach", add_help=False,
                   help="the app on a running program's published manager "
                   "(BUFFERSCOPE_LISTEN=PATH|PORT): bufferscope attach PATH|PORT [--print]")
    return p


def trace_path(text: str) -> str:
    """A trace whose header can be read (the rest is read, and checked, by the app)."""
    from .trace import TraceError, open_trace

    try:
        open_trace(text).close()
    except TraceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _err(msg: str) -> None:
    print(f"bufferscope: error: {msg}", file=sys.stderr)


def _write_failed(path: str, exc: OSError) -> int:
    """One line for a failed output file; 2 for a path that was refused, 1 otherwise."""
    from .atomic import OutputPathError

    text = str(exc.strerror or exc)
    _err(text if path in text else f"cannot write {path}: {text}")
    return EXIT_USAGE if isinstance(exc, OutputPathError) else EXIT_FAIL


def cmd_replay(args) -> int:
    from .atomic import save_npy
    from .backends import open_manager, why_not
    from .errors import BackendError, BackendUnavailableError
    from .trace import TraceError, TraceReader, replay

    try:
        # Two buffers in the manager and the copy of the front that is written out.
        reader = TraceReader(args.trace, buffers=3)
    except TraceError as exc:
        _err(str(exc))
        return EXIT_USAGE
    with reader:
        reason = why_not(args.backend)
        if reason:
            _err(f"backend {args.backend!r} cannot run here: {reason}")
            return EXIT_FAIL
        show = sys.stderr.isatty()

        def progress(_done: int) -> None:
            if show and reader.size:
                pct = 100 * reader.bytes_read // reader.size
                print(f"\rreplaying {args.trace}: {pct}%", end="", file=sys.stderr, flush=True)

        try:
            m = open_manager(args.backend, reader.shape, fill=reader.fill)
        except ValueError as exc:  # e.g. a shape beyond the GL implementation's limits
            _err(f"{args.trace} line 1: the trace's buffer cannot be opened on {args.backend}: {exc}")
            return EXIT_USAGE
        except (MemoryError, BackendUnavailableError) as exc:
            _err(f"cannot open the {args.backend} manager: {exc}")
            return EXIT_FAIL
        try:
            with m:
                n = replay(reader, m, timeout=args.timeout, progress=progress)
                front = m.front().copy()
        except TraceError as exc:
            if show:
                print(file=sys.stderr)
            _err(str(exc))
            return EXIT_USAGE
        except (BackendError, TimeoutError) as exc:
            _err(f"replay failed: {exc}")
            return EXIT_FAIL
    if show:
        print(file=sys.stderr)
    try:
        save_npy(args.out, front)
    except OSError as exc:
        return _write_failed(args.out, exc)
    print(f"replayed {n} updates on {args.backend}; front {front.shape} written to {args.out}")
    return EXIT_OK


def cmd_export_perfetto(args) -> int:
    from .perfetto import write_perfetto
    from .trace import TraceError

    try:
        n = write_perfetto(args.trace, args.out)
    except TraceError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        return _write_failed(args.out, exc)
    print(f"wrote {n} trace events to {args.out} (open it in https://ui.perfetto.dev)")
    return EXIT_OK


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    args.backends = ",".join(args.backends)
    try:
        return bench_main(args)
    except OSError as exc:
        if args.json_out and args.json_out != "-":
            return _write_failed(args.json_out, exc)
        raise


def cmd_screenshot(args, argv: list[str] | None) -> int:
    from .atomic import OutputPathError

    if _needs_virtual_display():
        return _rerun_under_xvfb(argv)
    try:
        _ui().screenshot(args.backend, args.scenario, args.out, shape=args.shape)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except OutputPathError as exc:
        return _write_failed(args.out, exc)
    except Exception as exc:  # a backend or GL failure: one line, not a traceback
        _err(f"screenshot failed: {type(exc).__name__}: {exc}")
        return EXIT_FAIL
    print(f"wrote {os.path.abspath(args.out)}")
    return EXIT_OK


def cmd_gui(args) -> int:
    try:
        return _ui().gui(args.backend, args.shape, args.scenario)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_USAGE


def cmd_open(args) -> int:
    # Loaded by name, as for gui: app/ never imports ui/.
    return importlib.import_module("ui.trace_player").run_open(args.trace)


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


def _with_default_command(argv: list[str]) -> list[str]:
    """``bufferscope --backend gl`` means ``bufferscope gui --backend gl``."""
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        return ["gui", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = _with_default_command(sys.argv[1:] if argv is None else list(argv))
    if argv[:1] == ["attach"]:
        from .attach import main as attach_main

        return attach_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command is None:
        args = build_parser().parse_args(["gui"])
    commands = {
        "replay": cmd_replay,
        "bench": cmd_bench,
        "export-perfetto": cmd_export_perfetto,
        "screenshot": lambda a: cmd_screenshot(a, argv),
        "gui": cmd_gui,
        "open": cmd_open,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        _err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
