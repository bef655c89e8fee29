"""Fuzzing the live-attach protocol (SPEC §5: no client message can crash, stall or
slow the program). The parsers raise nothing but ``ProtocolError`` (the client's hello
also ``AttachError``, for a busy publisher or another version) on any input; a live
publisher fed random message sequences keeps running, keeps the manager unchanged
and takes the next viewer."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import tempfile

import numpy as np
import pytest
from conftest import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import app
from app.attach import AttachError, Client, decode_hello, decode_reply, decode_update
from app.live import (
    CONTROL_ACTIONS,
    MAX_CLIENT_FRAME,
    FrameReader,
    ProtocolError,
    Publisher,
    frame_bytes,
    parse_control,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from(["nan", "inf", "-inf", "update", "hello", "control", "pause"]),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children,
                                                                        max_size=6),
    max_leaves=12,
)

KEYS = ["type", "protocol", "shape", "dtype", "fill", "pid", "stats", "front", "front_epoch",
        "events", "epoch", "next", "skipped", "id", "ok", "action", "token", "n", "message"]

headers = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=10)


def plausible_update():
    """Updates close to valid, so the checks deep inside are reached."""
    stats = st.fixed_dictionaries({k: st.integers(0, 10) for k in
                                   ("epoch", "last_seq", "applied_seq", "visible_seq", "pending",
                                    "max_pending", "events_recorded")}).map(lambda d: {**d, "paused": False})
    ref = st.lists(st.integers(-2, 64), min_size=0, max_size=4)
    row = st.lists(json_values | ref, min_size=14, max_size=14)
    return st.fixed_dictionaries({
        "type": st.just("update"), "stats": stats | json_values, "epoch": st.integers(-1, 5),
        "next": st.integers(0, 5), "skipped": st.integers(0, 5),
        "front": st.none() | ref, "front_epoch": st.integers(0, 3) | json_values,
        "events": st.lists(row, max_size=3) | json_values,
    })


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=12), st.integers(8, 200))
def test_frame_reader_raises_only_protocol_error(chunks, max_frame):
    r = FrameReader(max_frame, max_frame)
    try:
        for c in chunks:
            for header, payload in r.feed(c):
                assert isinstance(header, dict) and isinstance(header["type"], str)
                assert isinstance(payload, memoryview)
    except ProtocolError:
        pass


def _frame(header_bytes: bytes, payload: bytes) -> bytes:
    lengths = struct.pack(">II", 4 + len(header_bytes) + len(payload), len(header_bytes))
    return lengths + header_bytes + payload


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers | plausible_update(), st.binary(max_size=96), st.sampled_from([(4,), (2, 3), (1, 2, 2)]))
def test_decoders_raise_only_protocol_error(header, payload, shape):
    raw = json.dumps(header).encode()
    try:
        frames = FrameReader(1 << 16).feed(_frame(raw, payload))
    except ProtocolError:
        return
    for h, p in frames:
        for decode, args in ((decode_update, (h, p, shape)), (decode_reply, (h,)), (parse_control, (h,))):
            try:
                decode(*args)
            except ProtocolError:
                pass
        try:
            decode_hello(h)
        except (ProtocolError, AttachError):
            pass


# -- a live publisher under random message sequences ------------------------------------------
def _message(kind: str, token: str, extra) -> bytes:
    if kind == "valid-control":
        return frame_bytes({"type": "control", "id": 1, "action": extra if extra in CONTROL_ACTIONS
                            else "pause", "token": token})
    if kind == "header":
        return _frame(json.dumps(extra).encode(), b"")
    if kind == "bytes":
        return extra if isinstance(extra, bytes) else b""
    if kind == "huge":
        return struct.pack(">II", MAX_CLIENT_FRAME + 1 + (extra if isinstance(extra, int) else 0), 4)
    return b""


messages = st.lists(
    st.one_of(
        st.tuples(st.just("valid-control"), st.sampled_from([*CONTROL_ACTIONS, "quit"])),
        st.tuples(st.just("header"), headers),
        st.tuples(st.just("bytes"), st.binary(max_size=200)),
        st.tuples(st.just("huge"), st.integers(0, 1 << 20)),
    ),
    max_size=6,
)


@pytest.fixture(scope="module")
def published():
    d = tempfile.mkdtemp(prefix="bs-", dir="/tmp")
    path = os.path.join(d, "s")
    m = app.open_manager("c", (6, 7))
    m.enqueue(app.Fill(((0, 6), (0, 7)), 1.5))
    m.synchronize(5)
    pub = Publisher(m, path, control=False, quiet=True)
    yield m, pub, path
    m.close()
    pub.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """The module's publisher lives across these tests; conftest's guard would flag it."""
    yield


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages, st.booleans())
def test_publisher_survives_random_message_sequences(published, seq, with_token):
    m, pub, path = published
    before = np.array(m.front(), copy=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        token = pub.token if with_token else "x"
        for kind, extra in seq:
            with contextlib.suppress(OSError):
                s.sendall(_message(kind, token, extra))
        s.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while s.recv(1 << 16):
                pass
    finally:
        s.close()
    wait_until(lambda: pub.viewer is None, 5, "the viewer let go")
    assert pub.alive
    st_ = m.stats()
    assert not st_.paused and st_.epoch == 1
    assert np.array_equal(np.asarray(m.front()), before)


def test_publisher_takes_a_viewer_after_the_fuzzing(published):
    m, pub, path = published
    c = Client(path)
    try:
        assert c.hello.shape == (6, 7)
    finally:
        c.close()
    assert pub.alive and not m.closed
