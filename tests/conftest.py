"""Shared fixtures: the backend parameter, manager factory, thread-leak guard.

GL tests need an OpenGL context (Xvfb + Mesa in CI, started by pytest-xvfb).
Where none can be made they are skipped locally but FAIL when CI=true.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

import app

IN_CI = os.environ.get("CI", "").lower() == "true"
ALL_BACKENDS = ["c", "gl"]
# The contract suites also run on the numpy reference backend: the GL backend's
# scheduler with a CPU executor, so the queue protocol is tested without OpenGL.
CONTRACT_BACKENDS = [*ALL_BACKENDS, "numpy"]


def pytest_configure(config):
    # The viewer and the GL backend's worker share GL objects, and the viewer asks
    # for a 3.3 core context: Qt needs both set before the (pytest-qt)
    # QApplication is created.
    try:
        from ui.launch import prepare_qt
    except ImportError:  # no PyQt6: the GL and UI tests will say so
        return
    prepare_qt()


def require_backend(name: str) -> None:
    """Skip (locally) or fail (in CI) when backend ``name`` cannot run here."""
    reason = app.why_not(name)
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"backend {name!r} unavailable in CI: {reason}")
    pytest.skip(f"backend {name!r} unavailable: {reason}")


def backend_param(request) -> str:
    """The backend named by ``request.param``, required to be usable here."""
    name = request.param
    if name == "gl":
        # pytest-qt's QApplication must exist before the GL backend would make
        # a bare QGuiApplication of its own.
        request.getfixturevalue("qapp")
    require_backend(name)
    return name


@pytest.fixture(params=ALL_BACKENDS)
def backend(request) -> str:
    return backend_param(request)


@pytest.fixture
def open_mgr(backend):
    """Factory: ``open_mgr(shape, **kw)`` on the test's backend; closed at teardown."""
    made = []

    def make(shape, **kw):
        m = app.open_manager(backend, shape, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def wait_until(pred, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``pred`` until true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def replay_epochs(path, backend: str = "c", final_sync: bool = False):
    """Replay a trace on ``backend``: ``(trace, fronts, trailing)`` — the front after
    each sync line, and the number of updates after the last one (applied and
    synchronized once more, adding a front, with ``final_sync``)."""
    from app.trace import SyncMarker, read_trace

    trace = read_trace(path)
    fronts = []
    with app.open_manager(backend, trace.shape, trace.fill) as m:
        batch: list = []
        for rec in trace.records:
            if isinstance(rec.item, SyncMarker):
                if batch:
                    m.enqueue_many(batch)
                    batch = []
                m.synchronize(timeout=60)
                fronts.append(m.front().copy())
            else:
                batch.append(rec.item)
        trailing = len(batch)
        if final_sync:
            if batch:
                m.enqueue_many(batch)
            m.synchronize(timeout=60)
            fronts.append(m.front().copy())
    return trace, fronts, trailing


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not isinstance(t, threading._DummyThread)}


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """Fail any test that leaves a Python thread running (napari does the same)."""
    before = _live_threads()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [t for t in _live_threads() - before if t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"test left threads running: {[t.name for t in extra]}"


@contextlib.contextmanager
def reaped(p):
    """A running child process (``subprocess.Popen``); killed, never left behind, if the
    test fails, and always waited for."""
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)
