"""Paging geometry of the modelled formats, described as data.

A :class:`Geometry` lists the levels of one walk from the root table down,
with the virtual-address bit where each level's index starts.  The model's
own encoders (``x86`` and ``arm64`` modules) turn mappings into entries; this
module only says where in a table an entry for a virtual address lives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

M64 = (1 << 64) - 1


@dataclass(frozen=True)
class Level:
    """One translation level.

    ``shift`` is the virtual-address bit where the index starts, ``bits`` the
    index width, so one entry covers ``1 << shift`` bytes of virtual address
    space; ``leaf_ok`` says whether the hardware accepts a leaf (page, huge
    page or block) at this level.
    """

    name: str
    shift: int
    bits: int
    leaf_ok: bool

    @property
    def entry_span(self) -> int:
        """Bytes of virtual address space one entry maps."""
        return 1 << self.shift

    @property
    def entries(self) -> int:
        return 1 << self.bits


@dataclass(frozen=True)
class Geometry:
    """The levels of one walk, root first.

    ``table_bytes`` is the size of every table page (the granule);
    ``va_bits`` the number of virtual-address bits the walk consumes.
    """

    arch: str
    page_shift: int
    va_bits: int
    levels: Tuple[Level, ...]

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def table_bytes(self) -> int:
        return 1 << self.page_shift

    def depth_of(self, level_name: str) -> int:
        """Index (0 = root) of the level called ``level_name``."""
        for depth, level in enumerate(self.levels):
            if level.name == level_name:
                return depth
        raise KeyError(f"no level {level_name!r} in {[lv.name for lv in self.levels]}")

    def depth_for_size(self, page_size: int) -> int:
        """Depth whose entries map ``page_size`` bytes."""
        for depth, level in enumerate(self.levels):
            if level.entry_span == page_size:
                return depth
        raise ValueError(f"no level maps 0x{page_size:x}-byte pages")

    def index(self, va: int, depth: int) -> int:
        """Index of virtual ``va`` in the table at ``depth``."""
        level = self.levels[depth]
        return (va >> level.shift) & ((1 << level.bits) - 1)

    def prefix(self, va: int, depth: int) -> int:
        """The virtual-address bits above the table at ``depth`` (its identity)."""
        level = self.levels[depth]
        return (va & ((1 << self.va_bits) - 1)) >> (level.shift + level.bits)

    def entry_key(self, va: int, depth: int) -> int:
        """The virtual-address bits that select one entry at ``depth``."""
        return (va & ((1 << self.va_bits) - 1)) >> self.levels[depth].shift


def x86_geometry(five_level: bool) -> Geometry:
    """x86-64 4-level (48-bit) or 5-level (57-bit) paging, 4 KiB base pages."""
    levels = [Level("PUD", 30, 9, True), Level("PMD", 21, 9, True), Level("PTE", 12, 9, True)]
    if five_level:
        levels = [Level("PGD", 48, 9, False), Level("P4D", 39, 9, False)] + levels
    else:
        levels = [Level("PGD", 39, 9, False)] + levels
    return Geometry("x86_64", 12, 57 if five_level else 48, tuple(levels))


def arm64_geometry(page_shift: int, va_bits: int, lpa: bool) -> Geometry:
    """arm64 stage-1 walk for a granule of ``1 << page_shift`` bytes.

    Levels follow ARM64_HW_PGTABLE_LEVELS(va) = (va - 4) / (PAGE_SHIFT - 3)
    (arch/arm64/include/asm/pgtable-hwdef.h).  Names are the architectural
    level numbers, "L3" being the last level and "L-1" the extra LPA2 level.
    Block descriptors are allowed at L1/L2 with 4 KiB, L2 with 16/64 KiB, plus
    one more level up when 52-bit output addresses are in use (L0 with 4 KiB
    LPA2, L1 with 16 KiB LPA2 or 64 KiB LPA), as the Arm ARM permits.
    """
    bits = page_shift - 3
    nlevels = (va_bits - 4) // bits
    levels = []
    first_block = {12: 1, 14: 2, 16: 2}[page_shift] - (1 if lpa else 0)
    for i in range(nlevels):
        arch_level = 4 - nlevels + i
        shift = page_shift + bits * (nlevels - 1 - i)
        width = min(bits, va_bits - shift)
        leaf_ok = arch_level == 3 or arch_level >= first_block
        levels.append(Level(f"L{arch_level}", shift, width, leaf_ok))
    return Geometry("arm64", page_shift, va_bits, tuple(levels))
