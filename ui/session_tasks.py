"""``WorkerJobs``: what ``Session`` (``ui.session``) runs on its ``SyncWorker`` thread, as a
mixin over the session's state — synchronizes and front read-backs, long tasks, and the
drain-then-copy backend switch.

The GUI thread never waits on the manager. Every synchronize runs on the worker
(``synchronize()`` returns at once with a request id), and so does the read-back of the
front when ``front_wanted()`` says one is due (the GL backend's read-back waits on its
worker). Results come back through a queued signal; the next job starts only after the
GUI thread has handled the previous one, so the front it reads cannot be swapped under
it. Requests made while a job runs are coalesced into the next one.

Long operations (an export, a backend switch) run there too, as tasks (``run_task``),
before any sync asked for after them: ``sigBusyChanged`` names the one running,
``cancel_tasks()`` (Esc, the status bar's Cancel) asks them to give up, and every task's
owner hears how it ended.

A backend switch drains, then copies: updates still queued (paused or not) are first
applied and made visible on the old manager (it is resumed for the drain and paused
again after), then its front is written into the new manager and synchronized — all on
the worker thread, cancellable; the old manager stays in use until the new one holds the
copy, so a failed or cancelled switch loses nothing. The message says what was drained
and where the epoch continues.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app import Write
from app.manager import BufferManager

from .sync_worker import Cancelled, Job, JobResult, synchronize_until

SYNC_TIMEOUT_S = 1.0
SWITCH_TIMEOUT_S = 10.0


@dataclass
class SwitchJob:
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


class WorkerJobs:
    """The session's worker-thread jobs (see the module docstring). Mixed into
    ``Session``, whose ``__init__`` sets the state used here and declares the signals."""

    # -- the worker thread itself -------------------------------------------------------------
    def _on_worker_start(self) -> None:
        """On the worker thread as it starts: its QThread (contexts are moved to it)."""
        from PyQt6.QtCore import QThread

        self._worker_qthread = QThread.currentThread()
        self._worker_started.set()

    def worker_thread(self, timeout: float = 5.0):
        """The sync worker's ``QThread`` (to move a GL context to); None if it did not
        start within ``timeout`` s (it starts with the session, at once)."""
        self._worker_started.wait(timeout)
        return self._worker_qthread

    def add_worker_exit_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` on the worker thread as it stops (``close``)."""
        self._worker.exit_hooks.append(hook)

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
        from .session import backend_problem  # the session module imports this one

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

        self._switch = SwitchJob(backend, new, scenario, rate, task_id)
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
        upload = self.front_uploader if self.front_changes is not None else None
        # With the front uploaded here, the view's copy (the readout's) is refreshed
        # now and then — and after every synchronize someone asked for.
        read = p["read"] or self.front_wanted() or (p["asked"] and upload is not None)
        job = Job(p["id"], self.manager, self._generation, p["sync"], p["timeout"], read,
                  asked=p["asked"], changes=self.front_changes, upload=upload,
                  copy_front=self.copy_fronts)
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
            missed, self._tick_missed = self._tick_missed, False
            if self._closed:
                pass
            elif missed and self.autosync and not self.paused and self.manager is not None:
                self._request(sync=True, timeout=SYNC_TIMEOUT_S, asked=False)
            else:
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
        if res.events is not None:       # the manager's events the worker read (the feed's)
            self.events_read = (job.manager, *res.events)
        up = job.upload
        if up is not None and up is self.front_uploader:
            if res.upload_error is not None:
                exc = res.upload_error
                up.failed = f"{type(exc).__name__}: {exc}"
                self.front_uploader = None     # the view uploads on this thread again
                self.sigMessage.emit(f"uploading the front on the sync worker stopped "
                                     f"({up.failed}); the view uploads it instead")
            elif res.upload is not None:
                up.show(res.upload, self.epoch_offset)   # before the view hears of it
        epoch = self.epoch if res.epoch is None else int(res.epoch) + self.epoch_offset
        # A front read with an unchanged epoch is news only when it was asked for
        # (a refresh, a synchronize); an auto-sync that swapped nothing new costs no diff.
        if epoch != self.epoch or (res.front is not None and (job.asked or not job.sync)):
            self.epoch = epoch
            self.synced_at = res.synced_at   # when the sync that made it visible returned
            self.changes = res.changes       # the rows it changed (see Session)
            self.sigFrontChanged.emit(epoch, res.front)
        if job.sync:
            self.sigSyncFinished.emit(job.job_id, self.epoch, error)

    # -- the auto-sync clock ---------------------------------------------------------------
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
        if self.autosync and not self.paused:
            if self._inflight is None:
                self._request(sync=True, timeout=SYNC_TIMEOUT_S, asked=False)
            else:
                # Asked for as soon as the running job's result has been handled, so
                # the worker makes the next epoch while this thread paints this one.
                self._tick_missed = True
        elif self._inflight is None:
            self.poll()
