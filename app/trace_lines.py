"""Reading a trace file's lines (``app.trace.TraceReader`` is one): a block at a time,
counting every line, refusing one longer than ``MAX_LINE_BYTES`` or not UTF-8 with its
number, and knowing the byte offset where each line ends (``bytes_read``, ``seek``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from . import trace_parse
from .trace_parse import TraceError

#: The file is read this many bytes at a time.
READ_BLOCK = 1 << 18


class LineReader:
    """The lines of an open binary file ``_fh`` named ``path``; ``lineno`` is the
    number of the last line read, ``_pos`` the offset where it ends."""

    path: str
    _fh: BinaryIO
    lineno: int = 0
    _pos: int = 0
    _lines: Iterator[tuple[int, str]]

    @property
    def bytes_read(self) -> int:
        """How far into the file reading has gone: the end of the last line read (for
        progress reports, and an offset ``seek`` takes after a record)."""
        return 0 if self._fh.closed else self._pos

    def _read_lines(self) -> Iterator[tuple[int, str]]:
        """(line number, text without its line ending) of every non-blank line, read a
        block at a time; a line is never held beyond ``trace_parse.MAX_LINE_BYTES``."""
        read = self._fh.read
        parts: list[bytes] = []       # the start of an unfinished line
        size = 0
        while True:
            block = read(READ_BLOCK)
            if not block:
                if parts:
                    yield from self._block_lines(b"".join(parts), final=True)
                return
            nl = block.rfind(b"\n")
            if nl < 0:
                parts.append(block)
                size += len(block)
                if size > trace_parse.MAX_LINE_BYTES:
                    self.lineno += 1
                    raise TraceError(f"{self.path} line {self.lineno}: longer than the limit of "
                                     f"{trace_parse.MAX_LINE_BYTES >> 20} MiB per line")
                continue
            head = block[:nl + 1]
            if parts:
                head = b"".join([*parts, head])
            rest = block[nl + 1:]
            parts, size = ([rest], len(rest)) if rest else ([], 0)
            yield from self._block_lines(head)

    def _block_lines(self, data: bytes, final: bool = False) -> Iterator[tuple[int, str]]:
        """The lines of ``data`` (whole lines; the last without its newline when final)."""
        try:
            fits = len(data) <= trace_parse.MAX_LINE_BYTES
            texts = data.decode("utf-8").split("\n") if fits else None
        except UnicodeDecodeError:
            texts = None              # line by line: the bad one is named
        ascii_only = texts is not None and data.isascii()
        raws = texts if ascii_only else data.split(b"\n")   # byte lengths
        if not final:
            raws.pop()                # after the last newline
        lineno, pos = self.lineno, self._pos
        for k, raw in enumerate(raws):
            lineno += 1
            n = len(raw) + (0 if final else 1)
            if texts is None:
                self.lineno = lineno
                if n > trace_parse.MAX_LINE_BYTES:
                    raise TraceError(f"{self.path} line {lineno}: longer than the limit of "
                                     f"{trace_parse.MAX_LINE_BYTES >> 20} MiB per line")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TraceError(f"{self.path} line {lineno}: not UTF-8 ({exc.reason} "
                                     f"at byte {exc.start + 1} of the line)") from None
            else:
                text = texts[k]
            pos += n
            if not ascii_only and lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]  # a UTF-8 byte order mark
            if text.endswith("\r"):
                text = text.rstrip("\r")
            if text[:1] == "{" or text.strip():
                self.lineno, self._pos = lineno, pos
                yield lineno, text
        self.lineno, self._pos = lineno, pos

    def seek(self, offset: int, line: int) -> None:
        """Read on from byte ``offset``, the start of the line after line ``line``
        (an offset ``bytes_read`` gave after a record: the player's keyframes)."""
        self._fh.seek(int(offset))
        self.lineno = int(line)
        self._pos = int(offset)
        self._lines = self._read_lines()


