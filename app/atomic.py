"""Atomic file output: nothing appears at the destination unless writing succeeded.

Every file bufferscope writes (traces, .npy and PNG exports, benchmark JSON) goes
through here, so a failure never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


class AtomicFile:
    """A temporary file beside ``path`` that ``commit()`` renames into place and
    ``abort()`` removes."""

    def __init__(self, path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(self.path)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
        self.fh: IO = os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)

    def commit(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def write_via_path(path: str | os.PathLike, write) -> None:
    """``write(tmp_path)`` then rename onto ``path``; for writers that want a file
    name (a Qt image, say). The temporary name keeps ``path``'s suffix."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=os.path.splitext(path)[1],
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
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
        np.save(fh, np.ascontiguousarray(array))


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)
