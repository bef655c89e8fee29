"""Live attach, the program's side: publish a manager's front and events on a local socket.

A program started with ``BUFFERSCOPE_LISTEN=<socket path or port>`` publishes every
manager it opens (``open_manager`` starts a ``Publisher``) for ``bufferscope attach``
(``app.attach``), the way Tracy streams a running program to its viewer. The first
manager gets the value as given; later ones ``<path>.1``, ``<path>.2``, … (or the
next port numbers; port 0 always asks the system for a free one).

Where
    A path: a Unix socket, mode 0600 from its creation (bound in a private 0700
    directory, then hard-linked into place, so it is never reachable with a wider
    mode and never replaces anything that appears at the path meanwhile). An
    existing socket file at the path is replaced only when nothing answers on it
    (a connect is refused: a stale socket left by a program that died); a live
    socket or any other kind of file is left alone and nothing is published. A
    port number (all digits): TCP bound to 127.0.0.1 only. One line on stderr
    says where each manager is published.

The wire protocol and its security rules: ``app.live_protocol``; binding the
    socket and the token file: ``app.live_socket``.

DESIGN
    One daemon thread per publisher. With no viewer it sleeps in ``select`` on the
    listening socket, waking every ``IDLE_POLL_S`` only to see whether the manager
    closed: no polling of the manager, nothing measurable. With a viewer it reads
    the manager at most ``MAX_HZ`` times a second and spends at most ``DUTY`` of one
    core doing so (when the thread used t seconds of CPU time since the last tick —
    reading, encoding, sending — the next waits at least t/DUTY): the program's own
    threads keep the GIL and the cores. Each tick reads
    the stats, the events since the last tick (at most ``MAX_EVENTS`` — the rest are
    skipped and counted) and, when the epoch moved and the viewer has drained the
    previous front, one copy of the front. The copy is kept only if the epoch is the
    same before and after it (no swap happened under it); otherwise it is retried
    at the next tick — a program that swaps faster than a front can be copied is
    shown at the epochs that could be copied whole, never a torn front. Sends are
    non-blocking into a per-viewer backlog; a viewer that has not taken what was sent
    by the next tick (over ``MAX_BACKLOG`` left; one update may be larger), or that
    reads nothing for ``STALL_S`` while data waits, is dropped. One viewer at
    a time. The publisher holds only a weak reference to the manager: it stops
    (sending ``bye``) when the manager closes, is dropped, or the program exits.
"""

from __future__ import annotations

import atexit
import dataclasses
import hmac
import math
import os
import secrets
import select
import socket
import sys
import threading
import time
import weakref
from collections import deque

import numpy as np

from .errors import ManagerClosedError
from .live_protocol import (  # noqa: F401  (re-exported for the viewer and the tests)
    CONTROL_ACTIONS,
    MAX_CLIENT_FRAME,
    MAX_HEADER,
    PROTOCOL,
    FrameReader,
    ProtocolError,
    encode_frame,
    frame_bytes,
    num_in,
    num_out,
    parse_control,
    parse_header,
)
from .live_socket import (  # noqa: F401  (re-exported)
    ENV,
    ListenError,
    address_from_environment,
    bind_tcp,
    bind_unix,
    is_port,
    write_token,
)
from .manager import Event

ENV_CONTROL = "BUFFERSCOPE_LISTEN_CONTROL"

MAX_HZ = 30.0
DUTY = 0.015                  # share of one core a publisher may spend on a viewer
IDLE_POLL_S = 0.2             # with no viewer: how often to look whether the manager closed
MAX_EVENTS = 256              # events per update; more are skipped (and counted)
MAX_EVENT_PAYLOAD = 8 << 20   # bytes of event arrays per update; beyond, payload_dropped
MAX_BACKLOG = 32 << 20        # bytes still queued for a viewer at the next tick: dropped over it
STALL_S = 10.0                # a viewer that reads nothing for this long with data waiting is dropped
CONTROL_SYNC_TIMEOUT_S = 0.5

# -- the publisher ---------------------------------------------------------------------------------
_publishers: weakref.WeakSet = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    for p in list(_publishers):
        p.stop("the program is exiting", timeout=1.0)


atexit.register(_stop_all_at_exit)


