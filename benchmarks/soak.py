"""Soak: drive the real app for a long time and check it neither leaks nor hangs (issue 12).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/soak.py --seconds 600
    make soak          # the same, 10 minutes

Opens the real ``MainWindow`` (real C and GL managers, the view drawing live) and
cycles through what a user does, with the Qt event loop running throughout: every
built-in scenario on its own shape; pause, step, resume, synchronize; a backend
switch C <-> GL with a paused backlog (which must be drained, not dropped) and one
with the scenario running; exports as .npy and PNG to a temporary folder; zoom in,
zoom out and fit through the View menu's shortcuts; 1-D, 2-D and 3-D shapes (the
z-slider moved on the 3-D one). Each cycle ends in the same state (C backend, the
"waves" scenario running) so that the samples compare like with like.

Measured after a warm-up cycle and again at the end, in that same state: the
resident set (``/proc/self/statm``), ``threading.active_count()`` and
``len(threading.enumerate())``; the peak RSS over every step. Every wait is bounded
(``--step-timeout``); a watchdog thread checks that the event loop keeps turning
and, when it has not for ``--stall`` seconds, dumps every thread's stack
(faulthandler) and exits with status 3.

Prints a summary, then one final JSON line (what ``tests/test_soak.py`` reads).
Exit status: 0 when RSS grew by at most ``--rss-bound`` MiB, the thread counts did
not grow, no wait ran past its bound, no step failed and no error reached the
message log (a synchronize timeout — the worker behind the auto-sync on a loaded
machine — is counted and shown, not failed); 1 otherwise; 3 from the watchdog.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
# Message-log lines that report a failure (every error the session reports says one of these).
ERROR_MARKS = ("Error", "error", "failed", "cannot", "timed out", "did not stop", "unavailable")


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / MIB


def settled_rss_mib() -> float:
    """RSS after a full collection and glibc's ``malloc_trim``: what is still held, not
    the allocator's high-water mark of freed 64 MiB buffers (which swung the samples
    by 30-90 MiB from cycle to cycle without any trend)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_mib()


class StepTimeout(Exception):
    """A step's wait ran past its bound: the app (or the soak) is stuck."""


class Watchdog(threading.Thread):
    """Exits the process (status 3, stacks dumped) when the GUI thread's heartbeat
    stops for longer than ``stall`` seconds."""

    def __init__(self, stall: float, summary) -> None:
        super().__init__(name="soak-watchdog", daemon=True)
        self.stall = stall
        self.summary = summary
        self.beat = time.monotonic()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            quiet = time.monotonic() - self.beat
            if quiet > self.stall:
                print(f"\nsoak: the event loop has not turned for {quiet:.1f} s: deadlock? "
                      "stacks of every thread follow", file=sys.stderr, flush=True)
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                out = self.summary()
                out.update(deadlock=True, ok=False, stall_s=round(quiet, 1))
                print(json.dumps(out), flush=True)
                os._exit(3)


