"""Live attach (SPEC §5 "Live attach", §6 ``bufferscope attach``): a program started
with ``BUFFERSCOPE_LISTEN`` publishes its manager; a viewer attaches, sees its epochs
bit for bit and its events in order, and nothing a viewer sends can crash, stall or
slow the program. Real child processes; every wait has a timeout."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from conftest import reaped, require_backend, wait_until

import app
from app import live, live_socket
from app.attach import (
    AttachError,
    Client,
    ProgramEnded,
    ReadOnlyError,
    RemoteManager,
    Reply,
    Update,
    main,
)
from app.live import Publisher, frame_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The observed program: racing producer threads, the main thread synchronizes and
# saves each epoch's front (only it swaps, so the front is stable while it saves).
CHILD = r"""
import os, sys, threading, time
import numpy as np
import app
from app import live, Fill, Add, Scale
backend, outdir, seconds, period = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
if os.environ.get("LIVE_TEST_LOW_LIMITS"):   # drop a non-reading viewer sooner
    live.STALL_S, live.MAX_BACKLOG = 1.0, 1 << 16
H, W = 24, 40
m = app.open_manager(backend, (H, W), max_pending=1 << 14)
if outdir != "-":
    np.save(os.path.join(outdir, "front-0.npy"), m.front())
stop = threading.Event()
done = [0, 0, 0]
def produce(k):
    rng = np.random.default_rng(k)
    i = 0
    while not stop.is_set():
        r, c = (int(x) for x in rng.integers(0, 20, 2))
        kind = (Fill, Add, Scale)[i % 3]
        m.enqueue(kind(((r, r + 4), (c, c + 4)), float(k + 1) * (0.5 if kind is Scale else 1.0)))
        idx = np.stack([rng.integers(0, H, 16), rng.integers(0, W, 16)], axis=1)
        m.set_many(idx, rng.standard_normal(16))
        done[k] += 17
        i += 1
        if period:
            time.sleep(period / 20)
threads = [threading.Thread(target=produce, args=(k,), name=f"producer-{k}") for k in range(3)]
for t in threads:
    t.start()
print("ready", flush=True)
t0 = time.monotonic()
n = 0
stopfile = sys.argv[5] if len(sys.argv) > 5 else ""
while (not stopfile and time.monotonic() - t0 < seconds) or (
        stopfile and not os.path.exists(stopfile) and time.monotonic() - t0 < 120):
    ep = m.synchronize(30)
    if outdir != "-":
        np.save(os.path.join(outdir, f"front-{ep}.npy"), m.front())
    n += 1
    if period:
        time.sleep(period)
stop.set()
for t in threads:
    t.join(30)
