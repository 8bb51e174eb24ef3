"""Dump files opened read-only, safely: kmemdbg never writes to a dump and never blocks
opening one.

A FIFO or a device given as a dump would block ``open()`` or read forever,
so files are opened with ``O_NONBLOCK`` and anything but a regular file is
refused before a byte is read.

A regular file is then mapped read-only (``PROT_READ``, shared: the bytes
stay in the page cache, nothing is copied up front and nothing can be
written through the map), because a system call per read costs more than
the rest of a virtual read.  The map covers the file's size at open and
every read is bounded by it before the map is touched; a file the kernel
will not map (a ``/proc`` file, a file system without mmap) is read with
``pread``.  Either way memory is bounded by what is read, not by the
file's size.  (A map has one hazard ``pread`` has not: a dump that another
process *shrinks* while kmemdbg reads it ends the process with SIGBUS
rather than an error line.  Dumps are not rewritten in place by the tools
that make them.)
"""
from __future__ import annotations

import mmap
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
    """A regular file, mapped read-only where the kernel allows (else read with ``pread``);
    ``size`` in bytes, as at open.

    ``read_at(offset, size)`` returns at most ``size`` bytes (fewer at the end
    of the file, none past it).  ``view`` is the read-only map (None when the
    file is read with ``pread``): ``view[a:b]`` for ``0 <= a <= b <= size``
    is the fast path of :mod:`kmemdbg.sources.elfcore`.
    """

    def __init__(self, path: str, min_size: int = 0, what: str = "a dump") -> None:
        self.path = path
        self._fd: Optional[int] = open_regular(path)
        self.size = os.fstat(self._fd).st_size
        if self.size < min_size:
            self.close()
            raise SourceError(f"{path}: too short for {what} ({self.size} bytes)")
        self.view: Optional[mmap.mmap] = None
        if self.size:
            try:
                self.view = mmap.mmap(self._fd, self.size, access=mmap.ACCESS_READ)
            except (OSError, ValueError, OverflowError):
                self.view = None    # not mappable here: pread it is

    def read_at(self, offset: int, size: int) -> bytes:
        if self._fd is None:
            raise SourceError(f"{self.path}: already closed")
        if size <= 0 or offset < 0 or offset >= self.size:
            return b""
        size = min(size, self.size - offset)
        if self.view is not None:
            return self.view[offset:offset + size]
        out = os.pread(self._fd, size, offset)
        while len(out) < size:
            more = os.pread(self._fd, size - len(out), offset + len(out))
            if not more:
                break
            out += more
        return out

    def close(self) -> None:
        if self.__dict__.get("view") is not None:
            self.view.close()       # type: ignore[union-attr]
            self.view = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["DumpFile", "open_regular", "check_regular", "file_kind", "magic_of"]
