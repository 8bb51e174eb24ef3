"""Tiny hand-written page tables for unit tests (no kmemdbg encoders involved)."""
from __future__ import annotations

from typing import Dict, Sequence

from kmemdbg.errors import PhysicalReadError


class DictMemory:
    """Physical memory of explicitly written 8-byte words; other bytes of a written page read 0."""

    zero_fills_holes = False

    def __init__(self, page_size: int = 4096) -> None:
        self.page_size = page_size
        self.pages: Dict[int, bytearray] = {}

    def put(self, pa: int, value: int) -> None:
        base = pa - pa % self.page_size
        page = self.pages.setdefault(base, bytearray(self.page_size))
        off = pa - base
        page[off:off + 8] = value.to_bytes(8, "little")

    def read(self, pa: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            base = pa - pa % self.page_size
            if base not in self.pages:
                raise PhysicalReadError(pa, size, "unbacked test page")
            off = pa - base
            n = min(size, self.page_size - off)
            out += self.pages[base][off:off + n]
            pa, size = pa + n, size - n
        return bytes(out)


def chain(mem: DictMemory, va: int, shifts: Sequence[int], widths: Sequence[int],
          tables: Sequence[int], entries: Sequence[int]) -> None:
    """Write ``entries[i]`` into table ``tables[i]`` at the index ``va`` selects at level i."""
    for shift, width, table, entry in zip(shifts, widths, tables, entries):
        idx = (va >> shift) & ((1 << width) - 1)
        mem.put(table + idx * 8, entry)
