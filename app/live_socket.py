"""Live attach, where a program listens: the address from ``BUFFERSCOPE_LISTEN``, a 0600
Unix socket or a 127.0.0.1 port, and the control token's file (see ``app.live``). Qt-free."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import stat
import tempfile

ENV = "BUFFERSCOPE_LISTEN"


class ListenError(RuntimeError):
    """The publisher cannot listen where it was asked to (the message says why)."""


_numbers = itertools.count()   # the managers published so far (next() is atomic)


def address_from_environment() -> str | None:
    """The address for the next manager from ``BUFFERSCOPE_LISTEN`` (None: unset)."""
    base = os.environ.get(ENV)
    if not base:
        return None
    k = next(_numbers)
    if k == 0:
        return base
    if base.isdigit():
        port = int(base)
        return base if port == 0 else str(port + k)
    return f"{base}.{k}"


def is_port(address: str) -> bool:
    return address.isdigit()


def _probe_unix(path: str) -> bool:
    """Whether something listens on the Unix socket at ``path`` (connect test)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except ConnectionRefusedError:
        return False
    except OSError as exc:
        raise ListenError(f"{path}: cannot test the existing socket: {exc.strerror or exc}") from None
    finally:
        s.close()


def bind_unix(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` with mode 0600 (see the module docstring)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ListenError(f"{path}: {exc.strerror or exc}") from None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ListenError(f"{path} exists and is not a socket; it is left alone")
        if _probe_unix(path):
            raise ListenError(f"{path}: another program is listening on it")
        try:
            os.unlink(path)   # a stale socket: nothing answers on it
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ListenError(f"{path}: cannot remove the stale socket: {exc.strerror}") from None
    parent = os.path.dirname(os.path.abspath(path))
    try:
        private = tempfile.mkdtemp(prefix=".bs-", dir=parent)   # mode 0700
    except OSError as exc:
        raise ListenError(f"{path}: cannot create the socket there: {exc.strerror or exc}") from None
    tmp = os.path.join(private, "s")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(tmp)
        os.chmod(tmp, 0o600)
        os.link(tmp, path)    # fails (EEXIST) rather than replace whatever appeared there
        s.listen(4)
    except OSError as exc:
        s.close()
        what = "path too long for a Unix socket" if "too long" in str(exc) else (exc.strerror or str(exc))
        raise ListenError(f"{path}: cannot listen: {what}") from None
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return s


def bind_tcp(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 only."""
    if not 0 <= port <= 65535:
        raise ListenError(f"port {port} is out of range (0 to 65535)")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(4)
    except OSError as exc:
        s.close()
        raise ListenError(f"127.0.0.1:{port}: cannot listen: {exc.strerror or exc}") from None
    return s


def write_token(path: str, token: str) -> None:
    """The token in a new 0600 file at ``path``; a stale regular file is replaced,
    anything else refused (ListenError)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise ListenError(f"{path} exists and is not a regular file; no token written")
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
