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
  Long operations (an export, a backend switch) run there too, as tasks
  (``run_task``): ``sigBusyChanged`` names the one running, ``cancel_tasks()``
  (Esc, the status bar's Cancel) asks them to give up.

Epoch and sequence numbers are *session-wide*: they continue across every new
manager (a backend switch, a new shape) instead of restarting at each. The
numbers a manager reports map to the session's by two public offsets, set before
``sigManagerChanged`` is emitted for that manager and unchanged until the next::

    session_seq   = manager_seq   + session.seq_offset
    session_epoch = manager_epoch + session.epoch_offset

``epoch`` (and every epoch the session emits) and the seq ``enqueue`` returns
are session numbers; ``last_stats`` and ``manager.events()`` are the manager's own.

A backend switch drains, then copies: updates still queued (paused or not) are
first applied and made visible on the old manager (it is resumed for the drain
and paused again after), then its front is written into the new manager and
synchronized — all on the worker thread, cancellable; the old manager stays in
use until the new one holds the copy, so a failed or cancelled switch loses
nothing. The message says what was drained and where the epoch continues.

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
sigBusyChanged(str)          the long operation now running on the worker ("" when none)
sigTaskFinished(int, str)    a task ended: its id and its error ("" when it succeeded)
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal

from app import BACKENDS, Write, open_manager
from app import why_not as _why_not
from app.manager import BufferManager, ManagerStats
from app.scenarios import SCENARIOS, ScenarioRun, get_scenario
from app.updates import Update

from .sync_worker import Cancelled, Job, JobResult, SyncWorker, synchronize_until

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


@dataclass
class _Switch:
    """A backend switch under way: the new manager waits for the copy."""

    backend: str
    new: BufferManager
    scenario: str
    rate: float | None
    task_id: int


def drain_and_copy(old: BufferManager, new: BufferManager, paused: bool,
                   cancel: threading.Event, timeout: float,
                   progress: Callable[[str], None] = lambda text: None) -> dict:
    """On the worker thread: make every update queued on ``old`` visible (resuming
    a paused worker for the drain, pausing it again after), then write ``old``'s
    front into ``new`` and synchronize it. Each wait is bounded by ``timeout`` and
    ends early when ``cancel`` is set. ``old`` keeps everything whatever happens."""
    st0 = old.stats()
    backlog = st0.last_seq - st0.visible_seq
    if backlog > 0:
        progress(f"applying {backlog} queued update{'s' * (backlog != 1)} before the switch")
        if paused:
            old.resume()
        try:
            synchronize_until(old, cancel, timeout)
        finally:
            if paused:
                old.pause()
    st1 = old.stats()
    contents = np.array(old.front(), copy=True)
    if cancel.is_set():
        raise Cancelled("cancelled before the copy")
    progress("copying the buffer into the new backend")
    write_seq = new.enqueue(Write(tuple((0, n) for n in contents.shape), contents))
    synchronize_until(new, cancel, timeout)
    return {"drained": st1.visible_seq - st0.visible_seq, "old": st1,
            "new": new.stats(), "write_seq": int(write_seq)}


class Session(QObject):
    sigManagerChanged = pyqtSignal()
    sigFrontChanged = pyqtSignal(int, object)
    sigSyncFinished = pyqtSignal(int, int, str)
    _sigJobDone = pyqtSignal(object)       # from the worker thread, queued
    sigMessage = pyqtSignal(str)
    sigScenarioChanged = pyqtSignal(str)
    sigPausedChanged = pyqtSignal(bool)
    sigAutoSyncChanged = pyqtSignal(bool, float)
    sigBusyChanged = pyqtSignal(str)
    sigTaskFinished = pyqtSignal(int, str)
    _sigProgress = pyqtSignal(int, str)    # from the worker thread, queued

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
        self.history_continues = False  # the last manager change was a backend switch
        self.epoch_offset = 0           # session_epoch = manager_epoch + epoch_offset
        self.seq_offset = 0             # session_seq = manager_seq + seq_offset
        self._tasks: deque[Job] = deque()          # long operations, in order
        self._task_done: dict[int, Callable[[JobResult], None]] = {}
        self._task_what: dict[int, str] = {}       # running or waiting, by id
        self._switch: _Switch | None = None
        self._closed = False
        self._sigProgress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
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
        if self._refuse_while_switching("opening a new buffer"):
            return False
        with self._scenario_suspended():
            try:
                new = self._open_raw(backend, tuple(shape))
            except Exception as exc:
                self._report(f"cannot open the {backend} backend with shape {tuple(shape)}", exc)
                return False
            self._replace(new, backend)
            return True

    @property
    def switching(self) -> str:
        """The backend a switch is moving to ("" when none runs)."""
        return "" if self._switch is None else self._switch.backend

    def _refuse_while_switching(self, what: str) -> bool:
        if self._switch is None:
            return False
        self.sigMessage.emit(f"{what}: wait until the switch to {self._switch.backend} is done "
                             "(Esc cancels it)")
        return True

    def switch_backend(self, backend: str) -> bool:
        """Start moving to ``backend`` keeping the contents and the queued updates
        (SPEC §7); returns at once — False when it cannot start (the reason is in
        ``sigMessage``). The drain and the copy run on the worker (see the module
        docstring); ``sigManagerChanged`` follows when the new manager is in use."""
        if self.manager is None:
            return self.open(backend, self.shape)
        if backend == self.backend:
            return True
        if self._refuse_while_switching(f"switch to {backend}"):
            return False
        problem = backend_problem(backend)
        if problem:
            self._report(f"cannot switch to the {backend} backend", RuntimeError(problem))
            return False
        scenario, rate = self.scenario_name, self.scenario_rate
        self.stop_scenario()    # producers are paced: they end within a tick
        try:
            new = self._open_raw(backend, self.shape)
        except Exception as exc:
            self._report(f"cannot switch to the {backend} backend", exc)
            if scenario:
                self.start_scenario(scenario, rate)
            return False
        paused = self.paused
        task_id = self._job_ids + 1

        def work(old: BufferManager, cancel: threading.Event) -> dict:
            return drain_and_copy(old, new, paused, cancel, SWITCH_TIMEOUT_S,
                                  lambda text: self._sigProgress.emit(task_id, text))

        self._switch = _Switch(backend, new, scenario, rate, task_id)
        self.run_task(f"switching to {backend}", work, self._on_switch_done)
        return True

    def _on_switch_done(self, res: JobResult) -> None:
        sw = self._switch
        if sw is None or sw.task_id != res.job.job_id:
            return                       # the session closed meanwhile (and closed it)
        self._switch = None
        if res.error is not None:
            with contextlib.suppress(Exception):
                sw.new.close()
            if isinstance(res.error, Cancelled):
                self.sigMessage.emit(f"switch to {sw.backend} cancelled; still on {self.backend} "
                                     "with every update kept")
            else:
                self._report(f"cannot switch to the {sw.backend} backend (still on "
                             f"{self.backend}, every update kept)", res.error)
        else:
            v = res.value
            old, newst = v["old"], v["new"]
            session_epoch = old.epoch + self.epoch_offset
            session_seq = old.last_seq + self.seq_offset
            # The copy is one new epoch and one new update (a Write) of the session.
            self._replace(sw.new, sw.backend,
                          epoch_offset=session_epoch + 1 - newst.epoch,
                          seq_offset=session_seq + 1 - v["write_seq"])
            n = v["drained"]
            name = sw.backend.upper() if len(sw.backend) <= 2 else sw.backend
            head = (f"applied {n} queued update{'s' * (n != 1)} before switching to {name}"
                    if n else f"switched to {name} (no queued updates to apply)")
            self.sigMessage.emit(f"{head}; epoch continues at {self.epoch}")
        if sw.scenario and self.manager is not None:
            self.start_scenario(sw.scenario, sw.rate)

    # -- long operations on the worker -----------------------------------------------------
    def run_task(self, what: str, work: Callable[[BufferManager, threading.Event], object],
                 done: Callable[[JobResult], None] | None = None) -> int:
        """Run ``work(manager, cancel)`` on the worker thread after the jobs before
        it — ``manager`` is the one current when it starts, ``result.job.epoch_offset``
        the session's offset then — and ``done(result)`` here after (always: with
        ``error`` set on failure or cancel). ``what`` names it in ``sigBusyChanged``.
        Returns the task id; ``sigTaskFinished(id, error)`` follows ``done``."""
        self._job_ids += 1
        job = Job(self._job_ids, self.manager, self._generation, task=work)
        self._tasks.append(job)
        self._task_what[job.job_id] = what
        if done is not None:
            self._task_done[job.job_id] = done
        if self._inflight is None:
            self._start_pending()
        self._emit_busy()
        return job.job_id

    @property
    def busy(self) -> str:
        """What the long operation now running (or next) does ("" when none)."""
        return next(iter(self._task_what.values()), "")

    def cancel_tasks(self) -> int:
        """Ask every long operation running or waiting to give up; how many there were."""
        n = 0
        for job in [*self._tasks, self._inflight]:
            if job is not None and job.task is not None and not job.cancel.is_set():
                job.cancel.set()
                n += 1
        if n:
            self.sigMessage.emit(f"cancelling {self.busy or 'the running operation'}…")
        return n

    def _emit_busy(self) -> None:
        self.sigBusyChanged.emit(self.busy)

    def _on_progress(self, task_id: int, text: str) -> None:
        if task_id in self._task_what:
            self._task_what[task_id] = text
            self._emit_busy()

    def _settle(self) -> None:
        """Let a running job end (at most its sync timeout) and forget its result:
        the manager is about to be replaced or closed. Waiting tasks stay queued."""
        if self._inflight is not None:
            self._worker.wait_idle(SWITCH_TIMEOUT_S)
        self._inflight, self._pending = None, None
        self._generation += 1

    def _replace(self, new: BufferManager, backend: str,
                 epoch_offset: int | None = None, seq_offset: int | None = None) -> None:
        """Make ``new`` the manager. The offsets default to "continue after the old
        manager's numbers" (a new, empty buffer: its epoch 0 is a new session epoch).
        A synchronize asked for meanwhile runs on ``new``."""
        pending = self._pending
        self._settle()
        self._pending = pending
        old = self.manager
        explicit = epoch_offset is not None and seq_offset is not None
        if old is not None and (epoch_offset is None or seq_offset is None):
            try:
                st = old.stats()
                epoch_offset = st.epoch + self.epoch_offset + 1 if epoch_offset is None else epoch_offset
                seq_offset = st.last_seq + self.seq_offset if seq_offset is None else seq_offset
            except Exception as exc:
                self._report("reading the previous manager's counters", exc)
        # A backend switch (offsets given) goes on with the same history; a new buffer starts one.
        self.history_continues = old is not None and explicit
        self.epoch_offset = self.epoch_offset if epoch_offset is None else int(epoch_offset)
        self.seq_offset = self.seq_offset if seq_offset is None else int(seq_offset)
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
        self.epoch = (self._call("stats", lambda m: m.stats().epoch) or 0) + self.epoch_offset
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
        """The front, read here and now — this waits on the manager (the GL
        backend reads back on its worker), so the app never calls it on the GUI
        thread: for tests and scripts. The view gets its fronts from
        ``sigFrontChanged`` and exports read theirs in a task, both on the worker."""
        if self.manager is None:
            return None
        try:
            return self.manager.front()
        except Exception as exc:
            self._report("reading the front buffer", exc)
            return None

    def front_texture(self) -> tuple[int, int]:
        """The GL manager's ``front_texture()``, its epoch a session epoch."""
        tex, epoch = self.manager.front_texture()
        return tex, int(epoch) + self.epoch_offset

    def request_front_range(self):
        """The GL manager's ``request_front_range()``, its epoch a session epoch."""
        r = self.manager.request_front_range()
        return None if r is None else (r[0], r[1], int(r[2]) + self.epoch_offset)

    def enqueue(self, update: Update) -> int | None:
        """Queue ``update``; its session seq (None: refused, the reason in ``sigMessage``)."""
        what = f"enqueue {type(update).__name__}"
        if self._refuse_while_switching(what):
            return None     # the old manager's backlog is being copied: it would be lost
        seq = self._call(what, lambda m: m.enqueue(update, block=False))
        return None if seq is None else int(seq) + self.seq_offset

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

    def _request(self, sync: bool, timeout: float = 0.0, read: bool = False,
                 asked: bool = True) -> int:
        """Coalesce into the next job; ``asked``: a user (or a caller) wants this
        sync, as opposed to the auto-sync clock."""
        self._job_ids += 1
        p = self._pending or {"sync": False, "timeout": timeout, "read": False, "asked": False}
        p["asked"] |= asked and sync
        p["sync"] |= sync
        p["read"] |= read
        p["timeout"] = max(p["timeout"], timeout)
        p["id"] = self._job_ids
        self._pending = p
        if self._inflight is None:
            self._start_pending()
        return self._job_ids

    def _start_pending(self) -> None:
        if self._tasks:
            job = self._tasks.popleft()
            job.manager, job.epoch_offset = self.manager, self.epoch_offset
            job.generation = self._generation
            self._inflight = job
            self._worker.submit(job)
            return
        if self._switch is not None:
            return           # the switch task ran; syncs wait for the new manager
        p, self._pending = self._pending, None
        if p is None or self.manager is None:
            return
        read = p["read"] or self.front_wanted()
        job = Job(p["id"], self.manager, self._generation, p["sync"], p["timeout"], read,
                  asked=p["asked"])
        self._inflight = job
        self._worker.submit(job)

    def _on_job_done(self, res: JobResult) -> None:
        job = res.job
        if job.task is not None:
            self._finish_task(res)      # always: its owner must hear how it ended
        if job is not self._inflight:
            return              # from before a reopen: dropped
        try:
            if job.task is None and job.generation == self._generation:
                self._handle(res)
        finally:
            self._inflight = None
            if not self._closed:
                self._start_pending()

    def _finish_task(self, res: JobResult) -> None:
        tid = res.job.job_id
        self._task_what.pop(tid, None)
        done = self._task_done.pop(tid, None)
        try:
            if done is not None:
                done(res)
        except Exception as exc:
            self._report("finishing a task", exc)
        finally:
            err = res.error
            self.sigTaskFinished.emit(tid, "" if err is None else f"{type(err).__name__}: {err}")
            self._emit_busy()

    def _handle(self, res: JobResult) -> None:
        job, exc = res.job, res.error
        error = ""
        if isinstance(exc, TimeoutError):
            hint = " (paused: Step or Resume, then Synchronize)" if self.paused else ""
            error = f"synchronize: {exc}{hint}"
            if job.asked or not self.paused:   # an auto-sync caught by Pause is no news
                self.sigMessage.emit(error)
        elif exc is not None:
            error = f"{'synchronize' if job.sync else 'reading the front'}: {type(exc).__name__}: {exc}"
            self.last_error = error
            self.sigMessage.emit(error)
        if res.stats is not None:
            self.last_stats = res.stats
        epoch = self.epoch if res.epoch is None else int(res.epoch) + self.epoch_offset
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
        if st.epoch + self.epoch_offset != self.epoch and self._inflight is None:
            self.refresh_front()

    def _tick(self) -> None:
        if self.manager is None:
            return
        if self.autosync and not self.paused and self._inflight is None:
            self._request(sync=True, timeout=SYNC_TIMEOUT_S, asked=False)
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
        if self._refuse_while_switching("pause" if paused else "resume"):
            self.sigPausedChanged.emit(self.paused)     # a checkable button springs back
            return
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
        if self._refuse_while_switching("step"):
            return
        self._call("step", lambda m: m.step(n))

    # -- scenarios -----------------------------------------------------------------------------
    def start_scenario(self, name: str, rate: float | None = None,
                       own_shape: bool = False) -> bool:
        """Start scenario ``name``; with ``own_shape`` on a new buffer of the
        scenario's shape when the current one differs (what its description says)."""
        if self._refuse_while_switching(f"scenario {name!r}"):
            return False
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
        self._closed = True
        self._timer.stop()
        self.stop_scenario()
        self.cancel_tasks()
        sw, self._switch = self._switch, None
        self._tasks.clear()          # never started: nothing to undo
        self._task_what.clear()
        self._task_done.clear()
        self._settle()
        self._worker.close()
        if sw is not None:           # its task ended (cancelled): the copy is not wanted
            with contextlib.suppress(Exception):
                sw.new.close()
        m, self.manager = self.manager, None
        if m is not None:
            try:
                m.close()
            except Exception as exc:
                self._report("closing the manager", exc)


SCENARIO_NAMES = tuple(SCENARIOS)
