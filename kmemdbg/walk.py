"""Point and batch translation of virtual addresses, and the one :class:`Fault` type.

:class:`Walker` reads a :class:`~kmemdbg.arch.base.PagingFormat` and a
physical memory source and translates virtual addresses.  Every walk returns
a frozen :class:`Walk`; a translation that cannot be made ends in a
:class:`Fault` value, never in an exception.

Walks over a VA range (table sweeps, ptdump, the audits, the inverted map)
are visitors of the one tree walk, :func:`kmemdbg.tree.walk_range`.  A
translation follows one path, not a range: :meth:`Walker.walk` (point) and
:meth:`Walker.translate_many` (batch, memoised per VA prefix) are its
specialised hot paths over the same decoder, the per-level masks of
:meth:`PagingFormat.decode`, inlined; they detect loops and unreadable
tables as the tree walk does.

Addresses: ``va`` is virtual; ``pa``, ``table_pa``, ``entry_pa`` and
``root_pa`` are physical.  Sizes are in bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from .arch.base import (ENTRY_INVALID, ENTRY_LEAF, ENTRY_RESERVED, ENTRY_TABLE, MASK64, NON_CANONICAL, NOT_PRESENT,
                        RESERVED, ROOT_MISALIGNED, TABLE_LOOP, TABLE_UNREADABLE, PagingFormat, Permissions)
from .errors import PhysicalReadError
from .memory import PhysicalMemory, TableCache

TABLE = "table"
LEAF = "leaf"
INVALID = "invalid"


class Step(NamedTuple):
    """One level of a walk: the entry read at ``entry_pa`` in the table at ``table_pa``.

    An immutable typed record (a NamedTuple: walks build millions of them, and
    it is three times cheaper to create than a frozen dataclass).

    ``kind`` is ``"table"`` (points at the next table), ``"leaf"`` (maps
    memory) or ``"invalid"`` (stopped the walk).  ``flags`` are the decoded
    bit names of ``raw`` in bit order (plus the memory type of a leaf).
    """

    level: str
    table_pa: int
    index: int
    entry_pa: int
    raw: int
    kind: str
    flags: Tuple[str, ...]


@dataclass(frozen=True)
class Fault:
    """Why a walk or a sweep could not translate: ``reason`` (``arch.base.FAULT_REASONS``,
    or ``table-fan-out`` for sweeps) at the level named ``level`` (index ``depth``, 0 = root).

    The one fault type of point walks, batch walks, tree sweeps and the ptdump
    sweep.  ``entry_pa``/``raw``/``index`` identify the entry at fault when
    there is one; ``table_pa`` the table being read (physical).  Sweeps also
    give the virtual range ``[start, end)`` the fault hides (``va``/``size``
    are the same as a start and a length).  ``detail`` is a human sentence.
    """

    level: Optional[str]
    reason: str
    detail: str
    table_pa: Optional[int] = None
    entry_pa: Optional[int] = None
    raw: Optional[int] = None
    index: Optional[int] = None
    depth: Optional[int] = None
    start: Optional[int] = None
    end: Optional[int] = None

    @property
    def va(self) -> Optional[int]:
        """First virtual address of the range the fault hides (sweeps), else None."""
        return self.start

    @property
    def size(self) -> Optional[int]:
        """Bytes of virtual address space the fault hides (sweeps), else None."""
        return None if self.start is None or self.end is None else self.end - self.start

    def message(self, va: int) -> str:
        """One line: ``0x...: not mapped: PTE[292] = 0x0 (table at pa 0x103000): detail``."""
        where = ""
        if self.level is not None and self.index is not None and self.raw is not None:
            where = f": {self.level}[{self.index}] = 0x{self.raw:x}"
        elif self.level is not None:
            where = f": at {self.level}"
        table = f" (table at pa 0x{self.table_pa:x})" if self.table_pa is not None else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"0x{va:016x}: {self.reason}{where}{table}{detail}"


@dataclass(frozen=True)
class Walk:
    """The full record of translating ``va`` with format ``format_name``.

    ``pa`` is the physical address of ``va`` and ``page_size`` the size of
    the leaf that maps it, both None when ``fault`` is set.
    """

    va: int
    format_name: str
    root_pa: int
    steps: Tuple[Step, ...]
    pa: Optional[int]
    page_size: Optional[int]
    permissions: Optional[Permissions]
    fault: Optional[Fault]

    @property
    def mapped(self) -> bool:
        return self.fault is None

    @property
    def leaf(self) -> Optional[Step]:
        return self.steps[-1] if self.fault is None and self.steps else None


@dataclass(frozen=True)
class BatchResult:
    """Translations of many addresses: parallel tuples indexed like ``vas``.

    ``pas[i]``/``page_sizes[i]`` are None where ``faults[i]`` holds
    ``(level name or None, reason)``.
    """

    vas: Tuple[int, ...]
    pas: Tuple[Optional[int], ...]
    page_sizes: Tuple[Optional[int], ...]
    faults: Tuple[Optional[Tuple[Optional[str], str]], ...]

    def __len__(self) -> int:
        return len(self.vas)


class Walker:
    """Translates virtual addresses through the tables rooted at physical ``root_pa``.

    One walker holds one :class:`TableCache`, so every walk through it
    shares table pages already read.  Pass ``cache`` to share it with other
    walkers of the same snapshot (for example kernel and user roots).
    """

    def __init__(self, fmt: PagingFormat, memory: PhysicalMemory, root_pa: int,
                 cache: Optional[TableCache] = None, half: str = "both") -> None:
        if half not in ("both", "upper", "lower"):
            raise ValueError(f"half must be both, upper or lower, not {half!r}")
        self.half = half
        self.format = fmt
        self.memory = memory
        self.root_pa = root_pa
        self.cache = cache if cache is not None else TableCache(memory)
        self._nlev = len(fmt.levels)
        self._zero_fill = bool(getattr(memory, "zero_fills_holes", False))
        # batch memo: per level i, key va >> (shift_i + bits_i) -> node
        self._memo: List[Dict[int, tuple]] = [dict() for _ in fmt.levels]
        self._span = tuple(lv.shift + lv.bits for lv in fmt.levels)

    # -- single walks -----------------------------------------------------
    def walk(self, va: int) -> Walk:
        """Translate ``va`` and record every level; never raises for bad tables."""
        fmt = self.format
        va &= MASK64
        if not fmt.in_range(va):
            return self._done(va, (), None, None, None, Fault(
                None, NON_CANONICAL, f"outside the {fmt.va_bits}-bit translated ranges of {fmt.name}"))
        if self.half != "both" and (va >> 63 == 1) != (self.half == "upper"):
            # arm64: TTBR1 tables translate only the upper half, TTBR0 the lower
            return self._done(va, (), None, None, None, Fault(
                None, NOT_PRESENT, f"these tables translate only the {self.half} half "
                                   f"({'kernel' if self.half == 'upper' else 'user'} addresses)"))
        if self.root_pa % fmt.root_align:
            return self._done(va, (), None, None, None, Fault(
                fmt.levels[0].name, ROOT_MISALIGNED,
                f"root table pa 0x{self.root_pa:x} is not {fmt.root_align}-byte aligned",
                table_pa=self.root_pa, depth=0))
        steps: List[Step] = []
        raws: List[int] = []
        seen: Dict[int, int] = {}
        table_pa = self.root_pa
        levels = fmt.levels
        masks, vmask = fmt._decode_masks(), fmt.valid_mask
        for i, lv in enumerate(levels):
            prev = seen.get(table_pa)
            if prev is not None and prev != i:
                return self._done(va, steps, None, None, None, Fault(
                    lv.name, TABLE_LOOP,
                    f"table pa 0x{table_pa:x} already used at level {levels[prev].name}",
                    table_pa=table_pa, depth=i))
            seen[table_pa] = i
            try:
                table = self.cache.table(table_pa, fmt.table_size(i))
            except PhysicalReadError as err:
                return self._done(va, steps, None, None, None, Fault(
                    lv.name, TABLE_UNREADABLE, err.reason, table_pa=table_pa, depth=i))
            idx = (va >> lv.shift) & ((1 << lv.bits) - 1)
            raw = table[idx]
            entry_pa = table_pa + idx * 8
            # PagingFormat.decode(raw, i), inlined with the same masks (walks are hot)
            if not raw & vmask:
                kind = ENTRY_INVALID
            else:
                is_last, tmask, tvalue, leaf_ok, res_leaf, res_table = masks[i]
                if (raw & tmask) == tvalue:
                    kind = ENTRY_LEAF if (is_last or leaf_ok) and not raw & res_leaf else ENTRY_RESERVED
                else:
                    kind = ENTRY_RESERVED if is_last or raw & res_table else ENTRY_TABLE
            if kind == ENTRY_INVALID:
                inv = fmt.invalid(raw, i, va)
                detail = inv.detail
                if raw == 0 and self._zero_fill:
                    detail += "; this source reads holes as zeros, so the table may be a hole"
                steps.append(Step(lv.name, table_pa, idx, entry_pa, raw, "invalid", ()))
                return self._done(va, steps, None, None, None, Fault(
                    lv.name, inv.reason, detail, table_pa, entry_pa, raw, idx, i))
            if kind == ENTRY_RESERVED:
                return self._reserved(va, steps, lv.name, table_pa, idx, raw,
                                      fmt.reserved_reason(raw, i), i)
            leaf = kind == ENTRY_LEAF
            out = fmt.output_address(raw)
            raws.append(raw)
            steps.append(Step(lv.name, table_pa, idx, entry_pa, raw,
                              LEAF if leaf else TABLE, fmt.flags(raw, i, leaf)))
            if leaf:
                size = lv.leaf_size
                pa = (out & ~(size - 1)) | (va & (size - 1))
                return self._done(va, steps, pa, size, fmt.permissions(raws, i), None)
            table_pa = out
        raise AssertionError("unreachable: the last level is always a leaf")  # pragma: no cover

    def _reserved(self, va, steps, level, table_pa, idx, raw, why, depth) -> Walk:
        entry_pa = table_pa + idx * 8
        steps = list(steps) + [Step(level, table_pa, idx, entry_pa, raw, INVALID, ())]
        return self._done(va, steps, None, None, None,
                          Fault(level, RESERVED, why, table_pa, entry_pa, raw, idx, depth))

    def _done(self, va, steps, pa, size, perms, fault) -> Walk:
        return Walk(va, self.format.name, self.root_pa, tuple(steps), pa, size, perms, fault)

    # -- batches ----------------------------------------------------------
    def translate_many(self, vas: Iterable[int]) -> BatchResult:
        """Translate many virtual addresses, sharing table reads and upper levels.

        Returns the physical address and leaf size of each, or the level and
        reason of its fault, exactly as :meth:`walk` would give them.  Tables
        and terminal entries met on the way are remembered per VA prefix, so
        later addresses under the same table cost one entry decode.
        """
        vas = tuple(v & MASK64 for v in vas)
        pas: List[Optional[int]] = []
        sizes: List[Optional[int]] = []
        faults: List[Optional[Tuple[Optional[str], str]]] = []
        memo, span = self._memo, self._span
        fmt = self.format
        last = self._nlev - 1
        lvl_last = fmt.levels[last]
        lname, lshift, lmask = lvl_last.name, lvl_last.shift, (1 << lvl_last.bits) - 1
        vmask, pmask, pvalue = fmt.valid_mask, fmt.page_mask, fmt.page_value
        res_last = fmt.reserved_leaf[last]
        page = lvl_last.leaf_size
        addr_of = fmt.output_address
        single = fmt.address[0].mask if len(fmt.address) == 1 and fmt.address[0].shift == 0 else 0
        order = [(memo[i], span[i]) for i in range(last, 0, -1)]
        in_range, invalid = fmt.in_range, fmt.invalid
        half_bit = {"both": None, "upper": 1, "lower": 0}[self.half]
        for va in vas:
            node = None
            if half_bit is not None and va >> 63 != half_bit:
                pas.append(None)
                sizes.append(None)
                faults.append((None, NOT_PRESENT if in_range(va) else NON_CANONICAL))
                continue
            for table, sp in order:
                node = table.get(va >> sp)
                if node is not None:
                    break
            if node is not None:
                kind = node[0]
                if kind == "T":
                    raw = node[1][(va >> lshift) & lmask]
                    if raw & vmask:
                        if (raw & pmask) == pvalue and not raw & res_last:
                            out = (raw & single) if single else addr_of(raw)
                            pas.append((out & ~(page - 1)) | (va & (page - 1)))
                            sizes.append(page)
                            faults.append(None)
                            continue
                    else:
                        pas.append(None)
                        sizes.append(None)
                        faults.append((lname, invalid(raw, last, va).reason))
                        continue
                elif kind == "L":
                    size = node[2]
                    pas.append(node[1] | (va & (size - 1)))
                    sizes.append(size)
                    faults.append(None)
                    continue
                elif kind == "F" and in_range(va):
                    pas.append(None)
                    sizes.append(None)
                    faults.append(node[1])
                    continue
            pa, size, fault = self._batch_slow(va)
            pas.append(pa)
            sizes.append(size)
            faults.append(fault)
        return BatchResult(vas, tuple(pas), tuple(sizes), tuple(faults))

    def _batch_slow(self, va: int):
        """Walk ``va`` fully and remember the tables and terminal entries it met."""
        walk = self.walk(va)
        memo, span = self._memo, self._span
        steps = walk.steps
        n = len(steps)
        last = self._nlev - 1
        if n == last + 1:
            # Only the last-level table is worth remembering: upper tables
            # are reached again only when the deeper memo misses anyway.
            table = self.cache.cached(steps[last].table_pa)
            if table is not None:
                memo[last].setdefault(va >> span[last], ("T", table))
        fault = walk.fault
        if fault is None:
            j = n - 1
            if j + 1 < self._nlev:
                size = walk.page_size
                memo[j + 1][va >> span[j + 1]] = ("L", walk.pa & ~(size - 1), size)
            return walk.pa, walk.page_size, None
        result = (fault.level, fault.reason)
        # An entry-level fault covers exactly the region of that entry; its
        # kind does not depend on the VA inside it except for swap entries,
        # which only occur at the last level (not memoised here).
        if fault.raw is not None and fault.reason != "swap" and n and n < self._nlev:
            memo[n][va >> span[n]] = ("F", result)
        return None, None, result
    def walks(self, vas: Sequence[int]) -> List[Walk]:
        """Full walk records for many addresses (sharing the table cache)."""
        return [self.walk(v) for v in vas]
