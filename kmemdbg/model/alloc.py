"""Physical frame allocator of the model.

Hands out naturally aligned physical ranges inside RAM and remembers what is
taken, so page tables, kernel image and data never overlap.  Placement is
random (seeded) by default so that vmalloc pages come out physically
scattered, as they are on a real machine.  All integers are physical
addresses or sizes in bytes.
"""
from __future__ import annotations

import bisect
import random
from typing import List, Optional, Sequence, Tuple


class OutOfMemory(Exception):
    """No free, aligned physical range of the requested size is left in RAM."""


class FrameAllocator:
    """Allocates aligned physical ranges from ``ram`` (half-open byte ranges)."""

    def __init__(self, ram: Sequence[Tuple[int, int]], rng: Optional[random.Random] = None) -> None:
        self.ram = sorted(ram)
        self.rng = rng or random.Random(0)
        self._starts: List[int] = []
        self._ends: List[int] = []

    def is_free(self, pa: int, size: int) -> bool:
        """True if ``[pa, pa+size)`` is RAM and not yet allocated."""
        if not any(s <= pa and pa + size <= e for s, e in self.ram):
            return False
        i = bisect.bisect_right(self._starts, pa) - 1
        if i >= 0 and self._ends[i] > pa:
            return False
        return not (i + 1 < len(self._starts) and self._starts[i + 1] < pa + size)

    def reserve(self, pa: int, size: int) -> int:
        """Mark ``[pa, pa+size)`` as used; raises ValueError if any of it is taken."""
        if size <= 0:
            raise ValueError("empty reservation")
        i = bisect.bisect_right(self._starts, pa) - 1
        if (i >= 0 and self._ends[i] > pa) or (
                i + 1 < len(self._starts) and self._starts[i + 1] < pa + size):
            raise ValueError(f"physical [0x{pa:x}, 0x{pa + size:x}) is already allocated")
        self._starts.insert(i + 1, pa)
        self._ends.insert(i + 1, pa + size)
        return pa

    def alloc(self, size: int, align: Optional[int] = None, *, below: Optional[int] = None,
              scatter: bool = True) -> int:
        """Allocate ``size`` bytes aligned to ``align`` (default ``size``); returns the start pa.

        ``scatter`` picks a random free place; otherwise the lowest one.
        ``below`` restricts the range to addresses under that physical bound.
        """
        align = align or size
        ranges = [(s, min(e, below) if below else e) for s, e in self.ram]
        ranges = [((s + align - 1) // align * align, e) for s, e in ranges]
        ranges = [(s, e) for s, e in ranges if e - s >= size]
        if not ranges:
            raise OutOfMemory(f"no RAM range can hold 0x{size:x} bytes")
        if scatter:
            weights = [e - s for s, e in ranges]
            for _ in range(48):
                s, e = self.rng.choices(ranges, weights)[0]
                slots = (e - s - size) // align + 1
                pa = s + self.rng.randrange(slots) * align
                if self.is_free(pa, size):
                    return self.reserve(pa, size)
        for s, e in ranges:
            pa = s
            while pa + size <= e:
                i = bisect.bisect_right(self._starts, pa + size - 1) - 1
                if i >= 0 and self._ends[i] > pa:
                    pa = (self._ends[i] + align - 1) // align * align
                    continue
                return self.reserve(pa, size)
        raise OutOfMemory(f"no free 0x{size:x}-byte range aligned to 0x{align:x}")

    def allocated_bytes(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends))
