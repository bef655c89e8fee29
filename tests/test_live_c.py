"""Live attach from a pure C program (SPEC §5 "Live attach", docs/live-attach.md):
libbufferscope publishes a manager made while BUFFERSCOPE_LISTEN is set, speaking
app/live.py's protocol, so the unchanged ``app.attach`` client watches it. The
example program is built through pkg-config (as tests/test_libbufferscope.py does)
and run as a real child process; what a viewer sees is compared bit for bit with
the replay of the program's own trace; hostile and lazy viewers leave it running
and its results unchanged. Every wait has a timeout; no timing assertions."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import reaped, replay_epochs, wait_until
from test_libbufferscope import (  # noqa: F401  (lib is a fixture)
    CC,
    EXAMPLE,
    SANITIZERS,
    SRC,
    assert_same_floats,
    build_with_pkg_config,
    lib,
)
from test_live import (
    _attach_ok,
    _reply,
    check_event_order,
    read_stderr_line,
    read_text,
    updates_until_end,
    wait_socket,
)

from app.attach import AttachError, Client, RemoteManager, read_token

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = ["--syncs", "120", "--delay-ms", "50", "--events", "65536"]   # about 6 s, 120 epochs
LONG_RUN = ["--syncs", "300", "--delay-ms", "40"]   # about 12 s: room for several steps on a busy machine

# A program that waits for files to appear, so a test can drive it step by step:
# "go" makes it enqueue one set (not synchronized), "stop" makes it destroy the manager.
CONTROLLED = r"""
#define _POSIX_C_SOURCE 200809L
#include <bufferscope.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
static int wait_file(const char *dir, const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    for (int i = 0; i < 12000; i++) {          /* 120 s at most */
        if (stat(p, &st) == 0) return 0;
        struct timespec t = {0, 10000000};
        nanosleep(&t, NULL);
    }
    return 1;
}
int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    bs_config cfg = {0};
    cfg.ndim = 2; cfg.shape[0] = 4; cfg.shape[1] = 4; cfg.fill = 1.5f;
    cfg.max_pending = 64; cfg.event_capacity = 1024;
    bs_manager *m;
    if (bs_create(&cfg, &m)) return 3;
    if (wait_file(argv[1], "go")) return 4;
    if (bs_enqueue_set(m, 0, 0, 0, 5.0, 1, 1, NULL)) return 5;
    if (wait_file(argv[1], "stop")) return 6;
    const float *f;
    uint64_t epoch;
    bs_front(m, &f, &epoch);
    printf("epoch %llu front00 %g\n", (unsigned long long)epoch, f[0]);
    bs_destroy(m);
    return 0;
}
"""


@pytest.fixture
def sockdir():
    """A short private directory (Unix socket paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="bs-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def programs(lib, tmp_path_factory):  # noqa: F811  (lib is test_libbufferscope's fixture)
    d = tmp_path_factory.mktemp("live_c")
    src = d / "controlled.c"
    src.write_text(CONTROLLED)
    return {"example": build_with_pkg_config(EXAMPLE, d / "racing_producers"),
            "controlled": build_with_pkg_config(src, d / "controlled")}


def spawn(exe, address: str, *args: str, control: bool = False, trace: str | None = None,
          env_extra: dict | None = None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("BUFFERSCOPE_LISTEN_CONTROL", "BUFFERSCOPE_TRACE")}
    env.update(env_extra or {})
    env["BUFFERSCOPE_LISTEN"] = address
    if control:
        env["BUFFERSCOPE_LISTEN_CONTROL"] = "1"
    if trace:
        env["BUFFERSCOPE_TRACE"] = trace
    return subprocess.Popen([str(exe), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def child(exe, address: str, *args: str, **kw):
    """A running C program; killed (never left behind) if the test fails."""
    return reaped(spawn(exe, address, *args, **kw))


def finish(p: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    """The example ran to its end: (final epoch, stdout, stderr)."""
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    words = out.split()
    assert words[:1] == ["epoch"], out
    return int(words[1]), out, err


def thread_names(pid: int) -> list[str]:
    names = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            names.append(read_text(f"/proc/{pid}/task/{t}/comm").strip())
    return names


# -- watching a C program --------------------------------------------------------------------------
def test_viewer_watches_a_c_program_bit_for_bit_until_it_ends(programs, sockdir, tmp_path):
    path = os.path.join(sockdir, "s")
    trace, npy = str(tmp_path / "run.jsonl"), str(tmp_path / "front.npy")
    with child(programs["example"], path, *RUN, npy, trace=trace) as p:
        line = read_stderr_line(p, "bufferscope: publishing")
        assert line.strip() == f"bufferscope: publishing the c manager (64, 64) on {path}"
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert not [n for n in os.listdir(sockdir) if n.startswith(".bs-")]
        wait_until(lambda: "bs-publish" in thread_names(p.pid), 20, "a thread named bs-publish")
        c = Client(path)
        try:
            h = c.hello
            assert (h.pid, h.backend, h.shape, h.fill, h.control) == (p.pid, "c", (64, 64), 0.0, False)
            assert h.program == "racing_producers"
            updates, ended = updates_until_end(c, timeout=120)
        finally:
            c.close()
        final_epoch, _, _ = finish(p)
    assert "the manager closed" in str(ended) and ended.epoch == final_epoch
    assert not os.path.exists(path), "the socket file outlived the program"
    fronts = [(u.front_epoch, u.front) for u in updates if u.front is not None]
    assert len({e for e, _ in fronts}) >= 3, "fewer than three epochs seen"
    # The last front seen is the program's final front, bit for bit.
    assert fronts[-1][0] == final_epoch
    np.testing.assert_array_equal(fronts[-1][1].view(np.uint32), np.load(npy).view(np.uint32))
    # Every front seen is the replay of the trace at that epoch (never a torn one).
    _, replayed, _ = replay_epochs(trace)
    assert len(replayed) == final_epoch
    for epoch, front in fronts:
        expected = np.zeros((64, 64), np.float32) if epoch == 0 else replayed[epoch - 1]
        assert_same_floats(front, expected)
    # The events: in order, with what each update wrote.
    assert check_event_order(updates) > 0
    events = [e for u in updates for e in u.events]
    kinds = {e.kind for e in events}
    assert {"enqueue", "apply", "swap", "visible"} <= kinds
    writes = [e for e in events if e.kind == "enqueue" and e.op == "write" and not e.payload_dropped]
    sets = [e for e in events if e.kind == "enqueue" and e.indices is not None]
    assert writes and sets
    w = writes[-1]
    r = w.region
    assert w.producer == "thread-2" and (r[0][1] - r[0][0], r[1][1] - r[1][0]) == (24, 24)
    assert w.values.shape == (24, 24)          # the region's elements, in its shape
    # producer_write's block: (r + k) * -0.5 for round r; the first value names the round
    rnd = int(-2 * float(w.values.flat[0]))
    np.testing.assert_array_equal(w.values.ravel(), (rnd + np.arange(576)).astype(np.float32) * -0.5)
    s = sets[-1]
    assert s.producer == "thread-1" and s.indices.shape == (s.count, 2) and s.values.shape == (s.count,)


def test_print_mode_on_a_c_program(programs, sockdir):
    path = os.path.join(sockdir, "s")
    with child(programs["example"], path, *RUN) as p:
        wait_socket(path)
        r = subprocess.run([sys.executable, "-m", "app", "attach", path, "--print"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        final_epoch, _, _ = finish(p)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"attached to {path} (pid {p.pid}, backend c) shape 64x64")
    assert any(ln.startswith("epoch ") for ln in lines[1:])
    assert lines[-1].startswith(f"the program ended (last epoch {final_epoch}): the manager closed")


def test_second_viewer_busy_and_tcp_on_loopback(programs):
    with child(programs["example"], "0", *LONG_RUN) as p:
        line = read_stderr_line(p, "bufferscope: publishing")
        where = line.split(" on ")[-1].strip()
        host, port = where.split(":")
        assert host == "127.0.0.1"
        first = Client(port)
        try:
            assert first.hello.pid == p.pid
            with pytest.raises(AttachError, match="busy"):
                Client(port)
        finally:
            first.close()
        wait_until(lambda: _attach_ok(port), 20, "attach after the first viewer left")
        finish(p)


def test_bad_and_stale_sockets(programs, sockdir):
    path = os.path.join(sockdir, "s")
    # Nothing there / a stale socket: the client says so.
    with pytest.raises(AttachError, match="no such socket"):
        Client(path)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()                               # the file stays, nothing listens
    with pytest.raises(AttachError, match="stale socket"):
        Client(path)
    # A C program replaces a stale socket and publishes.
    with child(programs["example"], path, *LONG_RUN) as p:
        read_stderr_line(p, f"publishing the c manager (64, 64) on {path}")
        c = Client(path)
        c.close()
        # A second program on the live socket is refused, with a clear message, and runs on.
        with child(programs["example"], path) as q:
            line = read_stderr_line(q, "bufferscope: not publishing")
            assert line.strip() == (f"bufferscope: not publishing the c manager: {path}: "
                                    "another program is listening on it")
            finish(q)
        finish(p)
    # Any other kind of file is left alone; the program runs unpublished.
    with open(path, "w") as f:
        f.write("keep me")
    with child(programs["example"], path) as q:
        line = read_stderr_line(q, "bufferscope: not publishing")
        assert "exists and is not a socket; it is left alone" in line
        finish(q)
    assert read_text(path) == "keep me"
    # A directory that does not exist: one line, no publishing, the program runs.
    with child(programs["example"], os.path.join(sockdir, "no", "such", "dir", "s")) as q:
        assert "cannot create the socket there" in read_stderr_line(q, "bufferscope: not publishing")
        finish(q)


# -- control --------------------------------------------------------------------------------------------
def test_control_with_the_token_pauses_steps_and_resumes(programs, sockdir):
    path = os.path.join(sockdir, "s")
    with child(programs["controlled"], path, sockdir, control=True) as p:
        line = read_stderr_line(p, "bufferscope: publishing")
        assert line.strip().endswith(f"on {path}; control token in {path}.token")
        st = os.lstat(path + ".token")
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        token = read_token(path)
        assert token and len(token) == 64 and int(token, 16) >= 0
        # Without the token (or with a wrong one): refused, nothing changes.
        c = Client(path)
        try:
            assert c.hello.control is True and c.hello.fill == 1.5
            for bad in ("", "0" * 64, token[:-1] + ("0" if token[-1] != "0" else "1"), token + "0"):
                c.control("pause", bad)
                r = _reply(c, 20)
                assert not r.ok and r.message == "refused: wrong or missing token"
            c.control("pause", token)
            assert _reply(c, 20).ok
        finally:
            c.close()
        rm = None
        wait_until(lambda: _attach_ok(path), 20, "the first viewer let go")
        rm = RemoteManager(path, token=token)
        try:
            assert rm.wait_for(lambda m: m.stats().paused, 20), "pause not seen"
            open(os.path.join(sockdir, "go"), "w").close()      # the program enqueues one set
            assert rm.wait_for(lambda m: m.stats().last_seq == 1 and m.stats().pending == 1, 20)
            rm.step(1)
            assert rm.wait_for(lambda m: m.stats().applied_seq == 1, 20), "step not honoured"
            rm.resume()
            assert rm.wait_for(lambda m: not m.stats().paused, 20), "resume not honoured"
            rm.client.control("synchronize", token)
            assert rm.wait_for(lambda m: m.front_epoch >= 1 and m.front()[0, 0] == 5.0, 20)
            assert all(r.ok for r in rm.replies), list(rm.replies)
            open(os.path.join(sockdir, "stop"), "w").close()
            assert rm.wait_for(lambda m: bool(m.ended), 30)
            assert "the manager closed" in rm.ended
            assert float(rm.front()[0, 0]) == 5.0 and float(rm.front()[1, 1]) == 1.5
        finally:
            rm.close()
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out.split() == ["epoch", "1", "front00", "5"]
    assert not os.path.exists(path) and not os.path.exists(path + ".token")


def test_python_programs_get_one_publisher_per_manager(sockdir):
    """The Python package claims BUFFERSCOPE_LISTEN (bs_listen_env_enable(0)): its C
    managers are published by app.live alone, never twice."""
    path = os.path.join(sockdir, "s")
    code = ("import threading, app\n"
            "m = app.open_manager('c', (4, 4))\n"
            "import os\n"
            "names = os.listdir(f'/proc/{os.getpid()}/task')\n"
            "comms = [open(f'/proc/{os.getpid()}/task/{t}/comm').read().strip() for t in names]\n"
            "print('bs-publish' in comms)\n"
            "m.close()\n")
    env = {**os.environ, "BUFFERSCOPE_LISTEN": path, "PYTHONPATH": ROOT}
    env.pop("BUFFERSCOPE_LISTEN_CONTROL", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("bufferscope: publishing")]
    assert lines == [f"bufferscope: publishing the c manager (4, 4) on {path}"], r.stderr
