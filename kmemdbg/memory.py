"""Physical memory sources and the per-source cache of page-table pages.

A memory source is anything with ``read(pa, size) -> bytes`` that reads
*physical* bytes and raises :class:`~kmemdbg.errors.PhysicalReadError` when
it cannot.  The walker only ever sees this protocol: a drgn Program, the MMU
model and a raw core file all look the same to it.
"""
from __future__ import annotations

import sys
from typing import Dict, Optional

from .errors import PhysicalReadError

try:  # Python >= 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

if sys.byteorder != "little":  # pragma: no cover - both supported targets are little-endian
    raise ImportError("kmemdbg decodes little-endian page tables with native memoryview casts")


class PhysicalMemory(Protocol):
    """Reads bytes of physical memory.

    ``read(pa, size)`` returns exactly ``size`` bytes starting at physical
    address ``pa`` or raises :class:`PhysicalReadError`.

    A source whose unreadable ranges read back as zeros (``/proc/kcore``,
    QEMU's gdbstub) sets ``zero_fills_holes = True`` so that results can say
    that an all-zero table may be a hole rather than an empty table.
    """

    zero_fills_holes: bool

    def read(self, pa: int, size: int) -> bytes:  # pragma: no cover - protocol
        ...


class BytesMemory:
    """Physical memory backed by one bytes-like object starting at ``base_pa``."""

    zero_fills_holes = False

    def __init__(self, data: bytes, base_pa: int = 0) -> None:
        self._data = memoryview(data)
        self.base_pa = base_pa

    def read(self, pa: int, size: int) -> bytes:
        off = pa - self.base_pa
        if size < 0 or off < 0 or off + size > len(self._data):
            raise PhysicalReadError(pa, size, "outside the memory image")
        return bytes(self._data[off:off + size])


class TableCache:
    """Reads page-table pages whole and keeps them, once per source.

    ``table(pa, size)`` returns a read-only ``memoryview`` of 64-bit entries
    (native little-endian) for the table of ``size`` bytes at physical ``pa``.
    A batch of walks therefore costs one source read per distinct table page.
    Read failures are cached too, so a bad table is asked for only once.

    Use one cache per snapshot: for a live target call :meth:`clear` when it
    may have moved on.
    """

    def __init__(self, source: PhysicalMemory) -> None:
        self.source = source
        self._tables: Dict[int, object] = {}
        self.reads = 0

    def table(self, pa: int, size: int) -> memoryview:
        """Entries of the table at physical ``pa`` (``size`` bytes); raises PhysicalReadError."""
        got = self._tables.get(pa)
        if got is None:
            self.reads += 1
            try:
                data = self.source.read(pa, size)
                if len(data) != size:
                    raise PhysicalReadError(pa, size, f"short read ({len(data)} bytes)")
                got = memoryview(data if isinstance(data, bytes) else bytes(data)).cast("Q")
            except PhysicalReadError as err:
                got = err
            self._tables[pa] = got
        if isinstance(got, PhysicalReadError):
            raise got
        return got  # type: ignore[return-value]

    def cached(self, pa: int) -> Optional[memoryview]:
        got = self._tables.get(pa)
        return got if isinstance(got, memoryview) else None

    def clear(self) -> None:
        self._tables.clear()

    def __len__(self) -> int:
        return len(self._tables)
