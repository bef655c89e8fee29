"""``TaskThread``: one worker thread running callables in order, the newest request of a
kind replacing one still waiting — the trace player's reads and scrubs, the lockstep
view's runs. Results come back on the GUI thread as a signal.

Signals
-------
sigDone(str, object, object)   a job ended: its key, its result, its exception (or None)
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PyQt6.QtCore import QObject, pyqtSignal


class TaskThread(QObject):
    """One worker thread running callables in order; ``submit(key, fn)`` replaces a
    job with the same key that has not started yet. ``fn()``'s result (or exception)
    comes back on the GUI thread as ``sigDone(key, result, error)``. ``close()``
    joins the thread (jobs should watch a cancel flag to end promptly)."""

    sigDone = pyqtSignal(str, object, object)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._cv = threading.Condition()
        self._jobs: dict[str, Callable] = {}
        self._closing = False
        self._busy = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._busy or bool(self._jobs)

    def submit(self, key: str, fn: Callable) -> None:
        with self._cv:
            if self._closing:
                return
            self._jobs.pop(key, None)
            self._jobs[key] = fn
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
                key = next(iter(self._jobs))
                fn = self._jobs.pop(key)
                self._busy = True
            result = error = None
            try:
                result = fn()
            except BaseException as exc:   # reported on the GUI thread
                error = exc
            with self._cv:
                self._busy = False
            try:
                self.sigDone.emit(key, result, error)
            except RuntimeError:           # the receiver is gone (window closed)
                pass

    def close(self, timeout: float = 10.0) -> bool:
        with self._cv:
            self._closing = True
            self._jobs.clear()
            self._cv.notify_all()
            t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True
