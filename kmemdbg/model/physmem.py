"""Sparse physical memory for the MMU model.

Implements the :class:`kmemdbg.memory.PhysicalMemory` protocol.  Only pages
that were written are stored (a dict of 4 KiB frame number -> bytearray), so
the cost of a model grows with its page tables and data, not with the size of
the physical address space.  Declared RAM ranges that were never written read
as zeros; anything outside RAM raises :class:`PhysicalReadError`, as a real
dump would for a hole.

Every address here is a *physical* address in bytes.
"""
from __future__ import annotations

import bisect
import struct
from typing import Dict, Iterator, List, Sequence, Tuple

from ..errors import PhysicalReadError

#: Storage granule in bytes.  Independent of the modelled MMU granule: a
#: 64 KiB page-table page is stored as the 4 KiB pieces that were written.
FRAME_SIZE = 4096
FRAME_SHIFT = 12
#: Highest physical address width the model accepts (x86-64 and arm64 LPA).
MAX_PHYS_BITS = 52

_U64 = struct.Struct("<Q")


class SparseMemory:
    """Physical memory made of declared RAM ranges plus written pages.

    ``ram`` is a sequence of half-open ``(start_pa, end_pa)`` byte ranges.
    Writes are allowed anywhere below ``2**52`` (so a test can plant a table
    in a hole and see it become readable); reads succeed only for bytes that
    are inside RAM or inside a written frame.
    """

    zero_fills_holes = False

    def __init__(self, ram: Sequence[Tuple[int, int]] = ()) -> None:
        self._frames: Dict[int, bytearray] = {}
        self._ram: List[Tuple[int, int]] = []
        self._ram_starts: List[int] = []
        for start_pa, end_pa in ram:
            self.add_ram(start_pa, end_pa)

    # -- RAM ranges ---------------------------------------------------------
    def add_ram(self, start_pa: int, end_pa: int) -> None:
        """Declare ``[start_pa, end_pa)`` as RAM (reads as zero until written)."""
        if not 0 <= start_pa < end_pa <= 1 << MAX_PHYS_BITS:
            raise ValueError(f"bad RAM range [0x{start_pa:x}, 0x{end_pa:x})")
        merged = sorted(self._ram + [(start_pa, end_pa)])
        out: List[Tuple[int, int]] = []
        for s, e in merged:
            if out and s <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
        self._ram = out
        self._ram_starts = [s for s, _ in out]

    @property
    def ram_ranges(self) -> Tuple[Tuple[int, int], ...]:
        """Declared RAM as sorted, merged ``(start_pa, end_pa)`` ranges."""
        return tuple(self._ram)

    def in_ram(self, pa: int, size: int = 1) -> bool:
        """True if every byte of ``[pa, pa+size)`` is declared RAM."""
        i = bisect.bisect_right(self._ram_starts, pa) - 1
        return i >= 0 and pa + size <= self._ram[i][1]

    # -- reads ----------------------------------------------------------------
    def read(self, pa: int, size: int) -> bytes:
        """``size`` bytes at physical ``pa``; raises PhysicalReadError for an unbacked byte."""
        if size < 0 or pa < 0 or pa + size > 1 << MAX_PHYS_BITS:
            raise PhysicalReadError(pa, size, "outside the 52-bit physical address space")
        out = bytearray()
        cur = pa
        end = pa + size
        while cur < end:
            pfn = cur >> FRAME_SHIFT
            off = cur & (FRAME_SIZE - 1)
            n = min(end - cur, FRAME_SIZE - off)
            frame = self._frames.get(pfn)
            if frame is not None:
                out += frame[off:off + n]
            elif self.in_ram(cur, n):
                out += bytes(n)
            else:
                raise PhysicalReadError(pa, size, f"physical 0x{cur:x} is not RAM in the model")
            cur += n
        return bytes(out)

    def read_u64(self, pa: int) -> int:
        """The little-endian 64-bit word at physical ``pa``."""
        return _U64.unpack(self.read(pa, 8))[0]

    # -- writes ---------------------------------------------------------------
    def frame(self, pfn: int) -> bytearray:
        """The stored 4 KiB frame number ``pfn``, created (zeroed) if needed."""
        frame = self._frames.get(pfn)
        if frame is None:
            if not 0 <= pfn < 1 << (MAX_PHYS_BITS - FRAME_SHIFT):
                raise ValueError(f"frame 0x{pfn:x} is beyond 52-bit physical addresses")
            frame = self._frames[pfn] = bytearray(FRAME_SIZE)
        return frame

    def write(self, pa: int, data: bytes) -> None:
        """Store ``data`` at physical ``pa`` (any address below 2**52)."""
        cur = pa
        view = memoryview(bytes(data))
        while view:
            off = cur & (FRAME_SIZE - 1)
            n = min(len(view), FRAME_SIZE - off)
            self.frame(cur >> FRAME_SHIFT)[off:off + n] = view[:n]
            view = view[n:]
            cur += n

    def write_u64(self, pa: int, value: int) -> None:
        """Store the 64-bit ``value`` little-endian at 8-byte aligned physical ``pa``."""
        if pa & 7:
            raise ValueError(f"unaligned 64-bit write at physical 0x{pa:x}")
        _U64.pack_into(self.frame(pa >> FRAME_SHIFT), pa & (FRAME_SIZE - 1), value & (2**64 - 1))

    # -- introspection ----------------------------------------------------------
    def is_stored(self, pa: int) -> bool:
        """True if the 4 KiB frame holding physical ``pa`` has been written."""
        return (pa >> FRAME_SHIFT) in self._frames

    def stored_frames(self) -> List[int]:
        """Sorted numbers of the stored 4 KiB frames."""
        return sorted(self._frames)

    def stored_bytes(self) -> int:
        """Bytes of frame data held (4096 per stored frame)."""
        return len(self._frames) * FRAME_SIZE

    def stored_runs(self) -> Iterator[Tuple[int, int]]:
        """Coalesced ``(start_pa, size_bytes)`` runs of stored frames, ascending."""
        start = prev = None
        for pfn in self.stored_frames():
            if start is not None and pfn == prev + 1:
                prev = pfn
                continue
            if start is not None:
                yield start << FRAME_SHIFT, (prev - start + 1) << FRAME_SHIFT
            start = prev = pfn
        if start is not None:
            yield start << FRAME_SHIFT, (prev - start + 1) << FRAME_SHIFT

    def backed_runs(self) -> Iterator[Tuple[int, int, bool]]:
        """``(start_pa, size_bytes, stored)`` runs covering RAM plus stored frames.

        ``stored`` is False for RAM that was never written (reads as zeros).
        Used by the vmcore writer to emit data only for stored frames.
        """
        points: List[Tuple[int, int, bool]] = []
        stored = list(self.stored_runs())
        # Split every RAM range around the stored runs.
        edges: List[Tuple[int, int]] = sorted(
            [(s, s + n) for s, n in stored] + list(self._ram))
        cover: List[Tuple[int, int]] = []
        for s, e in edges:
            if cover and s <= cover[-1][1]:
                cover[-1] = (cover[-1][0], max(cover[-1][1], e))
            else:
                cover.append((s, e))
        si = 0
        for cs, ce in cover:
            cur = cs
            while cur < ce:
                while si < len(stored) and stored[si][0] + stored[si][1] <= cur:
                    si += 1
                if si < len(stored) and stored[si][0] <= cur:
                    end = min(ce, stored[si][0] + stored[si][1])
                    points.append((cur, end - cur, True))
                else:
                    nxt = stored[si][0] if si < len(stored) else ce
                    end = min(ce, nxt)
                    points.append((cur, end - cur, False))
                cur = end
        return iter(points)

