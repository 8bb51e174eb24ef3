"""Dump files opened read-only, safely: kmemdbg never writes to a dump, never blocks
opening one and never maps a whole file into memory.

A FIFO or a device given as a dump would block ``open()`` or read forever,
so files are opened with ``O_NONBLOCK`` and anything but a regular file is
refused before a byte is read.  Reads are ``pread`` calls of the bytes
asked for, so memory is bounded by what is read, not by the file's size.
"""
from __future__ import annotations

import os
import stat
from typing import Optional

from ..errors import SourceError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file ``path``; SourceError for anything else.

    The open never blocks (``O_NONBLOCK``, cleared again once the file is
    known to be regular) and never makes a terminal the controlling one.
    """
    if not path:
        raise SourceError("empty file name")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise SourceError(f"{path}: cannot open: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{path}: {file_kind(st.st_mode)}, not a dump file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def magic_of(path: str, n: int) -> bytes:
    """The first ``n`` bytes of the regular file ``path`` (SourceError for FIFOs, devices...)."""
    fd = open_regular(path)
    try:
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def check_regular(path: str) -> None:
    """Raise SourceError unless ``path`` is a regular file that can be opened for reading."""
    os.close(open_regular(path))


class DumpFile:
    """A regular file read with ``pread``; ``size`` in bytes.

    ``read_at(offset, size)`` returns at most ``size`` bytes (fewer at the end
    of the file, none past it).
    """

    def __init__(self, path: str, min_size: int = 0, what: str = "a dump") -> None:
        self.path = path
        self._fd: Optional[int] = open_regular(path)
        self.size = os.fstat(self._fd).st_size
        if self.size < min_size:
            self.close()
            raise SourceError(f"{path}: too short for {what} ({self.size} bytes)")

    def read_at(self, offset: int, size: int) -> bytes:
        if self._fd is None:
            raise SourceError(f"{self.path}: already closed")
        if size <= 0 or offset < 0 or offset >= self.size:
            return b""
        size = min(size, self.size - offset)
        out = os.pread(self._fd, size, offset)
        while len(out) < size:
            more = os.pread(self._fd, size - len(out), offset + len(out))
            if not more:
                break
            out += more
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["DumpFile", "open_regular", "check_regular", "file_kind", "magic_of"]
