"""Read-only memory maps of dump files (kmemdbg never writes to a dump)."""
from __future__ import annotations

import mmap
import os
from typing import Tuple

from ..errors import SourceError


def map_readonly(path: str, min_size: int, what: str) -> Tuple[mmap.mmap, int]:
    """(read-only map, size in bytes) of ``path``; SourceError when it cannot be opened
    or is shorter than ``min_size`` bytes (``what`` names the expected format)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise SourceError(f"{path}: cannot open: {err.strerror}") from None
    try:
        size = os.fstat(fd).st_size
        if size < min_size:
            raise SourceError(f"{path}: too short for {what} ({size} bytes)")
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ), size
    finally:
        os.close(fd)
