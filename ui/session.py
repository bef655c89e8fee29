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
* a ``SyncWorker`` thread, so the GUI thread never waits on the manager: every
  synchronize, front read-back, long task (an export) and backend switch runs
  there — that machinery is the ``WorkerJobs`` mixin (``ui.session_tasks``).
  ``sigFrontChanged`` fires when a new epoch is visible, whoever swapped it.

Epoch and sequence numbers are *session-wide*: they continue across every new
manager (a backend switch, a new shape) instead of restarting at each. The
numbers a manager reports map to the session's by two public offsets, set before
``sigManagerChanged`` is emitted for that manager and unchanged until the next::

    session_seq   = manager_seq   + session.seq_offset
    session_epoch = manager_epoch + session.epoch_offset

``epoch`` (and every epoch the session emits) and the seq ``enqueue`` returns
are session numbers; ``last_stats`` and ``manager.events()`` are the manager's own.

A backend switch drains, then copies (see ``ui.session_tasks``): a failed or
cancelled switch loses nothing.

Signals
-------
sigManagerChanged()          a manager was opened (new backend or shape)
sigFrontChanged(int, object) a new epoch is visible: the epoch, and its front when it
                             was read back (None: draw it without one, texture mode);
                             ``synced_at`` is then the time.monotonic() at which the
                             synchronize that made it visible returned (None: a poll),
                             and ``changes`` what ``FrontChanges.take`` said of its front
                             (``app.front_changes``: the rows changed since the read
                             before, learned from the manager's events; None: unknown)
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

import numpy as np
from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal

from app import BACKENDS, open_manager
from app import why_not as _why_not
from app.front_changes import FrontChanges
from app.manager import BufferManager, ManagerStats
from app.scenarios import SCENARIOS, ScenarioRun, get_scenario
from app.updates import Update

from .session_tasks import SwitchJob, WorkerJobs, drain_and_copy  # noqa: F401  (re-exported)
from .sync_worker import Job, JobResult, SyncWorker

MAX_PENDING = 1 << 16


def backend_problem(name: str) -> str | None:
    """Why backend ``name`` cannot run here (None when it can). Never raises."""
    if name not in BACKENDS:
        return f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}"
    try:
        return _why_not(name)
    except Exception as exc:  # a half-written backend module must not take the app down
        return f"backend {name!r} is not usable: {type(exc).__name__}: {exc}"


class Session(WorkerJobs, QObject):
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
        self.synced_at: float | None = None   # see sigFrontChanged (sync -> pixel latency)
        self.changes: tuple | None = None     # see sigFrontChanged
        self.front_changes: FrontChanges | None = None   # the manager's, read on the worker
        # (manager, since, events, next index): events the worker read for the front
        # changes; the history feed takes them (``take_events``) instead of reading again.
        self.events_read: tuple | None = None
        self.front_wanted: Callable[[], bool] = lambda: True
        # A ui.front_upload.FrontUploader the worker fills after every sync (None: the
        # view uploads what it is handed); copy_fronts: the fronts handed over are
        # copies made on the worker (the view keeps them instead of copying them).
        self.front_uploader = None
        self.copy_fronts = False
        self._generation = 0            # bumped per manager: older results are stale
        self._job_ids = 0
        self._inflight: Job | None = None
        self._pending: dict | None = None   # the next job, coalesced
        self._tick_missed = False       # an auto-sync tick came while a job ran
        self.history_continues = False  # the last manager change was a backend switch
        self.epoch_offset = 0           # session_epoch = manager_epoch + epoch_offset
        self.seq_offset = 0             # session_seq = manager_seq + seq_offset
        self._tasks: deque[Job] = deque()          # long operations, in order
        self._task_done: dict[int, Callable[[JobResult], None]] = {}
        self._task_what: dict[int, str] = {}       # running or waiting, by id
        self._switch: SwitchJob | None = None
        self._closed = False
        self._sigProgress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._sigJobDone.connect(self._on_job_done, Qt.ConnectionType.QueuedConnection)
        self._worker_qthread = None
        self._worker_started = threading.Event()
        self._worker = SyncWorker(self._sigJobDone.emit, on_start=self._on_worker_start)
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


    def adopt(self, manager: BufferManager, backend: str) -> None:
        """Show ``manager`` (made elsewhere: a program's published manager seen
        through ``app.attach``) as this session's, closing the previous one."""
        # Its numbers are the program's own: no offsets, a history of its own.
        # Its front and its visible_seq arrive separately: the rows changed are not
        # learned from its events (the view compares each front it reads instead).
        self._replace(manager, backend, epoch_offset=0, seq_offset=0, continues=False,
                      track_changes=False)

    def _replace(self, new: BufferManager, backend: str,
                 epoch_offset: int | None = None, seq_offset: int | None = None,
                 continues: bool | None = None, track_changes: bool = True) -> None:
        """Make ``new`` the manager. The offsets default to "continue after the old
        manager's numbers" (a new, empty buffer: its epoch 0 is a new session epoch).
        ``continues``: the history goes on (default: when offsets are given, as by a
        backend switch). A synchronize asked for meanwhile runs on ``new``."""
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
        self.history_continues = old is not None and (explicit if continues is None else continues)
        self.epoch_offset = self.epoch_offset if epoch_offset is None else int(epoch_offset)
        self.seq_offset = self.seq_offset if seq_offset is None else int(seq_offset)
        self.manager = new
        self.front_changes = FrontChanges(tuple(new.shape)) if track_changes else None
        self.events_read = None
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

    def take_events(self, manager) -> tuple[int, list, int] | None:
        """``(since, events, next index)`` the worker last read from ``manager`` (its
        own numbers), once: None when there are none (or they were another's)."""
        got, self.events_read = self.events_read, None
        if got is None or got[0] is not manager:
            return None
        return got[1:]

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