def publish_from_environment(manager) -> Publisher | None:
    """Start a publisher for ``manager`` when ``BUFFERSCOPE_LISTEN`` is set. Never raises:
    a problem is one line on stderr, and the program runs on unpublished."""
    address = address_from_environment()
    if address is None:
        return None
    control = os.environ.get(ENV_CONTROL, "") == "1"
    try:
        return Publisher(manager, address, control=control)
    except ListenError as exc:
        print(f"bufferscope: not publishing the {manager.backend} manager: {exc}", file=sys.stderr)
    except Exception as exc:  # never let the viewer's feature break the program
        print(f"bufferscope: not publishing the {manager.backend} manager: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
    return None


class _Viewer:
    """One connected viewer: its socket, its input reader, its output backlog."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.reader = FrameReader(MAX_CLIENT_FRAME, MAX_CLIENT_FRAME)
        self.out: deque[memoryview] = deque()
        self.backlog = 0
        self.last_progress = time.monotonic()

    def queue(self, chunks: list) -> None:
        for c in chunks:
            mv = memoryview(c).cast("B")
            if mv.nbytes:
                self.out.append(mv)
                self.backlog += mv.nbytes

    def flush(self) -> None:
        """Send what the socket takes now (never blocks); OSError when it is gone."""
        while self.out:
            head = self.out[0]
            try:
                n = self.sock.send(head)
            except (BlockingIOError, InterruptedError):
                return
            self.backlog -= n
            self.last_progress = time.monotonic()
            if n == head.nbytes:
                self.out.popleft()
            else:
                self.out[0] = head[n:]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Publisher:
    """Publishes one manager on ``address`` (a Unix socket path or a port number)."""

    def __init__(self, manager, address: str, control: bool = False, max_hz: float = MAX_HZ,
                 quiet: bool = False) -> None:
        self.address = address
        self.control = bool(control)
        self.max_hz = float(max_hz)
        self.token = secrets.token_hex(32)
        self.token_path: str | None = None
        self.path: str | None = None
        self.backend = manager.backend
        self.shape = tuple(int(n) for n in manager.shape)
        self.fill = float(manager.fill)
        self._ref = weakref.ref(manager, lambda _r: self._wake())
        if is_port(address):
            self._listener = bind_tcp(int(address))
            self.port = self._listener.getsockname()[1]
            where = f"127.0.0.1:{self.port}"
        else:
            self._listener = bind_unix(address)
            self.path, self.port = address, None
            self._inode = os.lstat(address).st_ino
            where = address
        self._listener.setblocking(False)
        if self.control and self.path is not None:
            try:
                self.token_path = self.path + ".token"
                write_token(self.token_path, self.token)
            except (ListenError, OSError) as exc:
                self.token_path = None
                self.control = False
                print(f"bufferscope: control disabled: {exc}", file=sys.stderr)
        if not quiet:
            msg = f"bufferscope: publishing the {self.backend} manager {self.shape} on {where}"
            if self.control:
                msg += (f"; control token in {self.token_path}" if self.token_path
                        else f"; control token {self.token}")
            print(msg, file=sys.stderr, flush=True)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._reason = "the manager closed"
        self.viewer: _Viewer | None = None
        self.last_epoch = 0
        self.stats = {"viewers": 0, "dropped": 0, "busy": 0, "updates": 0, "fronts": 0,
                      "torn": 0, "refused": 0, "honoured": 0}
        self.cpu_s = 0.0       # the publisher thread's CPU time so far (for benchmarks)
        self._failed = False
        self._thread = threading.Thread(target=self._run, name=f"bufferscope-publish-{where}",
                                        daemon=True)
        _publishers.add(self)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def stop(self, reason: str = "the publisher stopped", timeout: float = 5.0) -> bool:
        """Say ``bye`` to the viewer, stop the thread, remove the socket file. Idempotent."""
        if not self._stopping:
            self._reason = reason
            self._stopping = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug here must not reach the program
            print(f"bufferscope: the publisher stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            self._shutdown()

    def _manager_gone(self) -> bool:
        m = self._ref()
        return m is None or m.closed

    def _loop(self) -> None:
        next_tick = 0.0
        while not self._stopping and not self._manager_gone():
            v = self.viewer
            now = time.monotonic()
            if v is None:
                timeout = IDLE_POLL_S
            else:
                timeout = min(IDLE_POLL_S, max(0.0, next_tick - now))
            rl = [self._listener, self._wake_r] + ([v.sock] if v else [])
            wl = [v.sock] if v is not None and v.out else []
            try:
                readable, writable, _ = select.select(rl, wl, [], timeout)
            except (OSError, ValueError):
                readable, writable = [], []
                if v is not None:
                    self._drop("its socket failed")
                continue
            if self._wake_r in readable:
                try:
                    self._wake_r.recv(4096)
                except OSError:
                    pass
            # The viewer first: a viewer that detached just before a new one connected
            # must be seen gone before the new one is told the program is busy.
            if v is not None and v.sock in readable:
                self._read_viewer(v)
            if self._listener in readable:
                self._accept()
            v = self.viewer
            if v is not None and (v.sock in writable or v.out):
                self._flush(v)
            v = self.viewer
            if v is not None and time.monotonic() >= next_tick and not self._stopping:
                t0 = time.monotonic()
                self._publish(v)
                # The thread's own CPU time since the last tick (this tick and the sends
                # since), not time spent waiting for the GIL: at most DUTY of one core.
                cpu = time.thread_time()
                spent, self.cpu_s = cpu - self.cpu_s, cpu
                next_tick = t0 + max(1.0 / self.max_hz, spent / DUTY)

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:
            return
        if self.viewer is not None and self._viewer_hung_up(self.viewer):
            self._drop("it detached")
        if self.viewer is not None:
            self.stats["busy"] += 1
            try:
                sock.setblocking(False)
                sock.send(frame_bytes({"type": "busy", "message":
                                       "another viewer is attached to this program; "
                                       "detach it first"}))
            except OSError:
                pass
            sock.close()
            return
        v = _Viewer(sock)
        m = self._ref()
        if m is None:
            v.close()
            return
        self.viewer = v
        self.stats["viewers"] += 1
        v.queue(encode_frame({
            "type": "hello", "protocol": PROTOCOL, "pid": os.getpid(),
            "program": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
            "backend": self.backend, "shape": list(self.shape), "dtype": "float32",
            "fill": num_out(self.fill), "control": self.control, "max_hz": self.max_hz,
            "max_client_frame": MAX_CLIENT_FRAME,
        }))
        self._sent_epoch = -1
        self._cursor = None
        self._flush(v)

    @staticmethod
    def _viewer_hung_up(v: _Viewer) -> bool:
        try:
            return v.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _drop(self, why: str, tell: str | None = None) -> None:
        v, self.viewer = self.viewer, None
        if v is None:
            return
        self.stats["dropped"] += 1
        if tell:
            try:
                v.sock.send(frame_bytes({"type": "error", "message": tell}))
            except OSError:
                pass
        v.close()

    def _flush(self, v: _Viewer) -> None:
        try:
            v.flush()
        except OSError:
            self._drop("it went away")
            return
        if v.out and time.monotonic() - v.last_progress > STALL_S:
            self._drop("it read nothing", "dropped: the viewer did not read")

    def _read_viewer(self, v: _Viewer) -> None:
        try:
            data = v.sock.recv(MAX_CLIENT_FRAME)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop("it went away")
            return
        if not data:
            self._drop("it detached")
            return
        try:
            frames = v.reader.feed(data)
            for header, _payload in frames:
                if header["type"] != "control":
                    raise ProtocolError(f"unexpected message type {header['type'][:40]!r}")
                self._control(v, header)
                if self.viewer is not v:
                    return
        except ProtocolError as exc:
            self._drop("protocol error", f"dropped: {exc}")

    def _control(self, v: _Viewer, header: dict) -> None:
        rid, action, token, n = parse_control(header)
        reply = {"type": "reply", "id": rid, "ok": False, "action": action}
        if not self.control:
            reply["message"] = (f"refused: the program is read-only (it did not set "
                                f"{ENV_CONTROL}=1)")
        elif not hmac.compare_digest(token.encode(), self.token.encode()):
            reply["message"] = "refused: wrong or missing token"
        else:
            reply.update(self._honour(action, n))
        self.stats["honoured" if reply["ok"] else "refused"] += 1
        m = self._ref()
        if m is not None:
            try:
                reply["epoch"] = m.stats().epoch
            except Exception:
                pass
        v.queue(encode_frame(reply))

    def _honour(self, action: str, n: int) -> dict:
        m = self._ref()
        if m is None:
            return {"message": "the manager is gone"}
        try:
            if action == "pause":
                m.pause()
            elif action == "resume":
                m.resume()
            elif action == "step":
                m.step(n)
            else:
                m.synchronize(CONTROL_SYNC_TIMEOUT_S)
        except Exception as exc:
            return {"message": f"{action} failed: {type(exc).__name__}: {exc}"}
        return {"ok": True, "message": f"{action} done"}

    # -- what a tick sends ---------------------------------------------------------------------
    def _publish(self, v: _Viewer) -> None:
        if v.backlog > MAX_BACKLOG:   # it has not taken what was sent before: not reading
            self._drop("its backlog is full", "dropped: the viewer did not read")
            return
        m = self._ref()
        if m is None:
            return
        try:
            st = m.stats()
            header, payload = self._events_part(m, st)
            front_sent = False
            if st.epoch != self._sent_epoch and v.backlog < self._front_nbytes():
                snap = self._snapshot(m)
                if snap is not None:
                    epoch, front = snap
                    offset = sum(p.nbytes for p in payload)
                    header["front"] = [offset, front.nbytes]
                    header["front_epoch"] = epoch
                    payload.append(memoryview(front).cast("B"))
                    self._sent_epoch = epoch
                    front_sent = True
        except ManagerClosedError:
            return
        except Exception as exc:   # a backend error: said once, the program runs on
            if not self._failed:
                self._failed = True
                print(f"bufferscope: publishing the {self.backend} manager: "
                      f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return
        finally:
            del m
        self.last_epoch = max(self.last_epoch, st.epoch, header.get("front_epoch", 0))
        header.update({"type": "update", "epoch": st.epoch, "stats": dataclasses.asdict(st)})
        header.setdefault("front", None)
        v.queue(encode_frame(header, payload))
        self.stats["updates"] += 1
        self.stats["fronts"] += front_sent
        self._flush(v)

    def _front_nbytes(self) -> int:
        return 4 * math.prod(self.shape)

    def _snapshot(self, m, tries: int = 3) -> tuple[int, np.ndarray] | None:
        """``(epoch, copy of its front)``, or None when a swap happened under every try."""
        for _ in range(tries):
            e1 = m.stats().epoch
            front = np.array(m.front(), dtype="<f4", order="C", copy=True)
            if m.stats().epoch == e1:
                return e1, front
            self.stats["torn"] += 1
        return None

    def _events_part(self, m, st) -> tuple[dict, list]:
        recorded = st.events_recorded
        skipped = 0
        cursor = self._cursor
        if cursor is None:   # a new viewer: the latest events, none counted as skipped
            cursor = max(0, recorded - MAX_EVENTS)
        if recorded - cursor > MAX_EVENTS:
            skipped = recorded - MAX_EVENTS - cursor
            cursor = recorded - MAX_EVENTS
        events, nxt = m.events(cursor) if recorded > cursor else ([], cursor)
        if events and events[0].index > cursor:
            skipped += events[0].index - cursor   # lost to the ring's wrap
        if len(events) > MAX_EVENTS:
            events = events[:MAX_EVENTS]
            nxt = events[-1].index + 1
        self._cursor = nxt
        arrays: list[np.ndarray] = []
        offset = 0
        rows = []

        omitted = False

        def ref(arr: np.ndarray | None, dtype: str):
            nonlocal offset, omitted
            if arr is None:
                return None
            a = np.asarray(arr, dtype=dtype)
            if offset + a.nbytes > MAX_EVENT_PAYLOAD:   # sent as a dropped payload
                omitted = True
                return None
            arrays.append(a)
            r = [offset, a.nbytes, list(a.shape)]
            offset += a.nbytes
            return r

        for e in events:
            region = e.region
            omitted = False
            indices = None if e.indices is None else ref(e.indices, "<i8")
            values = None if e.values is None else ref(e.values, "<f4")
            if omitted:
                indices = values = None
            rows.append([
                e.index, e.t_ns, e.kind, e.seq, e.count, e.epoch, e.producer, e.slot, e.op,
                None if region is None else [[int(a), int(b)] for a, b in region],
                None if e.value is None else num_out(e.value),
                indices, values, bool(e.payload_dropped) or omitted,
            ])
        # One payload piece for all the events' arrays (the front may follow it).
        payload = [memoryview(b"".join(a.tobytes() for a in arrays))] if arrays else []
        return {"event_fields": list(Event._fields), "events": rows, "next": nxt,
                "skipped": skipped}, payload

    def _shutdown(self) -> None:
        if self._manager_gone():
            self._reason = "the manager closed"
        elif self.viewer is not None:
            self._publish(self.viewer)   # the program is exiting: its last epoch first
        v, self.viewer = self.viewer, None
        if v is not None:
            try:
                v.sock.setblocking(True)
                v.sock.settimeout(0.5)
                for c in v.out:      # whatever was queued, then the bye
                    v.sock.sendall(c)
                v.sock.sendall(frame_bytes({"type": "bye", "epoch": self.last_epoch,
                                            "reason": self._reason}))
            except OSError:
                pass
            v.close()
        try:
            self._listener.close()
        except OSError:
            pass
        if self.path is not None:
            try:   # only our own files: another program may have taken the path meanwhile
                ours = os.lstat(self.path).st_ino == self._inode
            except OSError:
                ours = False
            for p in (self.path, self.token_path) if ours else ():
                if p is not None:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
        for s in (self._wake_r, self._wake_w):
            s.close()
        _publishers.discard(self)

