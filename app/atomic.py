"""Atomic file output: nothing appears at the destination unless writing succeeded.

Every file bufferscope writes (traces, .npy and PNG exports, benchmark JSON,
Perfetto exports) goes through here, so that for every one of them (SPEC §6):

* a failure never leaves a partial file, nor a temporary file, behind;
* the file is created with the permissions the umask gives (0666 & ~umask),
  like any file a program opens for writing — not the 0600 of ``mkstemp``;
* a special file at the destination (a FIFO, a device, a socket, a symbolic
  link, a directory) is refused with ``OutputPathError``, never replaced: the
  destination must be a regular file or nothing, in an existing directory.

``check_output_path`` runs that last check alone, so a command can refuse a bad
``--out`` before it does any work; the writers run it again before they create
their temporary file and once more just before the rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from typing import IO

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class OutputPathError(OSError):
    """The output path cannot be written safely; the message names the path and why."""


def check_output_path(path: str | os.PathLike) -> str:
    """The absolute form of ``path`` if a regular file may be written there;
    ``OutputPathError`` naming ``path`` otherwise.

    Refused: an empty name, an existing non-regular file (symbolic link — even
    to a regular file —, directory, FIFO, device, socket), a parent that is
    missing or not a directory.
    """
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not name:
        raise OutputPathError(errno.ENOENT, "the output path is empty")
    full = os.path.abspath(name)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputPathError(exc.errno, f"{name}: {exc.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
        raise OutputPathError(errno.EEXIST, f"{name} is {kind}; refusing to replace it "
                              "(give the name of a regular file or of a new one)")
    folder = os.path.dirname(full)
    if not os.path.isdir(folder):
        why = "does not exist" if not os.path.lexists(folder) else "is not a directory"
        raise OutputPathError(errno.ENOENT, f"{name}: the folder {os.path.dirname(name) or folder} {why}")
    return full


def _create_temporary(full: str, suffix: str = ".tmp") -> tuple[int, str]:
    """A new, empty file beside ``full``, opened for writing. Created with 0666 so
    that the umask decides its permissions, and O_EXCL so it is ours alone."""
    folder, base = os.path.split(full)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write {full}: {exc.strerror}") from None
    raise OSError(errno.EEXIST, f"cannot write {full}: no free temporary name in {folder}")


def _rename_into_place(tmp: str, full: str, name: str) -> None:
    """Rename ``tmp`` onto ``full`` after checking the destination once more;
    removes ``tmp`` whatever happens."""
    try:
        check_output_path(name)
        os.replace(tmp, full)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OutputPathError):
            raise
        raise OSError(exc.errno, f"cannot write {name}: {exc.strerror or exc}") from None


def _name_the_destination(exc: OSError, tmp: str, name: str) -> OSError:
    """``exc`` reworded to name the path the user gave instead of our temporary file."""
    text = str(exc.strerror or exc).replace(tmp, name)
    if tmp not in str(exc) and exc.filename != tmp:
        text = f"cannot write {name}: {text}"
    return OSError(exc.errno, text)


class AtomicFile:
    """A temporary file beside ``path`` that ``commit()`` renames into place and
    ``abort()`` removes. ``fh`` is the open file (text or binary by ``mode``)."""

    def __init__(self, path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
        if mode not in ("w", "wb"):
            raise ValueError(f"AtomicFile writes a new file: mode 'w' or 'wb', got {mode!r}")
        self.path = os.fspath(path)
        self._full = check_output_path(self.path)
        fd, self.tmp = _create_temporary(self._full)
        try:
            self.fh: IO = os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
        except BaseException:
            os.close(fd)
            os.unlink(self.tmp)
            raise

    def commit(self) -> None:
        """Flush to disk and rename onto the destination; on failure nothing is left."""
        try:
            if not self.fh.closed:
                self.fh.flush()
                os.fsync(self.fh.fileno())
                self.fh.close()
        except OSError as exc:
            self.abort()
            raise _name_the_destination(exc, self.tmp, self.path) from None
        _rename_into_place(self.tmp, self._full, self.path)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            if not self.fh.closed:
                self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def write_via_path(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """``write(tmp_path)`` then rename onto ``path``; for writers that want a file
    name (a Qt image, ``np.save``). The temporary name keeps ``path``'s suffix, and
    an ``OSError`` from ``write`` is reworded to name ``path``, not the temporary."""
    name = os.fspath(path)
    full = check_output_path(name)
    fd, tmp = _create_temporary(full, suffix=os.path.splitext(full)[1])
    os.close(fd)
    try:
        write(tmp)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _name_the_destination(exc, tmp, name) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _rename_into_place(tmp, full, name)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """``with atomic_open(path) as fh:`` — the file appears at ``path`` only when the
    block ends without an exception."""
    f = AtomicFile(path, mode)
    try:
        yield f.fh
    except BaseException:
        f.abort()
        raise
    f.commit()


def save_npy(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)
