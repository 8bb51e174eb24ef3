"""Iterating over whole page-table trees, one table page at a time.

Where :meth:`kmemdbg.walk.Walker.walk` follows one address down, these
helpers visit every valid entry of every table reachable from a root, so a
full sweep reads each table page exactly once and needs no per-address
walks.  Both are visitors of the one tree walk, :func:`kmemdbg.tree.walk_range`.  They are the base of ``slice`` (which keeps every table page),
``ptdump`` and the audits.

Addresses: ``va`` values are virtual (sign-extended on x86-64, in the TTBR1
half on arm64 when ``high`` is set); ``table_pa`` is physical.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

from .arch import arch_named
from .arch.base import ENTRY_TABLE, RESERVED, TABLE_FAN_OUT, TABLE_LOOP, PagingFormat
from .errors import PhysicalReadError
from .memory import TableCache
from .tree import READ, Descend, fold, walk_range
from .walk import Fault


@dataclass(frozen=True)
class TreeEntry:
    """One valid entry met in a tree sweep.

    ``kind`` is ``"table"`` or ``"leaf"``; ``va`` the first virtual address
    it covers and ``size`` how many bytes; ``raws`` the raw entries from the
    root down to and including this one (for effective permissions).
    """

    kind: str
    level: int
    va: int
    size: int
    raw: int
    table_pa: int
    index: int
    raws: Tuple[int, ...]


#: Entries a sweep yields again from tables it has already swept at the same level
#: (shared tables: the KASAN early shadow, ESPFIX: x86-64 repeats under 131072) before it
#: stops repeating them.
MAX_SHARED_ENTRIES = 1 << 18


# The sweep's faults are the one :class:`kmemdbg.walk.Fault` (``depth`` is the level
# index, ``va``/``size`` the range hidden).

#: Reserved entries reported per table (the same cap as :class:`kmemdbg.ptdump.LeafSweep`).
MAX_RESERVED_PER_TABLE = 8


def reserved_fault(fmt: PagingFormat, i: int, va: int, table_pa: int, idx: int, raw: int) -> Fault:
    """The fault of a valid entry :meth:`PagingFormat.decode` calls reserved (``va`` virtual)."""
    lv = fmt.levels[i]
    return Fault(lv.name, RESERVED, f"{lv.name}[{idx}] = 0x{raw:x}: reserved bits or a leaf "
                                    f"not allowed at {lv.name}", table_pa, table_pa + 8 * idx, raw, idx,
                 i, va, va + lv.leaf_size)


def _table_fault(fmt: PagingFormat, i: int, va: int, table_pa: int, reason: str, detail: str) -> Fault:
    lv = fmt.levels[i]
    return Fault(lv.name, reason, detail, table_pa, depth=i, start=va, end=va + (lv.leaf_size << lv.bits))


class _EntrySweep:
    """The :func:`sweep` visitor: yields each valid entry of each page, in VA order."""

    def __init__(self, fmt: PagingFormat, cache: TableCache, va_start: int, va_end: int, high: bool,
                 max_shared: int, level_of: Dict[int, int]) -> None:
        self.fmt = fmt
        self.cache = cache
        self.va_start = va_start
        self.va_end = va_end
        self.high = high
        self.max_shared = max_shared
        self.budget = max_shared
        self.level_of = level_of
        self.counts: Dict[Tuple[int, int], int] = {}
        self.masks = fmt._decode_masks()
        self.va_of = arch_named(fmt.arch).va_of   # sign extension / half: an unknown arch is an error

    def entries_under(self, table_pa: int, i: int) -> int:
        """How many items a full visit of the table would yield (shared tables counted)."""
        key = (table_pa, i)
        got = self.counts.get(key)
        if got is not None:
            return got
        self.counts[key] = 1          # a loop back here counts as the one fault it yields
        fmt = self.fmt
        try:
            table = self.cache.table(table_pa, fmt.table_size(i))
        except PhysicalReadError:
            return 1
        vmask, decode, last = fmt.valid_mask, fmt.decode, len(fmt.levels) - 1
        n = 0
        for raw in table:
            if not raw & vmask:
                continue
            n += 1
            if i < last and decode(raw, i) == ENTRY_TABLE:
                n += self.entries_under(fmt.output_address(raw), i + 1)
        self.counts[key] = n
        return n

    def fault(self, table_pa: int, i: int, base: int, reason: str, raws: Tuple[int, ...],
              other_level: Optional[int], detail: str):
        if reason == TABLE_LOOP:
            detail = f"table pa 0x{table_pa:x} already used at {self.fmt.levels[other_level].name}"
        yield _table_fault(self.fmt, i, self.va_of(self.fmt, base, self.high), table_pa, reason, detail)

    def again(self, table_pa: int, i: int, base: int, raws: Tuple[int, ...]):
        n = self.entries_under(table_pa, i)
        if n > self.budget:
            self.budget = 0
            yield _table_fault(self.fmt, i, self.va_of(self.fmt, base, self.high), table_pa, TABLE_FAN_OUT,
                               f"table pa 0x{table_pa:x} at {self.fmt.levels[i].name} is reached again "
                               f"here; its {n} entries are counted, not listed again (more than "
                               f"{self.max_shared} entries of shared tables)")
            return None
        self.budget -= n
        return READ

    def page(self, table_pa: int, i: int, base_bits: int, table: memoryview, raws: Tuple[int, ...],
             descend: Descend):
        fmt = self.fmt
        lv = fmt.levels[i]
        span = 1 << lv.shift
        va_of, high = self.va_of, self.high
        va_start, va_end = self.va_start, self.va_end
        vmask = fmt.valid_mask
        addr_of = fmt.output_address
        va0 = va_of(fmt, base_bits, high)
        reserved_left = MAX_RESERVED_PER_TABLE
        is_last, tmask, tvalue, leaf_ok, res_leaf, res_table = self.masks[i]
        leaf_here = is_last or leaf_ok
        shift = lv.shift
        # below the root every entry shares the root entry's half (its sign extension)
        ext = None if i == 0 else va0 ^ base_bits
        for idx in range(1 << lv.bits):
            raw = table[idx]
            if not raw & vmask:
                continue
            bits_value = base_bits | (idx << shift)
            va = va_of(fmt, bits_value, high) if ext is None else bits_value | ext
            if va + span <= va_start or va >= va_end:
                continue
            # PagingFormat.decode(raw, i), inlined with the same masks (this loop is hot)
            if (raw & tmask) == tvalue:
                if leaf_here and not raw & res_leaf:
                    yield TreeEntry("leaf", i, va, span, raw, table_pa, idx, raws + (raw,))
                    continue
            elif not (is_last or raw & res_table):
                yield TreeEntry("table", i, va, span, raw, table_pa, idx, raws + (raw,))
                yield from descend(addr_of(raw), i + 1, bits_value, raws + (raw,))
                continue
            if reserved_left:       # a reserved encoding
                reserved_left -= 1
                yield reserved_fault(fmt, i, va, table_pa, idx, raw)
        return None


def sweep(fmt: PagingFormat, cache: TableCache, root_pa: int, va_start: int = 0,
          va_end: int = 1 << 64, high: bool = True, max_shared: int = MAX_SHARED_ENTRIES,
          ) -> Iterator["TreeEntry | Fault"]:
    """Yield every valid entry under ``root_pa`` covering ``[va_start, va_end)``.

    A visitor of the one tree walk (:func:`kmemdbg.tree.walk_range`).
    Entries are decoded by :meth:`PagingFormat.decode`, as every walk does: a
    valid entry with a reserved encoding yields a ``reserved-bits`` Fault (at
    most :data:`MAX_RESERVED_PER_TABLE` per table), as the ptdump sweep
    reports it, instead of being dropped.

    Entries come in increasing VA order; each table page is read once per
    sweep even when it is shared (the KASAN early shadow maps one PTE table
    many times: its entries are still yielded at every VA they map).  A
    table met again at a different level is a loop and yields a Fault
    instead of being descended.  Repeating shared tables is bounded: once
    ``max_shared`` entries have been yielded again from tables already swept,
    a shared table met again yields one ``table-fan-out`` Fault that
    counts its entries instead of listing them, so tables that fan out (every
    entry of one table pointing at the same table, several levels deep) cost
    time in the number of table pages, not in the mappings they describe.
    """
    if root_pa % fmt.root_align:
        return
    level_of: Dict[int, int] = {}
    visitor = _EntrySweep(fmt, cache, va_start, va_end, high, max_shared, level_of)
    yield from walk_range(fmt, cache, root_pa, visitor, level_of, ())


class _TablePages:
    """The :func:`table_pages` visitor: descends every table entry once, yields nothing."""

    def __init__(self, fmt: PagingFormat) -> None:
        self.fmt = fmt
        self.last = len(fmt.levels) - 1

    def fault(self, table_pa: int, i: int, base: int, reason: str, ctx: None,
              other_level: Optional[int], detail: str):
        return None
        yield  # a generator that yields nothing: loops and holes are not listed here

    def again(self, table_pa: int, i: int, base: int, ctx: None):
        return None          # a table is descended once, however many entries point at it
        yield

    def page(self, table_pa: int, i: int, base: int, table: memoryview, ctx: None, descend: Descend):
        if i == self.last:
            return None
        decode, addr_of = self.fmt.decode, self.fmt.output_address
        for raw in table:
            if decode(raw, i) == ENTRY_TABLE:
                yield from descend(addr_of(raw), i + 1, 0, None)
        return None


def table_pages(fmt: PagingFormat, cache: TableCache, root_pa: int,
                high: bool = True) -> Dict[int, int]:
    """Every readable table page under ``root_pa``: physical address -> level index.

    A visitor of the one tree walk (:func:`kmemdbg.tree.walk_range`).  Each
    table page is visited once, however many entries point at it; a table is
    recorded at the level where it is first met in VA order and a table met
    again at another level (a loop) is not descended again.
    """
    if root_pa % fmt.root_align:
        return {}
    level_of: Dict[int, int] = {}
    fold(walk_range(fmt, cache, root_pa, _TablePages(fmt), level_of))
    return {pa: lvl for pa, lvl in level_of.items() if cache.cached(pa) is not None}


def leaves(fmt: PagingFormat, cache: TableCache, root_pa: int, va_start: int = 0,
           va_end: int = 1 << 64, high: bool = True) -> Iterator[TreeEntry]:
    """Only the leaves of :func:`sweep`."""
    for item in sweep(fmt, cache, root_pa, va_start, va_end, high):
        if isinstance(item, TreeEntry) and item.kind == "leaf":
            yield item


def leaf_pa(fmt: PagingFormat, entry: TreeEntry) -> int:
    """Physical address of the first byte a leaf entry maps."""
    return fmt.output_address(entry.raw) & ~(entry.size - 1)


__all__ = ["TreeEntry", "Fault", "reserved_fault", "MAX_RESERVED_PER_TABLE", "sweep", "table_pages", "leaves", "leaf_pa", "MAX_SHARED_ENTRIES"]