dt = time.monotonic() - t0
pub_cpu, pubs = 0.0, 0   # CPU time the publisher thread spent, from /proc
for t in threading.enumerate():
    if t.name.startswith("bufferscope-publish"):
        pubs += 1
        try:
            with open(f"/proc/self/task/{t.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            pub_cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
print(f"rate {sum(done) / dt:.1f} epochs {n} publisher_cpu {pub_cpu:.3f} wall {dt:.3f} "
      f"publishers {pubs}", flush=True)
"""


@pytest.fixture
def sockdir():
    """A short private directory (Unix socket paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="bs-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def spawn(address: str, outdir: str = "-", seconds: float = 3.0, period: float = 0.02,
          backend: str = "c", control: bool = False, stopfile: str = "",
          low_limits: bool = False) -> subprocess.Popen:
    """The child program: it runs ``seconds``, or until ``stopfile`` exists when given."""
    env = {**os.environ, "PYTHONPATH": ROOT, live.ENV: address}
    env.pop("LIVE_TEST_LOW_LIMITS", None)
    if low_limits:
        env["LIVE_TEST_LOW_LIMITS"] = "1"
    env.pop(live.ENV_CONTROL, None)
    env.pop("BUFFERSCOPE_TRACE", None)
    if control:
        env[live.ENV_CONTROL] = "1"
    return subprocess.Popen([sys.executable, "-c", CHILD, backend, outdir, str(seconds), str(period),
                             stopfile],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def child(address: str, **kw):
    """A running child; killed (never left behind) if the test fails."""
    return reaped(spawn(address, **kw))


def garbage_answer(target: str, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` to the publisher at ``target``; everything it answers until it closes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(target)
    with contextlib.suppress(OSError):
        s.sendall(data)
    got = b""
    with contextlib.suppress(OSError):
        while chunk := s.recv(1 << 16):        # until the publisher closes it
            got += chunk
    s.close()
    return got


def finish(p: subprocess.Popen, timeout: float = 60) -> tuple[float, str, str]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("rate ")]
    assert lines, (out, err)
    return float(lines[-1].split()[1]), out, err


def read_stderr_line(p: subprocess.Popen, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stderr], [], [], 0.1)
        if r:
            line = p.stderr.readline()
            if needle in line:
                return line
            if not line and p.poll() is not None:
                break
    raise AssertionError(f"no stderr line with {needle!r}")


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def wait_socket(path: str, timeout: float = 20.0) -> None:
    wait_until(lambda: os.path.exists(path), timeout, f"socket {path}")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(np.ascontiguousarray(a).view(np.uint32),
                                                 np.ascontiguousarray(b).view(np.uint32))


def updates_until_end(client: Client, timeout: float = 60.0) -> tuple[list[Update], ProgramEnded]:
    got: list[Update] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.recv(timeout=max(0.1, deadline - time.monotonic()))
        except ProgramEnded as exc:
            return got, exc
        if isinstance(msg, Update):
            got.append(msg)
    raise AssertionError("the program did not end in time")


def check_event_order(updates: list[Update]) -> int:
    """Events strictly in index order; skips accounted for; enqueue seqs increasing."""
    prev_next = None
    last_index = -1
    last_enqueue = 0
    n = 0
    for u in updates:
        if u.events:
            if prev_next is not None:
                assert u.events[0].index == prev_next + u.skipped
            for e in u.events:
                assert e.index > last_index
                last_index = e.index
                if e.kind == "enqueue":
                    assert e.seq > last_enqueue
                    last_enqueue = e.seq + e.count - 1
            assert u.next_event == u.events[-1].index + 1
            n += len(u.events)
        prev_next = u.next_event
    return n


# -- watching a program ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["c", "numpy", pytest.param("gl", marks=pytest.mark.gl)])
def test_viewer_sees_each_epoch_bit_for_bit_and_events_in_order(request, sockdir, backend):
    if backend == "gl":
        request.getfixturevalue("qapp")   # before why_not("gl") could make a bare QGuiApplication
    require_backend(backend)
    path = os.path.join(sockdir, "s")
    with child(path, outdir=sockdir, seconds=3.0, period=0.03, backend=backend) as p:
        wait_socket(path)
        client = Client(path)
        try:
            assert client.hello.shape == (24, 40)
            assert client.hello.backend == backend
            assert client.hello.pid == p.pid
            updates, ended = updates_until_end(client)
        finally:
            client.close()
        finish(p)
    fronts = [u for u in updates if u.front is not None]
    assert len(fronts) >= 4, f"only {len(fronts)} fronts"
    for u in fronts:
        saved = np.load(os.path.join(sockdir, f"front-{u.front_epoch}.npy"))
        assert same_bits(u.front, saved), f"epoch {u.front_epoch} differs"
    epochs = [u.front_epoch for u in fronts]
    assert epochs == sorted(set(epochs))
    assert check_event_order(updates) > 0
    kinds = {e.kind for u in updates for e in u.events}
    assert {"enqueue", "apply", "swap", "visible"} <= kinds
    # The end is reported with the program's last epoch.
    assert "the program ended" in str(ended)
    assert ended.epoch >= epochs[-1]
    assert not os.path.exists(path), "the socket file is removed at exit"


def test_print_mode_and_exit_message(sockdir, capsys):
    path = os.path.join(sockdir, "s")
    with child(path, seconds=1.5, period=0.02) as p:
        wait_socket(path)
        assert main([path, "--print"]) == 0
        finish(p)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"attached to {path} (pid {p.pid}, backend c)")
    assert any(ln.startswith("epoch ") for ln in out)
    assert out[-1].startswith("the program ended (last epoch ")


def test_main_bad_arguments_one_line_exit_2(capsys):
    for argv in ([], ["x", "--epochs", "0"], ["99999"], ["x", "--bogus"], ["x", "--timeout", "-1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("bufferscope attach: error:"), (argv, err)


def test_no_such_socket_and_not_a_socket(sockdir, capsys):
    path = os.path.join(sockdir, "missing")
    with pytest.raises(AttachError, match="no such socket"):
        Client(path)
    plain = os.path.join(sockdir, "plain")
    open(plain, "w").close()
    with pytest.raises(AttachError, match="is not a socket"):
        Client(plain)
    assert main([path, "--print"]) == 1
    assert "no such socket" in capsys.readouterr().err


def stale_socket(path: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()          # the file stays; nothing listens


def test_stale_socket_is_reported_then_replaced_by_a_new_program(sockdir):
    path = os.path.join(sockdir, "s")
    stale_socket(path)
    with pytest.raises(AttachError, match="stale socket"):
        Client(path)
    with child(path, seconds=30) as p:     # killed when done
        read_stderr_line(p, "publishing")
        c = Client(path)
        c.close()


def test_a_live_socket_or_other_file_is_never_replaced(sockdir):
    path = os.path.join(sockdir, "s")
    with open(path, "w") as f:
        f.write("precious")
    with child(path, seconds=0.5) as p:
        _, _, err = finish(p)
    assert "not a socket" in err
    assert read_text(path) == "precious"
    os.unlink(path)
    with child(path, seconds=30):     # killed when done
        wait_socket(path)
        ino = os.stat(path).st_ino
        with child(path, seconds=0.3) as second:
            _, _, err = finish(second)
        assert "another program is listening" in err
        assert os.stat(path).st_ino == ino
        c = Client(path)      # the first program still answers
        c.close()


def test_second_viewer_is_told_busy(sockdir):
    path = os.path.join(sockdir, "s")
    with child(path, seconds=30):     # killed when done
        wait_socket(path)
        first = Client(path)
        try:
            with pytest.raises(AttachError, match="busy"):
                Client(path)
        finally:
            first.close()
        # The first viewer gone, another one may attach.
        wait_until(lambda: _attach_ok(path), 10, "attach after the first viewer left")


def _attach_ok(path: str) -> bool:
    try:
        Client(path).close()
        return True
    except AttachError:
        return False


def test_socket_and_token_are_private(sockdir):
    path = os.path.join(sockdir, "s")
    old = os.umask(0)            # even with a permissive umask
    try:
        m = app.open_manager("c", (4, 4))
        pub = Publisher(m, path, control=True, quiet=True)
    finally:
        os.umask(old)
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        tst = os.lstat(path + ".token")
        assert stat.S_ISREG(tst.st_mode) and stat.S_IMODE(tst.st_mode) == 0o600
        assert read_text(path + ".token").strip() == pub.token
        assert not [n for n in os.listdir(sockdir) if n.startswith(".bs-")]
    finally:
        m.close()
        assert pub.stop()
    assert not os.path.exists(path) and not os.path.exists(path + ".token")


def test_tcp_binds_loopback_only():
    m = app.open_manager("c", (4, 4))
    pub = Publisher(m, "0", quiet=True)
    try:
        host, port = pub._listener.getsockname()
        assert host == "127.0.0.1" and port > 0
        c = Client(str(port))
        assert c.hello.shape == (4, 4)
        c.close()
        # Not reachable on another address of this machine (when it has one).
        try:
            ip = socket.gethostbyname(socket.gethostname())
        except OSError:
            ip = "127.0.0.1"
        if not ip.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((ip, port), timeout=2).close()
    finally:
        m.close()
        assert pub.stop()


def test_tcp_port_from_the_environment_is_printed_with_the_token():
    with child("0", seconds=30, control=True) as p:     # killed when done
        line = read_stderr_line(p, "publishing")
        port = line.split("127.0.0.1:")[1].split(";")[0].strip()
        token = line.rsplit("control token ", 1)[1].strip()
        assert len(token) == 64
        c = Client(port)
        c.close()


def test_bad_listen_value_leaves_the_program_running():
    with child("99999", seconds=0.3) as p:
        rate, _, err = finish(p)
    assert "not publishing" in err and "out of range" in err
    assert rate > 0


# -- the publisher's life follows the manager's ------------------------------------------------
def test_publisher_stops_when_the_manager_closes_or_is_dropped(sockdir, monkeypatch):
    monkeypatch.setenv(live.ENV, os.path.join(sockdir, "s"))
    monkeypatch.setattr(live_socket, "_numbers", itertools.count())   # the first manager: the name as given
    m = app.open_manager("c", (8, 8))
    wait_socket(os.path.join(sockdir, "s"), 5)
    c = Client(os.path.join(sockdir, "s"))
    m.close()
    with pytest.raises(ProgramEnded, match="the manager closed"):
        while True:
            c.recv(timeout=5)
    c.close()
    wait_until(lambda: not os.path.exists(os.path.join(sockdir, "s")), 5, "socket removed")
    # A second manager gets the next name; dropping it (no close) stops its publisher.
    m2 = app.open_manager("numpy", (8, 8))
    path2 = os.path.join(sockdir, "s.1")
    wait_socket(path2, 5)
    del m2
    gc.collect()
    wait_until(lambda: not os.path.exists(path2), 5, "publisher of a dropped manager stopped")


def test_no_viewer_costs_no_manager_calls(sockdir):
    """With nobody attached the publisher never touches the manager."""
    calls = []

    class Spy:
        backend, shape, fill, closed = "spy", (4,), 0.0, False

        def stats(self):
            calls.append("stats")
            raise AssertionError("polled without a viewer")

        front = events = stats

    spy = Spy()
    pub = Publisher(spy, os.path.join(sockdir, "s"), quiet=True)
    time.sleep(0.5)
    assert pub.stop()
    assert calls == []


# -- control -----------------------------------------------------------------------------------------
def _reply(client: Client, timeout: float = 5.0) -> Reply:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.recv(timeout=timeout)
        if isinstance(msg, Reply):
            return msg
    raise AssertionError("no reply")


@pytest.mark.parametrize("control", [False, True])
def test_control_needs_opt_in_and_the_token(sockdir, control):
    path = os.path.join(sockdir, "s")
    m = app.open_manager("c", (4, 4))
    pub = Publisher(m, path, control=control, quiet=True)
    c = Client(path)
    try:
        assert c.hello.control is control
        for token in ("", "0" * 64, pub.token[:-1] + "x", pub.token + "0"):
            c.control("pause", token)
            r = _reply(c)
            assert not r.ok and "refused" in r.message
            assert not m.stats().paused
        c.control("pause", pub.token)
        r = _reply(c)
        if not control:
            assert not r.ok and "read-only" in r.message
            assert not m.stats().paused
        else:
            assert r.ok, r.message
            assert m.stats().paused
            m.enqueue(app.Set((0, 0), 5.0))
            c.control("step", pub.token, n=1)
            assert _reply(c).ok
            c.control("resume", pub.token)
            assert _reply(c).ok and not m.stats().paused
            c.control("synchronize", pub.token)
            assert _reply(c).ok
            assert m.front()[0, 0] == 5.0
        # A hostile request (bad action) drops this viewer, nothing else.
        c._sock.sendall(frame_bytes({"type": "control", "id": 1, "action": "close", "token": pub.token}))
        with pytest.raises(AttachError, match="dropped"):
            while True:
                c.recv(timeout=5)
        assert not m.closed and pub.alive
    finally:
        c.close()
        m.close()
        assert pub.stop()


# -- hostile viewers ------------------------------------------------------------------------------------
def _hostile_sessions(path: str) -> list[str]:
    """Each hostile client in turn; returns how the publisher answered each."""
    rng = np.random.default_rng(7)
    garbage = [
        rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        struct.pack(">II", 0xFFFFFFF0, 4) + b"x" * 100,              # a huge length prefix
        struct.pack(">II", 20, 16) + b"{not json at all" + b"\0" * 4,
        frame_bytes({"type": "hello", "protocol": 1}),                # unexpected type
        frame_bytes({"type": "control", "id": -1, "action": "pause"}),
        struct.pack(">II", 12, 100) + b"12345678",                    # header longer than frame
    ]
    answers = ["dropped" if b"dropped" in garbage_answer(path, g) else "closed" for g in garbage]
    # Control requests without, with a wrong, token on a read-only program: refused, kept.
    c = Client(path)
    try:
        for token in ("", "f" * 64):
            c.control("pause", token)
            answers.append(_reply(c).message)
    finally:
        c.close()
    # A viewer that never reads: dropped once its backlog is full or stalls (the child
    # lowers the limits to 64 KiB and 1 s).
    wait_until(lambda: _attach_ok(path), 10, "the control viewer let go")
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.connect(path)
        time.sleep(0.3)
        wait_until(lambda: _attach_ok(path), 40, "the non-reading viewer dropped")
    finally:
        lazy.close()
    answers.append("lazy dropped")
    return answers


def test_hostile_viewers_leave_the_program_running_at_full_speed(sockdir):
    path = os.path.join(sockdir, "s")
    stopfile = os.path.join(sockdir, "stop")
    with child(path, period=0.002, stopfile=stopfile, low_limits=True) as p:   # until told to stop
        wait_socket(path)
        t0 = time.monotonic()
        answers = _hostile_sessions(path)
        assert p.poll() is None, "the program died"
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
        open(stopfile, "w").close()
        rate_hostile, out, _ = finish(p)
    assert answers[:6].count("dropped") >= 4, answers
    assert all("refused" in a for a in answers[6:8]), answers
    assert answers[-1] == "lazy dropped"
    # The program ran on and its producers were not held up: it kept synchronizing, and
    # the publisher thread, fed garbage, floods and a viewer that never reads, used a
    # small share of one core (CPU time, not a wall-clock rate: load cannot fake it).
    # The rate itself is `bufferscope bench`'s (live attach row), never a test's.
    f = out.split()
    epochs, pub_cpu, wall = int(f[f.index("epochs") + 1]), float(f[f.index("publisher_cpu") + 1]), \
        float(f[f.index("wall") + 1])
    assert rate_hostile > 0 and epochs > 10 and f[f.index("publishers") + 1] == "1", out
    assert pub_cpu <= 0.25 * wall, (pub_cpu, wall)


# -- the read-only manager the app shows ----------------------------------------------------------------
def test_remote_manager_mirrors_the_program_and_refuses_writes(sockdir):
    path = os.path.join(sockdir, "s")
    m = app.open_manager("c", (6, 5))
    pub = Publisher(m, path, quiet=True)
    r = RemoteManager(path)
    try:
        assert r.shape == (6, 5) and r.backend == "c"
        assert f"(pid {os.getpid()}, backend c)" in r.description
        m.enqueue(app.Fill(((0, 3), (0, 5)), 2.5))
        ep = m.synchronize(5)
        assert r.wait_for(lambda rm: rm.front_epoch >= ep, 10)
        assert same_bits(r.front(), m.front())
        assert r.stats().epoch == ep and r.synchronize(1) == ep
        evs, nxt = r.events(0)
        assert any(e.kind == "visible" and e.epoch == ep for e in evs) and nxt > 0
        with pytest.raises(ReadOnlyError):
            r.enqueue(app.Set((0, 0), 1.0))
        with pytest.raises(ReadOnlyError, match="read-only"):
            r.pause()
        with pytest.raises(ValueError):
            r.front()[0, 0] = 1.0
        r.close()                       # detach: the program runs on
        assert not m.closed and pub.alive
        m.enqueue(app.Set((5, 4), 1.0))
        m.synchronize(5)
        r2 = RemoteManager(path)
        m.close()
        assert r2.wait_for(lambda rm: bool(rm.ended), 10)
        assert "the program ended" in r2.ended
        assert r2.front().shape == (6, 5)       # the last front stays readable
        r2.close()
    finally:
        r.close()
        m.close()
        assert pub.stop()


def test_version_mismatch_is_named(sockdir):
    path = os.path.join(sockdir, "s")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        import threading

        def serve():
            conn, _ = srv.accept()
            conn.sendall(frame_bytes({"type": "hello", "protocol": 99, "shape": [2], "dtype": "float32"}))
            conn.recv(10)
            conn.close()

        t = threading.Thread(target=serve)
        t.start()
        with pytest.raises(AttachError, match="version 99; this bufferscope speaks version 1"):
            Client(path)
        t.join(10)
    finally:
        srv.close()


# -- the app on an attached program ----------------------------------------------------------------------
def test_app_shows_an_attached_program_and_detaches(qtbot, sockdir):
    from ui.attach_view import ATTACHED_BACKEND, add_attach_action, detach, open_attached_window
    from ui.control_panel import ControlPanel

    path = os.path.join(sockdir, "s")
    m = app.open_manager("c", (16, 12))
    pub = Publisher(m, path, quiet=True)
    win = open_attached_window(path)
    qtbot.addWidget(win)
    try:
        act = add_attach_action(win)
        assert act.text().startswith("Attach")
        status = win.statusbar.currentMessage()
        assert status == f"attached to {path} (pid {os.getpid()}, backend c)"
        assert win.session.backend == ATTACHED_BACKEND and win.session.shape == (16, 12)
        panel = win.findChild(ControlPanel)
        assert not panel.form.isEnabled() and not panel.scenario_box.isEnabled(), "read-only"
        m.enqueue(app.Fill(((0, 16), (0, 12)), 7.0))
        ep = m.synchronize(5)
        qtbot.waitUntil(lambda: win.session.epoch >= ep, timeout=10000)
        f = win.session.front()
        assert f is not None and float(f[3, 3]) == 7.0
        # The program ends: reported, not hung on.
        m.close()
        qtbot.waitUntil(lambda: "the program ended" in win.statusbar.currentMessage(), timeout=10000)
        ctl = win.debug_controls
        assert "ended" in ctl.status.text() and "running" not in ctl.status.text()
        assert not ctl.pause_action.isEnabled() and not ctl.step_action.isEnabled()
        assert detach(win)
        # The switch runs off the GUI thread (like any backend switch): wait for it.
        qtbot.waitUntil(lambda: win.session.backend == "c" and not win.session.busy, timeout=20000)
        assert float(win.session.front()[3, 3]) == 7.0     # the last front kept, locally
        assert panel.form.isEnabled() and panel.scenario_box.isEnabled(), "a local buffer again"
    finally:
        win.close()
        m.close()
        assert pub.stop()


def test_closing_the_attached_window_leaves_the_program_running(qtbot, sockdir):
    from ui.attach_view import open_attached_window

    path = os.path.join(sockdir, "s")
    m = app.open_manager("c", (8, 8))
    pub = Publisher(m, path, quiet=True)
    win = open_attached_window(path)
    qtbot.addWidget(win)
    try:
        win.close()
        m.enqueue(app.Set((1, 1), 3.0))
        assert m.synchronize(5) >= 1
        wait_until(lambda: _attach_ok(path), 10, "a new viewer after the window closed")
    finally:
        m.close()
        assert pub.stop()
    with pytest.raises(AttachError, match="no such socket"):
        open_attached_window(path)


def _collect_events(client: Client, pred, timeout: float = 10.0) -> list:
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred(got):
        try:
            msg = client.recv(timeout=0.5)
        except TimeoutError:
            continue
        if isinstance(msg, Update):
            got.extend(msg.events)
    return got


def test_event_payloads_arrive_exactly_within_a_budget(sockdir, monkeypatch):
    """What each update wrote (SPEC §4) reaches the viewer bit for bit; over the
    publisher's payload budget an event comes with ``payload_dropped`` instead."""
    path = os.path.join(sockdir, "s")
    m = app.open_manager("numpy", (8, 8))
    pub = Publisher(m, path, quiet=True)
    c = Client(path)
    try:
        idx = np.array([[1, 2], [3, 4], [7, 7]])
        vals = np.array([np.nan, -0.0, 1e-40], dtype=np.float32)
        m.set_many(idx, vals)
        m.enqueue(app.Fill(((0, 2), (0, 3)), np.inf))
        m.synchronize(5)
        evs = _collect_events(c, lambda g: sum(e.kind == "apply" for e in g) >= 2)
        sets = [e for e in evs if e.kind == "apply" and e.op == "set"]
        assert sets and np.array_equal(sets[0].indices, idx)
        assert same_bits(sets[0].values, vals)
        fills = [e for e in evs if e.kind == "apply" and e.op == "fill"]
        assert fills[0].region == ((0, 2), (0, 3)) and fills[0].value == np.inf
        monkeypatch.setattr(live, "MAX_EVENT_PAYLOAD", 16)
        m.set_many(np.zeros((8, 2), dtype=np.int64), np.ones(8))
        m.synchronize(5)
        evs = _collect_events(c, lambda g: any(e.kind == "apply" and e.op == "set" for e in g))
        big = [e for e in evs if e.kind == "apply" and e.op == "set"]
        assert big[0].payload_dropped and big[0].indices is None
    finally:
        c.close()
        m.close()
        assert pub.stop()
