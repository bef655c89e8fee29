"""``Session``: the app's live state — one manager, its scenario, the auto-sync clock.

Widgets never call a manager directly: they ask the session, which guards every
call, turns a failure into ``sigMessage`` (shown in the status bar) and keeps the
app usable. The session owns

* the manager, reopened for a backend switch
  (contents kept) or a new shape;
* the running scenario's producer threads, stopped and joined around any reopen and
  on ``close()``;
* the auto-sync ``QTimer``: at each tick it asks for a synchronize (unless paused
  or one is still running) or polls the epoch;
* a ``SyncWorker`` thread: the GUI thread never waits on the manager. Every
  synchronize runs there (``synchronize()`` returns at once with a request id),
  and so does the read-back of the front when ``front_wanted()`` says one is due
  (the GL backend's read-back waits on its worker). Results come back through a
  queued signal; the next job starts only after the GUI thread has handled the
  previous one, so the front it reads cannot be swapped under it.
  ``sigFrontChanged`` fires when a new epoch is visible, whoever swapped it.

Signals
-------
sigManagerChanged()          a manager was opened (new backend or shape)
sigFrontChanged(int, object) a new epoch is visible: the epoch, and its front when it
                             was read back (None: draw it without one, texture mode)
sigSyncFinished(int, int, str) a synchronize request ended: its id, the epoch, the
                             error ("" when it swapped)
sigMessage(str)              something the user should read (errors included)
sigScenarioChanged(str)      the running scenario's name, "" when none
sigPausedChanged(bool)
sigAutoSyncChanged(bool, float)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal

from app import BACKENDS, Write, open_manager
from app import why_not as _why_not
from app.manager import BufferManager, ManagerStats
from app.scenarios import SCENARIOS, ScenarioRun, get_scenario
from app.updates import Update

from .sync_worker import Job, JobResult, SyncWorker

MAX_PENDING = 1 << 16
SYNC_TIMEOUT_S = 1.0
SWITCH_TIMEOUT_S = 10.0


def backend_problem(name: str) -> str | None:
    """Why backend ``name`` cannot run here (None when it can). Never raises."""
    if name not in BACKENDS:
        return f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}"
    try:
        return _why_not(name)
    except Exception as exc:  # a half-written backend module must not take the app down
        return f"backend {name!r} is not usable: {type(exc).__name__}: {exc}"


class Session(QObject):
    sigManagerChanged = pyqtSignal()
    sigFrontChanged = pyqtSignal(int, object)
    sigSyncFinished = pyqtSignal(int, int, str)
    _sigJobDone = pyqtSignal(object)       # from the worker thread, queued
    sigMessage = pyqtSignal(str)
    sigScenarioChanged = pyqtSignal(str)
    sigPausedChanged = pyqtSignal(bool)
    sigAutoSyncChanged = pyqtSignal(bool, float)

    def __init__(self, parent: QObject | None = None, share_context: object = None) -> None:
        super().__init__(parent)
        self.share_context = share_context   # QOpenGLContext handed to the GL backend
        self.backend = ""
        self.shape: tuple[int, ...] = ()
        self.manager: BufferManager | None = None
        self.run: ScenarioRun | None = None
        self.scenario_name = ""
        self.scenario_rate: float | None = None
        self.paused = False
        self.epoch = 0
        self.last_stats: ManagerStats | None = None
        self.last_error = ""
        self.front_wanted: Callable[[], bool] = lambda: True
        self._generation = 0            # bumped per manager: older results are stale
        self._job_ids = 0
        self._inflight: Job | None = None
        self._pending: dict | None = None   # the next job, coalesced
        self._sigJobDone.connect(self._on_job_done, Qt.ConnectionType.QueuedConnection)
        self._worker = SyncWorker(self._sigJobDone.emit)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self.autosync = True
        self.autosync_hz = 60.0
        self._timer.start(self._interval_ms())

    # -- messages --------------------------------------------------------------------
    def _report(self, what: str, exc: BaseException) -> None:
        text = f"{what}: {type(exc).__name__}: {exc}"
        self.last_error = text
        self.sigMessage.emit(text)

    def say(self, text: str) -> None:
        self.sigMessage.emit(text)

    # -- opening managers --------------------------------------------------------------
    def _open_raw(self, backend: str, shape: tuple[int, ...]) -> BufferManager:
        problem = backend_problem(backend)
        if problem:
            raise RuntimeError(problem)
        options: dict[str, object] = {}
        if backend == "gl" and self.share_context is not None:
            options["share_context"] = self.share_context
        try:
            return open_manager(backend, shape, max_pending=MAX_PENDING, **options)
        except TypeError:
            if not options:
                raise
            return open_manager(backend, shape, max_pending=MAX_PENDING)  # no sharing offered

    @contextlib.contextmanager
    def _scenario_suspended(self):
        """Stop the running scenario for the duration; restart it on whatever
        manager is current afterwards (the new one, or the old one on failure)."""
        scenario, rate = self.scenario_name, self.scenario_rate
        self.stop_scenario()
        try:
            yield
        finally:
            if scenario and self.manager is not None:
                self.start_scenario(scenario, rate)

    def open(self, backend: str, shape: tuple[int, ...]) -> bool:
        """Replace the manager by a new, empty one (the scenario restarts on it)."""
        with self._scenario_suspended():
            try:
                new = self._open_raw(backend, tuple(shape))
            except Exception as exc:
                self._report(f"cannot open the {backend} backend with shape {tuple(shape)}", exc)
                return False
            self._replace(new, backend)
            return True

    def switch_backend(self, backend: str) -> bool:
        """Move to ``backend`` keeping the visible contents (SPEC §7)."""
        if self.manager is None:
            return self.open(backend, self.shape)
        if backend == self.backend:
            return True
        self._settle()   # no swap while the contents are copied
        with self._scenario_suspended():
            try:
                contents = np.array(self.manager.front(), copy=True)
                new = self._open_raw(backend, self.shape)
            except Exception as exc:
                self._report(f"cannot switch to the {backend} backend", exc)
                return False
            try:
                new.enqueue(Write(tuple((0, n) for n in self.shape), contents))
                new.synchronize(SWITCH_TIMEOUT_S)
            except Exception as exc:
                new.close()
                self._report(f"cannot copy the buffer into the {backend} backend", exc)
                return False
            self._replace(new, backend)
            return True

    def _settle(self) -> None:
        """Let a running job end (at most its sync timeout) and forget its result:
        the manager is about to be replaced or closed."""
        if self._inflight is not None:
            self._worker.wait_idle(SWITCH_TIMEOUT_S)
        self._inflight, self._pending = None, None
        self._generation += 1

    def _replace(self, new: BufferManager, backend: str) -> None:
        self._settle()
        old = self.manager
        self.manager = new
        self.backend = backend
        self.shape = tuple(new.shape)
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                self._report("closing the previous manager", exc)
        if self.paused:
            self._call("pause", lambda m: m.pause())
        self.last_stats = None
        self.epoch = self._call("stats", lambda m: m.stats().epoch) or 0
        self.sigManagerChanged.emit()
        self._request(sync=False, read=True)

    def _call(self, what: str, fn):
        """``fn(manager)`` with every failure reported, never raised."""
        if self.manager is None:
            self.sigMessage.emit(f"{what}: no buffer manager is open")
            return None
        try:
            return fn(self.manager)
        except Exception as exc:
            self._report(what, exc)
            return None

    # -- the buffer ----------------------------------------------------------------------
    def front(self) -> np.ndarray | None:
        """The front, read here and now: for explicit actions (export) only — the
        live view gets its fronts from ``sigFrontChanged``, read on the worker."""
        if self.manager is None:
            return None
        try:
            return self.manager.front()
        except Exception as exc:
            self._report("reading the front buffer", exc)
            return None

    def enqueue(self, update: Update) -> int | None:
        return self._call(f"enqueue {type(update).__name__}", lambda m: m.enqueue(update, block=False))

    @property
    def syncing(self) -> bool:
        """A synchronize (or a read-back) runs on the worker thread now."""
        return self._inflight is not None

    def synchronize(self, timeout: float | None = None) -> int | None:
        """Ask for a synchronize; returns at once with its request id (None: no
        manager). ``sigSyncFinished(id, epoch, error)`` says how it ended; a timeout
        leaves the sync queued in the manager and is reported."""
        if self.manager is None:
            return None
        return self._request(sync=True, timeout=SYNC_TIMEOUT_S if timeout is None else timeout)

    def refresh_front(self) -> None:
        """Read the front back (on the worker thread) and emit ``sigFrontChanged``."""
        if self.manager is not None:
            self._request(sync=False, read=True)

    def _request(self, sync: bool, timeout: float = 0.0, read: bool = False) -> int:
        self._job_ids += 1
        p = self._pending or {"sync": False, "timeout": timeout, "read": False}
        p["sync"] |= sync
        p["read"] |= read
        p["timeout"] = max(p["timeout"], timeout)
        p["id"] = self._job_ids
        self._pending = p
        if self._inflight is None:
            self._start_pending()
        return self._job_ids

    def _start_pending(self) -> None:
        p, self._pending = self._pending, None
        if p is None or self.manager is None:
            return
        read = p["read"] or self.front_wanted()
        job = Job(p["id"], self.manager, self._generation, p["sync"], p["timeout"], read)
        self._inflight = job
        self._worker.submit(job)

    def _on_job_done(self, res: JobResult) -> None:
        job = res.job
        if job is not self._inflight:
            return              # from before a reopen: dropped
        try:
            if job.generation == self._generation:
                self._handle(res)
        finally:
            self._inflight = None
            self._start_pending()

    def _handle(self, res: JobResult) -> None:
        job, exc = res.job, res.error
        error = ""
        if isinstance(exc, TimeoutError):
            hint = " (paused: Step or Resume, then Synchronize)" if self.paused else ""
            error = f"synchronize: {exc}{hint}"
            self.sigMessage.emit(error)
        elif exc is not None:
            error = f"{'synchronize' if job.sync else 'reading the front'}: {type(exc).__name__}: {exc}"
            self.last_error = error
            self.sigMessage.emit(error)
        if res.stats is not None:
            self.last_stats = res.stats
        epoch = self.epoch if res.epoch is None else int(res.epoch)
        # A front read with an unchanged epoch is news only when it was asked for
        # (a refresh); an auto-sync that swapped nothing new costs no diff.
        if epoch != self.epoch or (res.front is not None and not job.sync):
            self.epoch = epoch
            self.sigFrontChanged.emit(epoch, res.front)
        if job.sync:
            self.sigSyncFinished.emit(job.job_id, self.epoch, error)

    def poll(self) -> None:
        """Read the stats (never waits); a new epoch is read back on the worker."""
        if self.manager is None:
            return
        try:
            st = self.manager.stats()
        except Exception as exc:
            self._report("stats", exc)
            return
        self.last_stats = st
        if st.epoch != self.epoch and self._inflight is None:
            self.refresh_front()

    def _tick(self) -> None:
        if self.manager is None:
            return
        if self.autosync and not self.paused and self._inflight is None:
            self.synchronize()
        elif self._inflight is None:
            self.poll()

    # -- auto-sync -------------------------------------------------------------------------
    def _interval_ms(self) -> int:
        # Rounded down: at least the asked rate (60 Hz -> 16 ms, not 17 ms = 58.8 Hz).
        return max(1, int(1000.0 / self.autosync_hz))

    def set_autosync(self, on: bool, hz: float | None = None) -> None:
        """Auto-sync on/off and its rate (Hz). When off the timer still polls the epoch."""
        self.autosync = bool(on)
        if hz is not None:
            self.autosync_hz = float(min(max(hz, 0.5), 1000.0))
        self._timer.setInterval(self._interval_ms() if self.autosync else 50)
        self.sigAutoSyncChanged.emit(self.autosync, self.autosync_hz)

    # -- pause / step ------------------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        if self.manager is not None:
            try:
                self.manager.pause() if paused else self.manager.resume()
            except Exception as exc:
                self._report("pause" if paused else "resume", exc)
                return
        self.paused = bool(paused)
        self.sigPausedChanged.emit(self.paused)

    def step(self, n: int = 1) -> None:
        """While paused: the worker applies exactly ``n`` more element updates."""
        if not self.paused:
            self.sigMessage.emit("step: pause first (Step applies one update of a paused queue)")
            return
        self._call("step", lambda m: m.step(n))

    # -- scenarios -----------------------------------------------------------------------------
    def start_scenario(self, name: str, rate: float | None = None,
                       own_shape: bool = False) -> bool:
        """Start scenario ``name``; with ``own_shape`` on a new buffer of the
        scenario's shape when the current one differs (what its description says)."""
        try:
            scenario = get_scenario(name)
        except ValueError as exc:
            self._report("scenario", exc)
            return False
        self.stop_scenario()
        if own_shape and self.manager is not None and tuple(scenario.shape) != self.shape:
            if not self.open(self.backend or "c", tuple(scenario.shape)):
                return False
        if self.manager is None:
            self.sigMessage.emit("scenario: no buffer manager is open")
            return False
        try:
            self.run = scenario.start(self.manager, rate=rate)
        except Exception as exc:
            self._report(f"starting scenario {name!r}", exc)
            return False
        self.scenario_name, self.scenario_rate = name, rate
        self.sigScenarioChanged.emit(name)
        return True

    def stop_scenario(self, timeout: float = 5.0) -> bool:
        run, self.run = self.run, None
        self.scenario_name = ""
        if run is None:
            return True
        ok = run.stop(timeout)
        if not ok:
            self.sigMessage.emit(f"scenario {run.scenario.name!r}: producers did not stop in {timeout} s")
        for exc in run.errors:
            self._report(f"scenario {run.scenario.name!r} producer failed", exc)
        self.sigScenarioChanged.emit("")
        return ok

    # -- teardown --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the clock and the producers, close the manager. Idempotent."""
        self._timer.stop()
        self.stop_scenario()
        self._settle()
        self._worker.close()
        m, self.manager = self.manager, None
        if m is not None:
            try:
                m.close()
            except Exception as exc:
                self._report("closing the manager", exc)


SCENARIO_NAMES = tuple(SCENARIOS)
