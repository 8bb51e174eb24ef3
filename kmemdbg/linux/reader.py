"""The protocol the :mod:`kmemdbg.linux` helpers read kernel memory through."""
from __future__ import annotations

from typing import Callable, Protocol

from ..errors import KmemdbgError

#: ``read(va, size) -> bytes``: ``size`` bytes at kernel virtual ``va``; raises KmemdbgError.
ReadVirt = Callable[[int, int], bytes]


class Reader(Protocol):
    """What a helper needs: virtual reads (through the kernel's own page tables)."""

    def read(self, va: int, size: int) -> bytes:
        """``size`` bytes at kernel virtual ``va``; raises KmemdbgError when unmapped or unreadable."""
        ...


def read_uint(read: ReadVirt, va: int, size: int) -> int:
    """The little-endian unsigned integer of ``size`` bytes at virtual ``va`` (raises KmemdbgError)."""
    return int.from_bytes(read(va, size), "little")


def try_read_uint(read: ReadVirt, va: int, size: int):
    """:func:`read_uint`, or None when the bytes cannot be read (no evidence, not an error)."""
    try:
        return read_uint(read, va, size)
    except KmemdbgError:
        return None


__all__ = ["Reader", "ReadVirt", "read_uint", "try_read_uint"]
