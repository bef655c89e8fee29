"""Live attach, the wire protocol shared by the publisher (``app.live``) and the
viewer (``app.attach``): framing, numbers, control requests. Qt-free.

Protocol (version 1)
    Both directions send frames::

        frame   := u32 length | u32 header_length | header | payload   (big-endian)
        length  =  4 + header_length + len(payload)
        header  := a UTF-8 JSON object with a "type"; floats that are not finite
                   are the strings "nan", "inf", "-inf" (as in traces)
        payload := bytes the header refers to by [offset, nbytes] (may be empty)

    The publisher sends ``hello`` first: ``protocol``, ``pid``, ``program``,
    ``backend``, ``shape``, ``dtype`` ("float32"), ``fill``, ``control`` (whether
    control requests can be honoured), ``max_hz``. Then ``update`` messages: ``stats``
    (the ``ManagerStats`` fields), ``epoch``, ``front`` (``[offset, nbytes]`` of the
    front of ``front_epoch`` as little-endian float32 in C order, or null when no new
    epoch is sent), ``events`` (rows in the order of ``event_fields`` — the ``Event``
    fields; ``region`` a list of pairs, ``value`` a number, ``indices``/``values``
    ``[offset, nbytes, shape]`` into the payload as little-endian int64/float32; over
    ``MAX_EVENT_PAYLOAD`` bytes per update they are left out and ``payload_dropped`` set),
    ``next`` (the event index the next update starts at) and ``skipped`` (events
    this update leaves out: lost to the ring's wrap or over the publisher's budget).
    ``reply`` answers a control request (``id``, ``ok``, ``message``, ``epoch``);
    ``busy`` (then the socket closes) tells a second viewer that one is attached;
    ``error`` precedes closing a viewer that broke the protocol; ``bye`` (``epoch``,
    ``reason``) says the manager closed or the program is exiting.

    A viewer need send nothing. Its only message is ``control``: ``id`` (an
    integer), ``action`` (``pause``, ``resume``, ``step`` with ``n``, or
    ``synchronize``) and ``token``.

Security
    Local only (0600 Unix socket or 127.0.0.1). Read-only by default: a control
    request is honoured only when the program set ``BUFFERSCOPE_LISTEN_CONTROL=1``
    and the request carries this run's token (32 random bytes, hex; compared with
    ``hmac.compare_digest``), which the program writes to ``<path>.token`` (mode
    0600, created exclusively) or, for a TCP port, prints once on stderr. Any other
    control request is refused with a ``reply`` and changes nothing. A frame over
    ``MAX_CLIENT_FRAME`` bytes, a header that is not a JSON object of known shape,
    or an unknown message type drops that viewer and nothing else.
"""

from __future__ import annotations

import json
import math
import struct

PROTOCOL = 1
MAX_CLIENT_FRAME = 64 * 1024  # a viewer's frame larger than this drops the viewer
MAX_HEADER = 8 << 20          # the largest JSON header either side accepts
CONTROL_ACTIONS = ("pause", "resume", "step", "synchronize")

_LEN = struct.Struct(">II")


class ProtocolError(ValueError):
    """A frame or message that does not follow the protocol (the module docstring)."""


# -- framing and values (shared by publisher and client) --------------------------------
def encode_frame(header: dict, payload: bytes | memoryview | list = b"") -> list:
    """The chunks of one frame (a list, so a large payload is sent without a copy)."""
    h = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    parts = payload if isinstance(payload, list) else [payload]
    n = sum(memoryview(p).nbytes for p in parts)
    return [_LEN.pack(4 + len(h) + n, len(h)), h, *parts]


def frame_bytes(header: dict, payload: bytes = b"") -> bytes:
    return b"".join(bytes(p) for p in encode_frame(header, payload))


class FrameReader:
    """Splits a byte stream into ``(header, payload)`` frames, checking every size.

    ``feed`` raises ``ProtocolError`` (only) for a frame longer than ``max_frame``, a
    header that is not a UTF-8 JSON object with a string ``type``, or lengths that
    do not add up; the reader is unusable after that.
    """

    def __init__(self, max_frame: int, max_header: int = MAX_HEADER) -> None:
        self.max_frame = int(max_frame)
        self.max_header = int(max_header)
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[dict, memoryview]]:
        self._buf += data
        out = []
        while len(self._buf) >= 8:
            length, hlen = _LEN.unpack_from(self._buf)
            if length > self.max_frame:
                raise ProtocolError(f"frame of {length} bytes (at most {self.max_frame})")
            if length < 4 or hlen > length - 4 or hlen > self.max_header:
                raise ProtocolError(f"bad frame lengths {length}/{hlen}")
            if len(self._buf) < 4 + length:
                break
            raw = bytes(self._buf[8:8 + hlen])
            payload = memoryview(bytes(self._buf[8 + hlen:4 + length]))
            del self._buf[:4 + length]
            out.append((parse_header(raw), payload))
        return out


def parse_header(raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("header is not a JSON object with a \"type\"")
    return header


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def num_out(v: float) -> float | str:
    """A float for a header: non-finite values as strings (``"nan"``, ``"inf"``, ``"-inf"``)."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def num_in(v: object, what: str) -> float:
    """The inverse of ``num_out``; ProtocolError for anything else."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError(f"{what} is not a number: {v!r}"[:200])
    return float(v)


# -- control requests (publisher side) ---------------------------------------------------
def parse_control(header: dict) -> tuple[int, str, str, int]:
    """``(id, action, token, n)`` of a control request; ProtocolError when malformed."""
    rid, action, token, n = header.get("id", 0), header.get("action"), header.get("token", ""), \
        header.get("n", 1)
    if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid < 1 << 63:
        raise ProtocolError("control id must be an integer >= 0")
    if action not in CONTROL_ACTIONS:
        raise ProtocolError(f"unknown control action {str(action)[:40]!r}")
    if not isinstance(token, str) or len(token) > 256:
        raise ProtocolError("control token must be a short string")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1 << 32:
        raise ProtocolError("step count must be an integer in [0, 2**32)")
    return rid, action, token, n
