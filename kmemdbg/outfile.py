"""Writing output files without ever harming an input (``kmemdbg slice OUT``).

An output is written to a fresh temporary file in the target's own
directory, created with ``O_EXCL`` (``tempfile.mkstemp``: a random name, so a
planted ``OUT.tmp`` symlink is never followed), and renamed over the target
only when complete; on any failure the temporary file is removed.  The
target is refused when, after resolving links, it is the same file (device
and inode) as an input, when it is not a regular file, or when it exists and
the user could not write it (a write-protected file is refused even for
root, as ``rm`` asks before removing one).
"""
from __future__ import annotations

import os
import stat
import tempfile
from typing import BinaryIO, Callable, Iterable, Set, Tuple

from .errors import KmemdbgError


class OutputError(KmemdbgError):
    """An output path that must not or cannot be written."""


def _ids(paths: Iterable[str]) -> Set[Tuple[int, int]]:
    out = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def check_output(dst: str, inputs: Iterable[str] = ()) -> str:
    """The resolved path ``dst`` would be written at; raises OutputError when it may not be."""
    if not dst:
        raise OutputError("the output file name is empty")
    real = os.path.realpath(dst)
    directory = os.path.dirname(real)
    if dst.endswith(os.sep) or os.path.isdir(real):
        raise OutputError(f"{dst}: is a directory, not an output file name")
    if not os.path.isdir(directory):
        raise OutputError(f"{dst}: no such directory {directory}")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError as err:
        raise OutputError(f"{dst}: {err.strerror}") from None
    if (st.st_dev, st.st_ino) in _ids(inputs):
        raise OutputError(f"{dst}: is the input dump itself: refusing to overwrite it")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{dst}: exists and is not a regular file: refusing to replace it")
    if not os.access(real, os.W_OK) or not st.st_mode & 0o222:
        raise OutputError(f"{dst}: exists and is write-protected: refusing to replace it")
    return real


def write_output(dst: str, write: Callable[[BinaryIO], None], inputs: Iterable[str] = ()) -> int:
    """Create or replace ``dst`` with what ``write(f)`` writes; returns the size in bytes.

    ``inputs`` are files that must never be written (the dump being read).
    Raises OutputError (one line) when the target is refused or cannot be
    written; any exception from ``write`` propagates after the temporary file
    is removed.
    """
    inputs = list(inputs)
    real = check_output(dst, inputs)
    directory, base = os.path.split(real)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise OutputError(f"{dst}: cannot create a file in {directory}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            size = f.tell()
        try:
            mode = stat.S_IMODE(os.stat(real).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        check_output(dst, inputs)      # again: the target may have changed while writing
        os.replace(tmp, real)
    except OSError as err:
        _unlink(tmp)
        raise OutputError(f"{dst}: cannot write it: {err.strerror or err}") from None
    except BaseException:
        _unlink(tmp)
        raise
    return size


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


__all__ = ["OutputError", "check_output", "write_output"]
