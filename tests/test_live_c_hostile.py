"""Live attach from a pure C program, under attack (SPEC §5 "Live attach"): garbage,
malformed and hostile frames, a flood of refused requests and viewers that never read
leave the program running and its results unchanged (its front is its own trace's
replay, bit for bit); the publisher runs clean under ASan+UBSan and TSan, and the
reader of what viewers send is fuzzed. The programs and helpers are
tests/test_live_c.py's. Every wait has a timeout; no timing assertions."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess

import numpy as np
import pytest
import test_live_c
from conftest import replay_epochs, wait_until
from test_libbufferscope import CC, EXAMPLE, SANITIZERS, SRC, lib  # noqa: F401  (lib: a fixture)
from test_live import _attach_ok, _reply, garbage_answer, updates_until_end, wait_socket
from test_live_c import ROOT, child, finish

from app.attach import Client
from app.live import FrameReader, frame_bytes

programs = test_live_c.programs      # the fixtures: the example built through pkg-config,
sockdir = test_live_c.sockdir        # a short private directory for sockets


# -- hostile and lazy viewers ------------------------------------------------------------------------
def raw(header: bytes, declared: int | None = None) -> bytes:
    """A frame around ``header`` bytes as they are (``declared``: a header length that lies)."""
    return struct.pack(">II", 4 + len(header), len(header) if declared is None else declared) + header


GARBAGE = [
    np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    struct.pack(">II", 0xFFFFFFF0, 4) + b"x" * 100,              # a huge length prefix
    struct.pack(">II", 20, 16) + b"{not json at all" + b"\0" * 4,
    frame_bytes({"type": "hello", "protocol": 1}),                # unexpected type
    frame_bytes({"type": "control", "id": -1, "action": "pause"}),
    frame_bytes({"type": "control", "id": 1, "action": "close"}),
    frame_bytes({"type": "control", "id": 1.5, "action": "pause"}),
    frame_bytes({"type": "control", "id": 1, "action": "step", "n": 1 << 40}),
    frame_bytes({"type": "control", "id": 1, "action": "pause", "token": "t" * 300}),
    struct.pack(">II", 12, 100) + b"12345678",                    # header longer than frame
    raw(b"[1,2]\n"),                                              # JSON, not an object
    raw(b'{"t"}'),                                                # a broken object
    raw(b'{"type":"control"\xff}'),                               # not UTF-8
    raw(b'{"type":"control","action":"pause","x":' + b"[" * 200 + b"]" * 200 + b"}"),  # deep
    raw(b'{"type":"control","action":"step","n":NaN}'),           # not JSON
    raw(b'{"type":"control","action":"pause"} {}'),               # trailing data
    raw(b'{"type":"control","action":"pause","token":"\x01"}'),   # a raw control character
    raw(b'{"type":"control","action":"\\ud800x"}'),             # a lone surrogate, echoed
    raw(b'{"type":"\\udfff' + "\u00e9".encode() * 60 + b'"}'),    # and a long type
]


def test_hostile_and_lazy_viewers_leave_the_program_running_unchanged(programs, sockdir, tmp_path):
    path = os.path.join(sockdir, "s")
    trace, npy = str(tmp_path / "run.jsonl"), str(tmp_path / "front.npy")
    with child(programs["example"], path, "--syncs", "150", "--delay-ms", "40", "--events", "4096",
               npy, trace=trace) as p:
        wait_socket(path)
        answers = [garbage_answer(path, g, timeout=20) for g in GARBAGE]
        assert p.poll() is None, "the program died"
        # Control requests on a read-only program: refused, the program unchanged.
        c = Client(path)
        try:
            for token in ("", "f" * 64):
                c.control("pause", token)
                r = _reply(c, 20)
                assert not r.ok and r.message == ("refused: the program is read-only (it did not "
                                                  "set BUFFERSCOPE_LISTEN_CONTROL=1)")
                assert r.action == "pause" and r.epoch is not None
        finally:
            c.close()
        # A viewer that never reads, held until the program ends: the program is not blocked.
        wait_until(lambda: _attach_ok(path), 20, "the control viewer let go")
        lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            lazy.connect(path)
            final_epoch, _, _ = finish(p)
        finally:
            lazy.close()
    for g, a in zip(GARBAGE, answers):   # well-formed frames, the last one an error
        frames = FrameReader(1 << 24).feed(a)
        assert frames[0][0]["type"] == "hello", g[:40]
        assert frames[-1][0]["type"] == "error", (g[:40], a[-200:])
        assert frames[-1][0]["message"].startswith("dropped: "), (g[:40], a[-200:])
    assert b"unknown control action '?" in answers[-2]
    assert b"unexpected message type '?" in answers[-1]
    assert b"frame of 4294967280 bytes (at most 65536)" in answers[1]
    assert b"unexpected message type 'hello'" in answers[3]
    assert b"unknown control action 'close'" in answers[5]
    assert b"step count must be" in answers[7]
    # The program ran to its end unchanged: its front is its trace's replay.
    _, replayed, _ = replay_epochs(trace)
    assert len(replayed) == final_epoch
    np.testing.assert_array_equal(np.load(npy).view(np.uint32), replayed[-1].view(np.uint32))


@pytest.mark.parametrize("limits", [["-DLP_MAX_BACKLOG=65536"], ["-DLP_STALL_NS=1000000000LL"]],
                         ids=["backlog", "stall"])
def test_a_viewer_that_never_reads_is_dropped(tmp_path, sockdir, limits):
    """Built with low limits (64 KiB queued, or 1 s without reading): a viewer that
    never reads is dropped, another attaches and watches the program to its end."""
    exe = tmp_path / "racing"
    cmd = [CC, "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread", *limits, f"-I{SRC}",
           str(EXAMPLE), str(SRC / "bufferscope.c"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    path = os.path.join(sockdir, "s")
    with child(exe, path, "--syncs", "200", "--delay-ms", "40", "--events", "65536") as p:
        wait_socket(path)
        lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            lazy.connect(path)
            wait_until(lambda: _attach_ok(path), 60, "the lazy viewer dropped")
            assert p.poll() is None, "the program died"
            lazy.settimeout(30)              # the publisher closed it: what it holds, then EOF
            while lazy.recv(1 << 16):
                pass
            c = Client(path)
            try:
                updates, ended = updates_until_end(c, timeout=120)
            finally:
                c.close()
        finally:
            lazy.close()
        final_epoch, _, _ = finish(p)
    assert updates and ended.epoch == final_epoch


# -- under sanitizers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sanitizer", list(SANITIZERS))
def test_publisher_under_sanitizer(tmp_path, sockdir, sanitizer):
    """The example with the library compiled in, under ASan+UBSan / TSan: hostile
    frames, then a viewer that watches to the end; no report, the run completes."""
    exe = tmp_path / "racing"
    cmd = [CC, "-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread",
           *SANITIZERS[sanitizer], f"-I{SRC}", str(EXAMPLE), str(SRC / "bufferscope.c"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    path = os.path.join(sockdir, "s")
    env = {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1", "TSAN_OPTIONS": "halt_on_error=1"}
    with child(exe, path, "--syncs", "200", "--delay-ms", "40", "--events", "4096",
               env_extra=env) as p:
        wait_socket(path, 60)
        answers = [garbage_answer(path, g, timeout=20) for g in GARBAGE]
        c = Client(path, timeout=30)
        try:
            updates, ended = updates_until_end(c, timeout=300)
        finally:
            c.close()
        out, err = p.communicate(timeout=300)
    report = out + err
    assert p.returncode == 0, report[-6000:]
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer"):
        assert marker not in report, report[-6000:]
    assert all(b"dropped" in a for a in answers)
    assert updates and "the manager closed" in str(ended)


def test_fuzz_the_viewer_message_reader_short_run(tmp_path):
    """A short libFuzzer run of the reader of what viewers send (live_proto.c), under
    ASan+UBSan, seeded with the hostile frames above; `make fuzz-live` runs a long one."""
    clang = shutil.which("clang")
    if clang is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("clang is not installed (make deps installs it)")
        pytest.skip("clang is not installed (make deps installs it)")
    exe = tmp_path / "fuzz_live_proto"
    cmd = [clang, "-std=c11", "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
           "-fno-sanitize-recover=all", f"-I{SRC}", os.path.join(ROOT, "fuzz", "fuzz_live_proto.c"),
           "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-4000:]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = [g[8:] for g in GARBAGE] + [frame_bytes({"type": "control", "id": 3, "action": "step",
                                                     "n": 2, "token": "ab" * 32})[8:]]
    for k, seed in enumerate(seeds):
        (corpus / f"seed{k}").write_bytes(seed)
    r = subprocess.run([str(exe), "-max_total_time=10", "-timeout=10", "-rss_limit_mb=2048",
                        "-max_len=4096", str(corpus)], capture_output=True, text=True, timeout=120)
    report = r.stdout + r.stderr
    assert r.returncode == 0, report[-6000:]
    assert "Done" in report, report[-3000:]