class Soak:
    def __init__(self, args) -> None:
        from PyQt6.QtCore import QTimer

        from ui.launch import _application
        from ui.main_window import MainWindow

        self.args = args
        self.qapp = _application()
        self.t0 = time.monotonic()
        self.cycles = 0
        self.steps = 0
        self.failures: list[str] = []
        self.samples: dict[str, object] = {}
        self.rss_peak = rss_mib()
        self.dir = tempfile.TemporaryDirectory(prefix="bufferscope-soak-")
        self.watchdog = Watchdog(args.stall, self.summary)
        self.heart = QTimer()
        self.heart.timeout.connect(self._beat)
        self.heart.start(100)
        self.w = MainWindow(backend="c", scenario="waves", autosync_hz=60.0)
        self.w.resize(1200, 800)
        self.w.show()
        self.s = self.w.session
        self.watchdog.start()

    def _beat(self) -> None:
        self.watchdog.beat = time.monotonic()

    # -- waiting, with the event loop turning ----------------------------------------------
    def pump(self, seconds: float) -> None:
        from PyQt6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        QTimer.singleShot(max(1, int(seconds * 1000)), loop.quit)
        loop.exec()

    def wait_until(self, pred, what: str, timeout: float | None = None) -> None:
        timeout = self.args.step_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise StepTimeout(f"{what}: not done within {timeout:g} s")
            self.pump(0.01)

    def step(self, what: str, fn, *a) -> None:
        """One user action and its waits; its failure is recorded, the soak goes on
        (a StepTimeout ends it: something is stuck)."""
        self.steps += 1
        try:
            fn(*a)
        except StepTimeout:
            raise
        except Exception as exc:
            self.failures.append(f"{what}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        self.rss_peak = max(self.rss_peak, rss_mib())

    # -- user actions -------------------------------------------------------------------------
    def key(self, seq: str) -> None:
        """A shortcut typed on the window (the action itself when the window is not active)."""
        from PyQt6.QtGui import QKeySequence
        from PyQt6.QtTest import QTest

        if self.w.isActiveWindow():
            QTest.keySequence(self.w, QKeySequence(seq))
        else:
            for act in self.w.findChildren(type(self.w.quit_action)):
                if any(k.toString() == QKeySequence(seq).toString() for k in act.shortcuts()):
                    act.trigger()
                    break
        self.pump(0.02)

    def click(self, button) -> None:
        from PyQt6.QtCore import Qt
        from PyQt6.QtTest import QTest

        QTest.mouseClick(button, Qt.MouseButton.LeftButton)
        self.pump(0.01)

    def sync(self) -> None:
        done: dict[str, str] = {}

        def finished(req: int, epoch: int, error: str) -> None:
            if req >= want:
                done["error"] = error

        self.s.sigSyncFinished.connect(finished)
        try:
            want = self.s.synchronize(5.0)
            if want is None:
                raise RuntimeError("synchronize: no manager")
            self.wait_until(lambda: "error" in done, "synchronize")
        finally:
            self.s.sigSyncFinished.disconnect(finished)
        if done["error"]:
            raise RuntimeError(done["error"])

    def run_scenario(self, name: str) -> None:
        if not self.s.start_scenario(name, own_shape=True):
            raise RuntimeError(f"scenario {name} did not start: {self.s.last_error}")
        e0 = self.s.epoch
        self.wait_until(lambda: self.s.epoch >= e0 + 3, f"scenario {name} shows 3 epochs")
        self.pump(self.args.dwell)

    def zoom(self) -> None:
        for seq in ("Ctrl+=", "Ctrl+=", "Ctrl+-", "Ctrl+0"):
            self.key(seq)
        self.w.view.zoom_by(1.25)
        self.w.view.fit()

    def pause_step_resume(self) -> None:
        p = self.w.panel
        self.click(p.pause_button)
        if not self.s.paused:
            raise RuntimeError("Pause did not pause")
        for _ in range(3):
            self.s.step(5)
            self.pump(0.02)
        self.click(p.pause_button)
        if self.s.paused:
            raise RuntimeError("Resume did not resume")
        self.sync()

    def export(self) -> None:
        for kind in ("npy", "png"):
            path = os.path.join(self.dir.name, f"front.{kind}")
            tid = self.w.start_export(kind, path)
            if tid is None:
                raise RuntimeError(f"export {kind} did not start")
            self.wait_until(lambda t=tid: not self.s.busy, f"export {kind}")
            if not os.path.exists(path):
                raise RuntimeError(f"export {kind}: {path} missing ({self.w.statusbar.currentMessage()})")

    def switch(self, backend: str, backlog: bool) -> None:
        """Toggle to ``backend`` from the control panel; with ``backlog``, paused with
        updates queued: the switch must apply them (the message says how many)."""
        from app import Fill

        if self.s.backend == backend:
            return
        if backlog:
            self.click(self.w.panel.pause_button)
            shape = self.s.shape
            if self.s.enqueue(Fill(tuple((0, max(1, n // 2)) for n in shape), 7.0)) is None \
                    and "queue full" not in self.s.last_error:
                # (a full queue is a backlog too: the paused scenario filled it)
                raise RuntimeError(f"enqueue before the switch: {self.s.last_error}")
        n0 = len(self.w.statusbar.history)
        self.click(self.w.panel.backend_buttons[backend])
        self.wait_until(lambda: not self.s.busy and self.s.backend == backend,
                        f"switch to {backend}")
        said = " | ".join(t for _, t in self.w.statusbar.history[n0:])
        if backlog:
            if "applied" not in said or "queued update" not in said:
                raise RuntimeError(f"switch to {backend} did not drain its backlog: {said}")
            self.click(self.w.panel.pause_button)
        self.sync()

    def shape(self, text: str) -> None:
        p = self.w.panel
        self.s.stop_scenario()
        p.shape_edit.setText(text)
        if not p.apply_shape():
            raise RuntimeError(f"shape {text}: {self.w.statusbar.currentMessage()}")
        from app import Add, Fill

        shp = self.s.shape
        self.s.enqueue(Fill(tuple((0, n) for n in shp), 1.0))
        self.s.enqueue(Add(tuple((0, max(1, n // 3)) for n in shp), 2.0))
        self.sync()
        if len(shp) == 3:
            self.w.z_slider.setValue(shp[0] - 1)
            self.pump(0.05)
            self.w.z_slider.setValue(0)

    # -- the cycle ------------------------------------------------------------------------------
    def cycle(self) -> None:
        from app.scenarios import SCENARIOS

        gl = "gl" if self.w.panel.backend_buttons["gl"].isEnabled() else None
        for name in SCENARIOS:
            self.step(f"scenario {name}", self.run_scenario, name)
            self.step("zoom", self.zoom)
            self.step("pause/step/resume", self.pause_step_resume)
            if gl:
                self.step("switch to gl, paused with a backlog", self.switch, "gl", True)
                self.step("export on gl", self.export)
                self.step("switch to c, scenario running", self.switch, "c", False)
            self.step("export on c", self.export)
        for text in ("4096", "300x200", "8x64x64"):
            self.step(f"shape {text}", self.shape, text)
            if gl:
                self.step(f"shape {text}: switch to gl", self.switch, "gl", True)
                self.step(f"shape {text}: export", self.export)
                self.step(f"shape {text}: switch to c", self.switch, "c", False)
            self.step("zoom", self.zoom)
        # The canonical state every cycle ends in.
        self.step("scenario waves", self.run_scenario, "waves")
        self.step("settle", self.sync)
        self.cycles += 1

    def sample(self, when: str) -> None:
        self.pump(0.5)      # let finished threads be joined, queued results land
        self.samples[f"rss_{when}_mib"] = round(settled_rss_mib(), 1)
        self.samples[f"threads_{when}"] = threading.active_count()
        self.samples[f"enumerate_{when}"] = len(threading.enumerate())
        self.samples[f"thread_names_{when}"] = sorted(t.name for t in threading.enumerate())

    def errors(self) -> tuple[list[str], list[str]]:
        """The message log's errors, and apart from them the synchronize timeouts
        (a worker that could not keep up with the auto-sync on a loaded machine:
        reported, not failed)."""
        bad = [t for _, t in self.w.statusbar.history if any(m in t for m in ERROR_MARKS)]
        slow = [t for t in bad if t.startswith("synchronize:") and "timed out" in t]
        return [t for t in bad if t not in slow], slow

    def summary(self) -> dict:
        out = {"seconds": round(time.monotonic() - self.t0, 1), "cycles": self.cycles,
               "steps": self.steps, "rss_peak_mib": round(self.rss_peak, 1),
               "rss_bound_mib": self.args.rss_bound, "deadlock": False}
        out.update(self.samples)
        if "rss_end_mib" in out and "rss_start_mib" in out:
            out["rss_growth_mib"] = round(out["rss_end_mib"] - out["rss_start_mib"], 1)
        out["failures"] = list(self.failures)
        try:
            out["errors"], slow = self.errors()
            out["sync_timeouts"] = len(slow)
            out["sync_timeout_examples"] = slow[:3]
        except Exception as exc:     # the watchdog may call this mid-step
            out["errors"] = [f"(message log unreadable: {exc})"]
        return out

    def run(self) -> dict:
        self.wait_until(lambda: self.w.view.front() is not None or self.w.view.using_shared_texture,
                        "first front")
        self.w.activateWindow()
        self.cycle()                          # warm-up: every code path once
        self.sample("start")
        deadline = self.t0 + self.args.seconds
        per_cycle = self.samples.setdefault("rss_per_cycle_mib", [])
        while True:
            self.cycle()
            per_cycle.append(round(settled_rss_mib(), 1))   # a trend tells a leak from noise
            print(f"soak: cycle {self.cycles}: RSS {per_cycle[-1]} MiB", file=sys.stderr, flush=True)
            if time.monotonic() >= deadline:
                break
        self.sample("end")
        out = self.summary()
        grew = out["rss_growth_mib"] > self.args.rss_bound
        threads_grew = (out["threads_end"] > out["threads_start"]
                        or out["enumerate_end"] > out["enumerate_start"])
        out["ok"] = not (grew or threads_grew or self.failures or out["errors"])
        return out

    def close(self) -> None:
        self.w.close()
        self.pump(0.1)
        self.heart.stop()
        self.watchdog.stopped.set()
        self.dir.cleanup()


def report(out: dict) -> None:
    print(f"soak: {out['seconds']} s, {out['cycles']} cycles (+1 warm-up), {out['steps']} steps")
    if "rss_start_mib" in out:
        print(f"  RSS   start {out['rss_start_mib']} MiB, end {out.get('rss_end_mib')} MiB, "
              f"peak {out['rss_peak_mib']} MiB (growth {out.get('rss_growth_mib')} MiB, "
              f"bound {out['rss_bound_mib']} MiB)")
        print(f"  threads  start {out['threads_start']} (enumerate {out['enumerate_start']}), "
              f"end {out.get('threads_end')} (enumerate {out.get('enumerate_end')})")
    print(f"  deadlock: {'yes' if out['deadlock'] else 'no'}; "
          f"failed steps: {len(out['failures'])}; errors in the message log: {len(out['errors'])}; "
          f"synchronize timeouts (slow, not failed): {out.get('sync_timeouts', 0)}")
    for line in (out["failures"] + out["errors"] + out.get("sync_timeout_examples", []))[:20]:
        print(f"    {line}")
    print(f"  {'OK' if out.get('ok') else 'FAILED'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long to cycle (default 600)")
    p.add_argument("--rss-bound", type=float, default=64.0,
                   help="largest RSS growth after the warm-up cycle, MiB (default 64)")
    p.add_argument("--stall", type=float, default=20.0,
                   help="watchdog: the event loop still for this long is a deadlock (s)")
    p.add_argument("--step-timeout", type=float, default=30.0, help="bound on every wait (s)")
    p.add_argument("--dwell", type=float, default=0.5, help="time each scenario runs (s)")
    args = p.parse_args(argv)
    faulthandler.enable()
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("QT_QPA_PLATFORM")):
        print("soak: no display; run it under xvfb-run (make soak does)", file=sys.stderr)
        return 2
    soak = Soak(args)
    try:
        out = soak.run()
    except StepTimeout as exc:
        print(f"soak: {exc}; stacks of every thread follow", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        out = soak.summary()
        out.update(deadlock=True, ok=False, timeout=str(exc))
    finally:
        try:
            soak.close()
        except Exception:
            traceback.print_exc()
    report(out)
    print(json.dumps(out), flush=True)
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
