"""``SyncWorker``: the thread that waits on the manager so the GUI thread never does.

One job at a time: synchronize (with a timeout) and/or read the front back, then
read the stats — or, for a job with a ``task``, run that function instead (the
session's long operations: an export, a backend switch). The result goes to
``on_done`` *from the worker thread* (the session forwards it to the GUI thread
through a queued Qt signal). The front of
a result stays valid until the next synchronize, and the session starts no job
before it has consumed the previous result, so the GUI reads a front no swap can
change under it. Qt-free.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .front_source import Bands

STOP = object()


@dataclass
class Job:
    job_id: int
    manager: object
    generation: int
    sync: bool = False
    timeout: float = 1.0
    read_front: bool = False
    # A task runs instead of sync/read: task(manager, cancel), manager being the one
    # current when the task started; epoch_offset is the session's then.
    task: Callable[[object, threading.Event], object] | None = None
    epoch_offset: int = 0
    asked: bool = True      # the sync was asked for (not only the auto-sync clock's)
    changes: object = None  # an app.front_changes.FrontChanges of this manager, or None
    # A ui.front_upload.FrontUploader: after the sync, the front goes into its textures
    # here (every job, whether or not the front is handed over).
    upload: object = None
    copy_front: bool = False  # hand over a copy of the front made here, not the manager's
    cancel: threading.Event = field(default_factory=threading.Event)


class Cancelled(Exception):
    """A task saw its job's ``cancel`` event set and gave up (nothing was changed)."""


@dataclass
class JobResult:
    job: Job
    epoch: int | None = None
    stats: object = None
    front: object = None
    error: BaseException | None = None
    seconds: float = 0.0
    value: object = None            # what a task returned
    synced_at: float | None = None  # time.monotonic() when synchronize returned
    changes: tuple | None = None    # FrontChanges.take() for the front read back
    events: tuple | None = None     # (since, events, next index) that take() read
    upload: tuple | None = None     # what job.upload.work() returned
    upload_error: BaseException | None = None
    extra: dict = field(default_factory=dict)


class SyncWorker:
    """A thread running ``Job``s in order (see the module docstring)."""

    def __init__(self, on_done: Callable[[JobResult], None], name: str = "bufferscope-sync",
                 on_start: Callable[[], None] | None = None):
        self._on_done = on_done
        self._on_start = on_start
        self.exit_hooks: list[Callable[[], None]] = []   # run on the thread as it stops
        self._jobs: queue.Queue = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._idle.clear()
        self._jobs.put(job)

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until no job runs; for teardown only."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Finish the running job, stop the thread; False if it did not stop in time."""
        self._jobs.put(STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while True:
            job = self._jobs.get()
            if job is STOP:
                for hook in self.exit_hooks:
                    try:
                        hook()
                    except Exception:   # a hook must not keep the thread from ending
                        pass
                return
            t0 = time.monotonic()
            res = JobResult(job)
            if job.task is not None:
                self._run_task(job, res)
            else:
                self._run_sync(job, res)
            res.seconds = time.monotonic() - t0
            if self._jobs.empty():
                self._idle.set()
            try:
                self._on_done(res)
            except Exception:  # a closed receiver must not kill the thread
                pass

    @staticmethod
    def _run_task(job: Job, res: JobResult) -> None:
        try:
            if job.cancel.is_set():
                raise Cancelled("cancelled before it started")
            res.value = job.task(job.manager, job.cancel)
        except BaseException as exc:  # reported by the session, never raised here
            res.error = exc

    @staticmethod
    def _run_sync(job: Job, res: JobResult) -> None:
        m = job.manager
        try:
            if job.sync:
                m.synchronize(job.timeout)
                res.synced_at = time.monotonic()
        except BaseException as exc:  # reported by the session, never raised here
            res.error = exc
        try:
            want = job.read_front or job.upload is not None
            before = m.stats() if want and job.changes is not None else None
            front = m.front() if want else None
            res.stats = m.stats()
            res.epoch = res.stats.epoch
            if front is not None and before is not None:
                # Another caller's swap between the two stats: which rows the front
                # shows is not known for sure.
                job.changes.last_read = None
                res.changes = job.changes.take(m, res.stats.visible_seq,
                                               trusted=before.epoch == res.stats.epoch)
                if job.changes.last_read is not None:   # the events it read, for the feed
                    res.events, job.changes.last_read = job.changes.last_read, None
                if res.changes[2] is not None and job.upload is None:
                    # the level summaries of those rows, here (the view's upload path)
                    front2 = front.reshape(-1, front.shape[-1])
                    res.changes = (*res.changes, Bands.compute(front2, res.changes[2]))
            if job.upload is not None and front is not None:
                try:
                    if before is not None and before.epoch == res.stats.epoch:
                        res.upload = job.upload.work(m, front, res.changes, res.stats.epoch)
                    else:      # which epoch this front is of is not known: not shown
                        job.upload.invalidate()
                except Exception as exc:
                    res.upload_error = exc
            if job.read_front:
                res.front = np.array(front, copy=True) if job.copy_front else front
        except BaseException as exc:
            res.error = res.error or exc


def synchronize_until(manager, cancel: threading.Event, timeout: float,
                      slice_s: float = 0.1) -> int:
    """``manager.synchronize`` for at most ``timeout`` s in slices of ``slice_s``, so
    that setting ``cancel`` ends the wait within a slice (``Cancelled``); a wait
    past ``timeout`` raises ``TimeoutError``. For a task on the worker thread."""
    deadline = time.monotonic() + timeout
    while True:
        if cancel.is_set():
            raise Cancelled("cancelled while waiting for the synchronize")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the synchronize did not finish within {timeout:g} s")
        try:
            return manager.synchronize(min(slice_s, left))
        except TimeoutError:
            continue
