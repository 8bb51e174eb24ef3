"""An address space of the model: page tables written into SparseMemory,
plus the ground truth of every mapping, kept apart from the tables.

The truth is a record of what was asked for (dicts keyed by level and
virtual-address bits), never a walk of the bytes in memory, so a wrong
encoder shows up as a disagreement with any walker instead of hiding in it.

Integers named ``va`` are virtual addresses, ``pa`` physical addresses,
``*_size`` sizes in bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple

from .alloc import FrameAllocator
from .geometry import M64, Geometry
from .physmem import FRAME_SHIFT, FRAME_SIZE, SparseMemory

_U64 = struct.Struct("<Q")

STATUSES = ("mapped", "unmapped", "non-canonical", "prot-none", "swap", "not-present", "raw")


@dataclass(frozen=True)
class Truth:
    """What the model put in place for virtual address ``va``.

    ``status`` is one of :data:`STATUSES`.  For "mapped" and "prot-none",
    ``pa`` is the physical address ``va`` corresponds to and ``page_size``
    the bytes covered by the deciding entry (contiguous runs are reported in
    ``contiguous_size``).  ``level``, ``entry_pa`` (physical) and ``raw`` name
    the deciding entry when there is one; for "unmapped" that is the empty
    entry where a walk must stop.
    """

    va: int
    status: str
    reason: str = ""
    pa: Optional[int] = None
    page_size: Optional[int] = None
    level: Optional[str] = None
    entry_pa: Optional[int] = None
    raw: Optional[int] = None
    flags: FrozenSet[str] = frozenset()
    writable: Optional[bool] = None
    executable: Optional[bool] = None
    user: Optional[bool] = None
    pkey: int = 0
    attr_index: Optional[int] = None
    contiguous_size: Optional[int] = None
    swap_type: Optional[int] = None
    swap_offset: Optional[int] = None

    @property
    def mapped(self) -> bool:
        return self.status == "mapped"


@dataclass(frozen=True)
class MappedRange:
    """A run of virtual addresses mapped to contiguous physical ones.

    Unpacks as ``(va, size, pa, page_size)``: start virtual address, length
    in bytes, start physical address, and the leaf size in bytes.
    """

    va: int
    size: int
    pa: int
    page_size: int

    def __iter__(self):
        return iter((self.va, self.size, self.pa, self.page_size))


@dataclass
class _Table:
    pa: int
    flags: FrozenSet[str]          # attributes in the entry pointing at this table


@dataclass
class _Entry:
    kind: str                       # mapped / prot-none / swap / not-present / raw
    va: int                         # first virtual address the entry covers
    raw: int
    pa: Optional[int] = None
    flags: FrozenSet[str] = frozenset()
    pkey: int = 0
    attr_index: Optional[int] = None
    cont_size: Optional[int] = None
    swap: Optional[Tuple[int, int]] = None
    extra: Dict[str, object] = field(default_factory=dict)


class AddressSpace:
    """One page-table tree rooted at physical ``root_pa``.

    ``geometry`` says which VA bits index which level; ``encoder`` (from
    :mod:`.x86` or :mod:`.arm64`) turns mappings into raw entries.
    ``canonical_bits`` is the run-time VA size.  ``half`` is "upper" for an
    arm64 TTBR1 (kernel) root, whose addresses lie in the top
    ``2**canonical_bits`` bytes, "lower" for a TTBR0 root, and "both" for
    x86-64, where addresses are sign-extended from bit canonical_bits-1.
    """

    def __init__(self, geometry: Geometry, encoder, memory: SparseMemory,
                 allocator: FrameAllocator, *, root_pa: Optional[int] = None,
                 canonical_bits: Optional[int] = None, half: str = "both") -> None:
        self.geometry = geometry
        self.encoder = encoder
        self.memory = memory
        self.allocator = allocator
        self.canonical_bits = canonical_bits or geometry.va_bits
        if half not in ("both", "upper", "lower"):
            raise ValueError("half must be 'both', 'upper' or 'lower'")
        self.half = half
        if root_pa is None:
            root_pa = allocator.alloc(geometry.table_bytes)
        self.root_pa = root_pa
        self._tables: Dict[Tuple[int, int], _Table] = {(0, 0): _Table(root_pa, frozenset())}
        self._entries: Dict[Tuple[int, int], _Entry] = {}
        self._sorted: Optional[List[Tuple[int, int]]] = None

    # -- low level ------------------------------------------------------------
    def _write(self, pa: int, raw: int) -> None:
        _U64.pack_into(self.memory.frame(pa >> FRAME_SHIFT), pa & (FRAME_SIZE - 1), raw & M64)

    def entry_pa(self, va: int, depth: int) -> Optional[int]:
        """Physical address of the entry for ``va`` at ``depth``, None if no table is there."""
        table = self._tables.get((depth, self.geometry.prefix(va, depth)))
        if table is None:
            return None
        return table.pa + 8 * self.geometry.index(va, depth)

    def table_pa(self, va: int, depth: int, table_flags: Optional[FrozenSet[str]] = None) -> int:
        """Physical address of the table at ``depth`` on the path of ``va``, created if missing."""
        geo = self.geometry
        table = self._tables[(0, 0)]
        for d in range(1, depth + 1):
            key = (d, geo.prefix(va, d))
            child = self._tables.get(key)
            if child is None:
                parent_key = (d - 1, geo.entry_key(va, d - 1))
                if parent_key in self._entries:
                    raise ValueError(f"0x{va:016x}: a leaf or planted entry at "
                                     f"{geo.levels[d - 1].name} is in the way")
                flags = frozenset(self.encoder.default_table_flags
                                  if table_flags is None else table_flags)
                child = _Table(self.allocator.alloc(geo.table_bytes), flags)
                self._write(table.pa + 8 * geo.index(va, d - 1), self.encoder.table(child.pa, flags))
                self._tables[key] = child
            table = child
        return table.pa

    def _has_subtree(self, va: int, depth: int) -> bool:
        return depth + 1 < len(self.geometry.levels) and \
            (depth + 1, self.geometry.entry_key(va, depth)) in self._tables

    def _set(self, va: int, depth: int, entry: _Entry, table_flags, replace: bool = False) -> None:
        key = (depth, self.geometry.entry_key(va, depth))
        if not replace and (key in self._entries or self._has_subtree(va, depth)):
            raise ValueError(f"0x{va:016x}: already mapped at or below "
                             f"{self.geometry.levels[depth].name}")
        tpa = self.table_pa(va, depth, table_flags)
        self._write(tpa + 8 * self.geometry.index(va, depth), entry.raw)
        self._entries[key] = entry
        self._sorted = None

    def _check(self, va: int, pa: Optional[int], size: int, page_size: int) -> int:
        depth = self.geometry.depth_for_size(page_size)
        if not self.geometry.levels[depth].leaf_ok:
            raise ValueError(f"{self.geometry.levels[depth].name} cannot hold a leaf")
        if va & (page_size - 1) or size % page_size or size <= 0 or (pa or 0) & (page_size - 1):
            raise ValueError(f"0x{va:016x}+0x{size:x} (pa 0x{pa or 0:x}) is not "
                             f"aligned to 0x{page_size:x}")
        if not self.is_canonical(va) or not self.is_canonical((va + size - 1) & M64):
            raise ValueError(f"0x{va:016x}+0x{size:x} is not in this address space")
        return depth

    # -- building -----------------------------------------------------------------
    def map(self, va: int, pa: int, size: int, page_size: int,
            flags: Optional[FrozenSet[str]] = None, *, cont: bool = False, pkey: int = 0,
            attr_index: Optional[int] = None,
            table_flags: Optional[FrozenSet[str]] = None) -> None:
        """Map virtual ``[va, va+size)`` to physical ``[pa, pa+size)`` with ``page_size`` leaves.

        ``cont`` (arm64) sets the contiguous hint on every naturally aligned
        run of CONT_PTES/CONT_PMDS entries that lies wholly inside the range
        with matching physical alignment, as the kernel's alloc_init_cont_pte()
        does.  Raises ValueError on overlap or misalignment.
        """
        depth = self._check(va, pa, size, page_size)
        geo = self.geometry
        last = depth == len(geo.levels) - 1
        flags = frozenset(self.encoder.default_leaf_flags if flags is None else flags)
        run = 0
        if cont:
            from .arm64 import cont_entries
            run = cont_entries(geo.page_shift, not last) * page_size
        kw = {} if attr_index is None else {"attr_index": attr_index}
        for off in range(0, size, page_size):
            cur = (va + off) & M64
            in_run = bool(run) and (cur & (run - 1)) == ((pa + off) & (run - 1)) and \
                (cur - (cur & (run - 1))) >= va and cur - (cur & (run - 1)) + run <= va + size
            raw = self.encoder.leaf(pa + off, page_size, last, flags, pkey=pkey, cont=in_run, **kw)
            self._set(cur, depth, _Entry("mapped", cur, raw, pa + off,
                                         flags | ({"CONT"} if in_run else frozenset()), pkey,
                                         attr_index, run if in_run else None), table_flags)

    def map_largest(self, va: int, pa: int, size: int, flags: Optional[FrozenSet[str]] = None,
                    *, max_page: Optional[int] = None, cont: bool = False,
                    table_flags: Optional[FrozenSet[str]] = None, **kw) -> None:
        """Map a range with the largest leaves alignment allows (like the linear map).

        ``max_page`` caps the leaf size; smaller leaves fill the unaligned
        head and tail.
        """
        geo = self.geometry
        sizes = sorted((lv.entry_span for lv in geo.levels if lv.leaf_ok
                        and (max_page is None or lv.entry_span <= max_page)), reverse=True)
        end = size

        def fits(off: int, ps: int) -> bool:
            return (va + off) % ps == 0 and (pa + off) % ps == 0 and off + ps <= end

        off = 0
        while off < end:
            ps = next((p for p in sizes if fits(off, p)), None)
            if ps is None:
                raise ValueError(f"0x{va + off:016x} cannot be mapped to 0x{pa + off:x}")
            larger = [p for p in sizes if p > ps]
            n = ps
            while off + n + ps <= end and not any(fits(off + n, p) for p in larger):
                n += ps
            self.map(va + off, pa + off, n, ps, flags, cont=cont, table_flags=table_flags, **kw)
            off += n

    def set_prot_none(self, va: int, pa: int, page_size: Optional[int] = None) -> int:
        """Make ``va`` a PROT_NONE entry remembering physical ``pa``; returns the raw entry."""
        page_size = page_size or self.geometry.page_size
        depth = self._check(va, pa, page_size, page_size)
        raw = self.encoder.protnone(pa, page_size, depth == len(self.geometry.levels) - 1)
        self._set(va, depth, _Entry("prot-none", va, raw, pa), None)
        return raw

    def set_not_present(self, va: int, pa: int, page_size: Optional[int] = None) -> int:
        """Make ``va`` a non-present entry that still carries physical ``pa`` (e.g. an
        unmapped direct-map page); returns the raw entry."""
        page_size = page_size or self.geometry.page_size
        depth = self._check(va, pa, page_size, page_size)
        raw = self.encoder.not_present(pa, page_size, depth == len(self.geometry.levels) - 1)
        self._set(va, depth, _Entry("not-present", va, raw, pa), None)
        return raw

    def set_swap(self, va: int, swap_type: int, offset: int) -> int:
        """Make the base page at ``va`` a swap entry; returns the raw entry."""
        ps = self.geometry.page_size
        depth = self._check(va, None, ps, ps)
        raw = self.encoder.swap(swap_type, offset)
        self._set(va, depth, _Entry("swap", va, raw, swap=(swap_type, offset)), None)
        return raw

    def plant(self, va: int, level: str, raw: int) -> int:
        """Write ``raw`` as the entry for ``va`` at ``level`` (tables above are created).

        Anything the model had below that entry is forgotten; ``truth()``
        reports "raw" for the entry's whole span.  Returns the entry's
        physical address.  For loops, plant e.g.
        ``encoder.table(space.root_pa)`` at a lower level.
        """
        geo = self.geometry
        depth = geo.depth_of(level)
        span = geo.levels[depth].entry_span
        base = va & ~(span - 1) & M64
        # Forget the subtree: its tables stay in memory but are unreachable.
        key_bits = geo.entry_key(va, depth)
        for d in range(depth + 1, len(geo.levels)):
            shift = geo.levels[depth].shift - (geo.levels[d].shift + geo.levels[d].bits)
            for key in [k for k in self._tables if k[0] == d and k[1] >> shift == key_bits]:
                del self._tables[key]
            eshift = geo.levels[depth].shift - geo.levels[d].shift
            for key in [k for k in self._entries if k[0] == d and k[1] >> eshift == key_bits]:
                del self._entries[key]
        self._set(base, depth, _Entry("raw", base, raw), None, replace=True)
        return self.entry_pa(va, depth)  # type: ignore[return-value]

    def plant_at(self, entry_pa: int, raw: int) -> None:
        """Write ``raw`` at physical ``entry_pa`` with no bookkeeping (truth is not updated)."""
        self._write(entry_pa, raw)

    # -- ground truth ---------------------------------------------------------------
    def is_canonical(self, va: int) -> bool:
        """True if ``va`` can be translated by this root at the run-time VA size."""
        bits = self.canonical_bits
        if self.half == "upper":
            return va >= (1 << 64) - (1 << bits)
        if self.half == "lower":
            return va < 1 << bits
        top = va >> (bits - 1)
        return top == 0 or top == (1 << (65 - bits)) - 1

    def truth(self, va: int) -> Truth:
        """Ground truth for virtual ``va``, from the record of what was mapped."""
        va &= M64
        if not self.is_canonical(va):
            if self.half == "upper" and va < 1 << self.canonical_bits:
                return Truth(va, "unmapped", "user (TTBR0) address: the kernel root does "
                             "not translate it")
            if self.half == "lower" and va >= (1 << 64) - (1 << self.canonical_bits):
                return Truth(va, "unmapped", "kernel (TTBR1) address: a user root does "
                             "not translate it")
            return Truth(va, "non-canonical",
                         f"outside the {self.canonical_bits}-bit virtual address space")
        geo = self.geometry
        path: List[FrozenSet[str]] = []
        for depth, level in enumerate(geo.levels):
            table = self._tables.get((depth, geo.prefix(va, depth)))
            if table is None:  # pragma: no cover - tables are created top-down
                break
            if depth:
                path.append(table.flags)
            entry_pa = table.pa + 8 * geo.index(va, depth)
            ent = self._entries.get((depth, geo.entry_key(va, depth)))
            if ent is not None:
                return self._truth_of(va, depth, entry_pa, ent, path)
            if (depth + 1, geo.prefix(va, depth + 1) if depth + 1 < len(geo.levels) else -1) \
                    not in self._tables:
                return Truth(va, "unmapped", f"empty {level.name} entry", level=level.name,
                             entry_pa=entry_pa, raw=0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _truth_of(self, va: int, depth: int, entry_pa: int, ent: _Entry,
                  path: List[FrozenSet[str]]) -> Truth:
        level = self.geometry.levels[depth]
        span = level.entry_span
        common = dict(level=level.name, entry_pa=entry_pa, raw=ent.raw, page_size=span)
        if ent.kind == "mapped":
            eff = self.encoder.effective(ent.flags, path)
            return Truth(va, "mapped", f"{level.name} leaf", pa=ent.pa + (va & (span - 1)),
                         flags=ent.flags, pkey=ent.pkey, attr_index=ent.attr_index,
                         contiguous_size=ent.cont_size, **eff, **common)
        if ent.kind in ("prot-none", "not-present"):
            return Truth(va, ent.kind, f"non-present {level.name} entry",
                         pa=ent.pa + (va & (span - 1)), **common)
        if ent.kind == "swap":
            return Truth(va, "swap", f"swap entry at {level.name}", swap_type=ent.swap[0],
                         swap_offset=ent.swap[1], **common)
        return Truth(va, "raw", f"planted {level.name} entry 0x{ent.raw:016x}", **common)

    def entries(self) -> Iterator[Tuple[str, int, int, str]]:
        """``(level, va, raw, kind)`` of every entry the model recorded, by VA."""
        for depth, key in self._sorted_keys():
            ent = self._entries[(depth, key)]
            yield self.geometry.levels[depth].name, ent.va, ent.raw, ent.kind

    def _sorted_keys(self) -> List[Tuple[int, int]]:
        if self._sorted is None:
            self._sorted = sorted(self._entries, key=lambda k: self._entries[k].va)
        return self._sorted

    def mapped_ranges(self) -> Iterator[MappedRange]:
        """Coalesced runs of present mappings, ascending by VA (sizes in bytes)."""
        cur: Optional[List[int]] = None
        for depth, key in self._sorted_keys():
            ent = self._entries[(depth, key)]
            if ent.kind != "mapped":
                continue
            span = self.geometry.levels[depth].entry_span
            if cur and cur[0] + cur[1] == ent.va and cur[2] + cur[1] == ent.pa and cur[3] == span:
                cur[1] += span
                continue
            if cur:
                yield MappedRange(*cur)
            cur = [ent.va, span, ent.pa, span]
        if cur:
            yield MappedRange(*cur)

    def table_count(self) -> int:
        return len(self._tables)
