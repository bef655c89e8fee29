"""Live attach, the viewer's side: ``bufferscope attach PATH|PORT`` (SPEC §5, §6).

``Client`` connects to a program published with ``BUFFERSCOPE_LISTEN`` (``app.live``
documents the protocol), checks its hello and yields its messages; every failure is
an ``AttachError`` whose message says what happened (no such socket, a stale one,
a busy publisher, another protocol version, the program ended). ``RemoteManager``
is a read-only ``BufferManager`` fed by a ``Client`` on a background thread, so the
app shows an attached program like a local manager. ``main(argv)`` is the
subcommand: the app on the program, or with ``--print`` one line per epoch. Qt-free.
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import stat
import sys
import threading
import time
from collections import deque
from typing import NamedTuple

import numpy as np

from .live import (
    CONTROL_ACTIONS,
    MAX_HEADER,
    PROTOCOL,
    FrameReader,
    ProtocolError,
    frame_bytes,
    is_port,
    num_in,
)
from .manager import BufferManager, Capabilities, Event, ManagerStats

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
CONNECT_TIMEOUT_S = 5.0
EVENTS_KEPT = 1 << 16


class AttachError(RuntimeError):
    """Attaching failed or the connection ended; the message says why, for a user."""


class ProgramEnded(AttachError):
    """The program closed its manager or exited; ``epoch`` is the last one seen."""

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch


class Hello(NamedTuple):
    pid: int
    program: str
    backend: str
    shape: tuple[int, ...]
    fill: float
    control: bool
    max_hz: float


class Update(NamedTuple):
    """One ``update`` message: the stats, the events, and a front when one was sent."""

    epoch: int
    stats: ManagerStats
    front_epoch: int | None
    front: np.ndarray | None      # read-only float32 of the program's shape
    events: list[Event]
    next_event: int
    skipped: int


class Reply(NamedTuple):
    id: int
    ok: bool
    action: str
    message: str
    epoch: int | None


# -- decoding (everything a publisher sends is checked: ProtocolError otherwise) ----------
def _int(h: dict, key: str, lo: int = 0, hi: int = 1 << 64) -> int:
    v = h.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v < hi:
        raise ProtocolError(f"{key!r} must be an integer in [{lo}, {hi})")
    return v


def _str(v: object, what: str, limit: int = 4096) -> str:
    if not isinstance(v, str) or len(v) > limit:
        raise ProtocolError(f"{what} must be a string")
    return v


def decode_hello(h: dict) -> Hello:
    if h.get("type") == "busy":
        raise AttachError(f"busy: {_str(h.get('message', ''), 'message')}")
    if h.get("type") != "hello":
        raise ProtocolError(f"expected hello, got {str(h.get('type'))[:40]!r}")
    version = h.get("protocol")
    if version != PROTOCOL:
        raise AttachError(f"the program speaks live-attach protocol version {str(version)[:20]}; "
                          f"this bufferscope speaks version {PROTOCOL}")
    shape = h.get("shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
            or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < 1 << 40 for n in shape)):
        raise ProtocolError("hello: bad shape")
    if h.get("dtype") != "float32":
        raise ProtocolError("hello: dtype must be float32")
    hz = num_in(h.get("max_hz", 30.0), "max_hz")
    return Hello(_int(h, "pid", 0, 1 << 32), _str(h.get("program", ""), "program"),
                 _str(h.get("backend", ""), "backend", 64), tuple(shape),
                 num_in(h.get("fill", 0.0), "fill"), bool(h.get("control", False)), hz)


def _payload(payload: memoryview, ref: object, dtype: str, what: str) -> np.ndarray:
    if (not isinstance(ref, list) or len(ref) < 2
            or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in ref[:2])):
        raise ProtocolError(f"{what}: bad payload reference")
    off, n = ref[0], ref[1]
    if off + n > payload.nbytes or n % np.dtype(dtype).itemsize:
        raise ProtocolError(f"{what}: payload reference out of range")
    return np.frombuffer(payload[off:off + n], dtype=dtype)


def _region(v: object) -> tuple[tuple[int, int], ...] | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) > 3:
        raise ProtocolError("event region must be a list of pairs")
    out = []
    for pair in v:
        if (not isinstance(pair, list) or len(pair) != 2
                or any(isinstance(x, bool) or not isinstance(x, int) for x in pair)):
            raise ProtocolError("event region must be a list of pairs")
        out.append((pair[0], pair[1]))
    return tuple(out)


_STATS_FIELDS = ("epoch", "last_seq", "applied_seq", "visible_seq", "pending", "max_pending",
                 "paused", "events_recorded")


def decode_update(h: dict, payload: memoryview, shape: tuple[int, ...]) -> Update:
    st = h.get("stats")
    if not isinstance(st, dict):
        raise ProtocolError("update: stats missing")
    values = {}
    for k in _STATS_FIELDS:
        v = st.get(k)
        if k == "paused":
            if not isinstance(v, bool):
                raise ProtocolError("update: stats.paused must be a boolean")
        elif isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
            raise ProtocolError(f"update: stats.{k} must be an integer >= 0")
        values[k] = v
    stats = ManagerStats(**values)
    front = front_epoch = None
    if h.get("front") is not None:
        front_epoch = _int(h, "front_epoch")
        arr = _payload(payload, h["front"], "<f4", "front")
        if arr.size != int(np.prod(shape)):
            raise ProtocolError("front: wrong number of elements")
        front = arr.reshape(shape).astype(np.float32, copy=False)
        front.flags.writeable = False
    rows = h.get("events", [])
    if not isinstance(rows, list):
        raise ProtocolError("update: events must be a list")
    events = []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(Event._fields):
            raise ProtocolError("update: an event row has the wrong length")
        (index, t_ns, kind, seq, count, epoch, producer, slot, op, region, value,
         indices, vals, dropped) = row
        ints = (index, t_ns, seq, count, epoch, slot)
        if any(isinstance(x, bool) or not isinstance(x, int) for x in ints):
            raise ProtocolError("update: an event's counters must be integers")
        ev = Event(index, t_ns, _str(kind, "event kind", 32), seq, count, epoch,
                   _str(producer, "producer", 1024), slot, _str(op, "event op", 32),
                   _region(region), None if value is None else num_in(value, "event value"),
                   None if indices is None else _payload(payload, indices, "<i8", "indices"),
                   None if vals is None else _payload(payload, vals, "<f4", "values"),
                   bool(dropped))
        if ev.indices is not None:
            if ev.indices.size % len(shape):
                raise ProtocolError("event indices do not fit the shape")
            ev = ev._replace(indices=ev.indices.reshape(-1, len(shape)))
        elif ev.values is not None and ev.region is not None:   # a Write's data: its region's shape
            dims = tuple(b - a for a, b in ev.region)
            if any(d < 0 for d in dims) or ev.values.size != int(np.prod(dims)):
                raise ProtocolError("event values do not fit the event's region")
            ev = ev._replace(values=ev.values.reshape(dims))
        events.append(ev)
    return Update(_int(h, "epoch"), stats, front_epoch, front, events,
                  _int(h, "next"), _int(h, "skipped"))


def decode_reply(h: dict) -> Reply:
    ep = h.get("epoch")
    return Reply(_int(h, "id", 0, 1 << 63), bool(h.get("ok")), _str(h.get("action", ""), "action", 32),
                 _str(h.get("message", ""), "message"),
                 ep if isinstance(ep, int) and not isinstance(ep, bool) else None)


# -- connecting -------------------------------------------------------------------------------
def describe(target: str) -> str:
    return f"127.0.0.1:{target}" if is_port(target) else target


def connect(target: str, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """A socket connected to ``target`` (a path or a port); AttachError saying why not."""
    if is_port(target):
        port = int(target)
        if not 1 <= port <= 65535:
            raise AttachError(f"port {target} is out of range (1 to 65535)")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except ConnectionRefusedError:
            raise AttachError(f"nothing is listening on 127.0.0.1:{port} "
                              "(is the program running with BUFFERSCOPE_LISTEN set to it?)") from None
        except OSError as exc:
            raise AttachError(f"cannot connect to 127.0.0.1:{port}: {exc.strerror or exc}") from None
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise AttachError(f"no such socket: {target} (is the program running with "
                          f"BUFFERSCOPE_LISTEN={target}?)") from None
    except OSError as exc:
        raise AttachError(f"{target}: {exc.strerror or exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise AttachError(f"{target} is not a socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(target)
    except ConnectionRefusedError:
        s.close()
        raise AttachError(f"stale socket {target}: nothing is listening on it "
                          "(the program that made it has ended)") from None
    except OSError as exc:
        s.close()
        raise AttachError(f"cannot connect to {target}: {exc.strerror or exc}") from None
    return s


class Client:
    """One connection to a publishing program. ``hello`` describes it; ``recv`` returns
    the next ``Update`` or ``Reply``; raises ``ProgramEnded`` when it ends."""

    def __init__(self, target: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.target = target
        self.where = describe(target)
        self.epoch = 0
        self._sock = connect(target, timeout)
        self._reader = FrameReader(MAX_HEADER + 64)
        self._ready: deque = deque()
        self._ids = 0
        self._lock = threading.Lock()    # sends (control) may come from another thread
        try:
            h, _ = self._next_frame(timeout, before_hello=True)
            self.hello = decode_hello(h)
        except BaseException:
            self.close()
            raise
        n = int(np.prod(self.hello.shape))
        self._reader.max_frame = MAX_HEADER + 4 * n + 64 + (64 << 20)

    def fileno(self) -> int:
        return self._sock.fileno()

    def _next_frame(self, timeout: float | None, before_hello: bool = False):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                raise TimeoutError(f"nothing from {self.where} in {timeout} s")
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                raise TimeoutError(f"nothing from {self.where} in {timeout} s") from None
            except OSError as exc:
                data = b""
                if before_hello:
                    raise AttachError(f"{self.where}: {exc.strerror or exc}") from None
            if not data:
                if before_hello:
                    raise AttachError(f"{self.where} closed the connection before saying hello")
                raise ProgramEnded(f"the program ended (last epoch {self.epoch})", self.epoch)
            self._ready.extend(self._reader.feed(data))
        return self._ready.popleft()

    def recv(self, timeout: float | None = None) -> Update | Reply:
        """The next update or reply (TimeoutError after ``timeout`` s with none)."""
        while True:
            h, payload = self._next_frame(timeout)
            kind = h["type"]
            if kind == "update":
                u = decode_update(h, payload, self.hello.shape)
                self.epoch = max(self.epoch, u.epoch, u.front_epoch or 0)
                return u
            if kind == "reply":
                return decode_reply(h)
            if kind == "bye":
                ep = h.get("epoch")
                if isinstance(ep, int) and not isinstance(ep, bool):
                    self.epoch = max(self.epoch, ep)
                reason = _str(h.get("reason", ""), "reason")
                raise ProgramEnded(f"the program ended (last epoch {self.epoch}): {reason}", self.epoch)
            if kind == "error":
                raise AttachError(f"the program dropped this viewer: {_str(h.get('message', ''), 'm')}")
            # unknown types from a newer publisher are skipped

    def __iter__(self):
        """Updates until the program ends (ends the iteration quietly then)."""
        while True:
            try:
                msg = self.recv()
            except ProgramEnded:
                return
            if isinstance(msg, Update):
                yield msg

    def control(self, action: str, token: str, n: int = 1) -> int:
        """Send a control request; its ``Reply`` comes through ``recv``. Returns its id."""
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(CONTROL_ACTIONS)}")
        with self._lock:
            self._ids += 1
            rid = self._ids
            data = frame_bytes({"type": "control", "id": rid, "action": action, "token": token,
                                "n": int(n)})
            try:
                self._sock.sendall(data)
            except OSError as exc:
                raise ProgramEnded(f"the program ended (last epoch {self.epoch}): "
                                   f"{exc.strerror or exc}", self.epoch) from None
        return rid

    def close(self) -> None:
        # shutdown first: a thread blocked in recv on this socket keeps the kernel socket
        # open past close(), so the program would not see the detach until its next frame.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass


def read_token(target: str) -> str | None:
    """The token a program wrote next to its socket (None when there is none)."""
    if is_port(target):
        return None
    try:
        with open(target + ".token", encoding="ascii") as f:
            return f.read(256).strip()
    except (OSError, UnicodeDecodeError):
        return None


# -- a read-only manager fed by a client ----------------------------------------------------
class ReadOnlyError(RuntimeError):
    """An attached program cannot be changed from the viewer."""


class RemoteManager(BufferManager):
    """A running program's manager, seen through a ``Client`` (read-only).

    A background thread receives the program's updates: ``front()`` is the latest
    front received, ``stats()`` the latest stats, ``events(since)`` the events kept
    (the last ``EVENTS_KEPT``). ``synchronize`` waits nothing: it returns the epoch
    last received. Updates cannot be enqueued (``ReadOnlyError``); pause, resume
    and step are sent to the program when a ``token`` is given and it allows
    control, and refused otherwise. When the program ends, ``ended`` says so and
    the last front, stats and events stay readable. ``close()`` detaches and
    leaves the program running.
    """

    capabilities = Capabilities(read_only=True)

    def __init__(self, target: str, token: str | None = None,
                 timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.client = Client(target, timeout)
        h = self.client.hello
        super().__init__(h.shape, h.fill, 1)
        self.backend = h.backend
        self.hello = h
        self.target = target
        self.token = token
        self.ended: str = ""        # why the stream ended ("" while it runs)
        self.replies: deque[Reply] = deque(maxlen=64)
        self.updates_received = 0
        self._cond = threading.Condition()
        front = np.full(h.shape, h.fill, dtype=np.float32)
        front.flags.writeable = False
        self._front_arr = front
        self._front_epoch = 0
        self._stats_now = ManagerStats(0, 0, 0, 0, 0, 1, False, 0)
        self._events_kept: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self._thread = threading.Thread(target=self._receive, name=f"bufferscope-attach-{target}",
                                        daemon=True)
        self._thread.start()

    @property
    def description(self) -> str:
        """"<where> (pid N, backend c)" for a status bar."""
        return f"{self.client.where} (pid {self.hello.pid}, backend {self.hello.backend})"

    def _receive(self) -> None:
        while not self._closed:
            try:
                msg = self.client.recv(0.5)
            except TimeoutError:
                continue
            except ProgramEnded as exc:
                self._end(str(exc))
                return
            except (AttachError, ProtocolError, OSError) as exc:
                self._end("" if self._closed else f"the connection failed: {exc}")
                return
            with self._cond:
                if isinstance(msg, Reply):
                    self.replies.append(msg)
                else:
                    self.updates_received += 1
                    self._stats_now = msg.stats
                    if msg.front is not None:
                        self._front_arr, self._front_epoch = msg.front, msg.front_epoch
                    self._events_kept.extend(msg.events)
                self._cond.notify_all()

    def _end(self, why: str) -> None:
        with self._cond:
            self.ended = why or "detached"
            self._cond.notify_all()

    def wait_for(self, pred, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until ``pred(self)`` holds; for tests and tools."""
        with self._cond:
            return self._cond.wait_for(lambda: pred(self), timeout)

    @property
    def front_epoch(self) -> int:
        return self._front_epoch

    # -- the contract, read-only -------------------------------------------------------------
    def _front(self) -> np.ndarray:
        return self._front_arr

    def _stats(self) -> ManagerStats:
        st = self._stats_now
        # The epoch is the front's: what front() returns belongs to it.
        return ManagerStats(self._front_epoch, st.last_seq, st.applied_seq, st.visible_seq,
                            st.pending, st.max_pending, st.paused, st.events_recorded)

    def _events(self, since: int) -> tuple[list[Event], int]:
        with self._cond:
            evs = [e for e in self._events_kept if e.index >= since]
            nxt = self._events_kept[-1].index + 1 if self._events_kept else since
        return evs, max(nxt, since)

    def _synchronize(self, timeout: float | None) -> int:
        return self._front_epoch

    def _refuse(self, *_a) -> None:
        raise ReadOnlyError(f"{self.client.where} is attached read-only: updates cannot be enqueued")

    _enqueue = _enqueue_many = _set_many = _inject_worker_fault = _refuse

    def _control(self, action: str, n: int = 1) -> None:
        if self.ended:
            raise ReadOnlyError(f"{action}: {self.ended}")
        if not self.hello.control:
            raise ReadOnlyError(f"{action}: the program is read-only (it did not set "
                                "BUFFERSCOPE_LISTEN_CONTROL=1)")
        if not self.token:
            raise ReadOnlyError(f"{action}: no control token (read from {self.target}.token)")
        self.client.control(action, self.token, n)

    def _set_paused(self, paused: bool) -> None:
        self._control("pause" if paused else "resume")

    def step(self, n: int = 1) -> None:
        self._check_open()
        self._control("step", int(n))

    def _step(self, n: int) -> None:
        self._control("step", n)

    def close(self) -> None:
        """Detach: the program runs on. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.client.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(5.0)


# -- bufferscope attach ----------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, exit status 2 (SPEC §6)
        raise _Usage(message)


class _Usage(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bufferscope attach",
                description="Show a running program's buffer manager: the program was started "
                "with BUFFERSCOPE_LISTEN=PATH (a Unix socket) or =PORT (127.0.0.1).")
    p.add_argument("target", metavar="PATH|PORT", help="the program's socket path or port")
    p.add_argument("--print", "--headless", dest="headless", action="store_true",
                   help="print one line per epoch instead of opening the app")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="with --print: stop after N epochs")
    p.add_argument("--token", default=None,
                   help="control token (default: read PATH.token when it exists)")
    p.add_argument("--timeout", type=float, default=CONNECT_TIMEOUT_S,
                   help="seconds to wait for the program to answer")
    return p


def _err(msg: str) -> None:
    print(f"bufferscope attach: error: {msg}", file=sys.stderr)


def run_print(target: str, epochs: int | None, timeout: float, out=None) -> int:
    """``--print``: one line per epoch received; the exit status."""
    out = out or sys.stdout
    try:
        client = Client(target, timeout)
    except AttachError as exc:
        _err(str(exc))
        return EXIT_FAIL
    except ProtocolError as exc:
        _err(f"{describe(target)} does not speak the live-attach protocol: {exc}")
        return EXIT_FAIL
    h = client.hello
    print(f"attached to {client.where} (pid {h.pid}, backend {h.backend}) "
          f"shape {'x'.join(map(str, h.shape))}", file=out, flush=True)
    seen = 0
    try:
        while epochs is None or seen < epochs:
            msg = client.recv()
            if not isinstance(msg, Update) or msg.front is None:
                continue
            f = msg.front
            finite = f[np.isfinite(f)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
            print(f"epoch {msg.front_epoch} visible_seq {msg.stats.visible_seq} "
                  f"pending {msg.stats.pending} events {len(msg.events)} skipped {msg.skipped} "
                  f"min {lo} max {hi}", file=out, flush=True)
            seen += 1
    except ProgramEnded as exc:
        print(str(exc), file=out, flush=True)
    except (AttachError, ProtocolError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``bufferscope attach PATH|PORT [--print]``: the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.epochs is not None and args.epochs < 1:
            raise _Usage("--epochs must be >= 1")
        if not args.timeout > 0:
            raise _Usage("--timeout must be > 0 seconds")
        if not args.target or (is_port(args.target) and not 1 <= int(args.target) <= 65535):
            raise _Usage(f"bad target {args.target!r}: a socket path or a port from 1 to 65535")
    except _Usage as exc:
        _err(str(exc))
        return EXIT_USAGE
    if args.headless:
        return run_print(args.target, args.epochs, args.timeout)
    token = args.token or read_token(args.target)
    # The UI is a layer above app/: loaded by name only now (as app.cli does).
    return importlib.import_module("ui.attach_view").gui(args.target, token, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
