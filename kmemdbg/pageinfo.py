"""The ``struct page`` of one frame, decoded: what the ``page`` command (and vtop's page line) shows.

A frame is named four ways, and the caller says which (:func:`resolve_frame`):
a page frame number, a physical address, a ``struct page`` pointer (an
address in the vmemmap array), or a kernel virtual address, translated by
walking the kernel's page tables (a va in the vmemmap region is taken as a
``struct page`` pointer, and said so).

Everything read comes from the dump: the ``struct page`` bytes through the
kernel's own tables, offsets from VMCOREINFO (``OFFSET(page.*)``,
``SIZE(page)``), flag and type names from the kernel's BTF (``enum
pageflags``, ``enum pagetype``) or else VMCOREINFO (``NUMBER(PG_*)``,
``NUMBER(PAGE_*_MAPCOUNT_VALUE)``), the slab cache from ``struct slab``
(BTF), page-table pages from a sweep of the kernel tables, and the kernel
virtual addresses mapping the frame from the inverted sweep
(:meth:`kmemdbg.kernel.Kernel.phys_to_virts`).

Addresses: ``pa`` physical, ``*_va`` kernel virtual; ``pfn`` is ``pa >> PAGE_SHIFT``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from .errors import KmemdbgError
from .linux.page import (PageFlagNames, PageOffsets, PageTypeNames, page_flag_names, page_offset,
                         page_type_names)
from .linux.slab import SlabMarks, is_slab_page

#: How the argument of ``page`` is read.
GIVEN_PFN, GIVEN_PA, GIVEN_PAGE, GIVEN_VA = "pfn", "pa", "page", "va"
GIVEN_KINDS = (GIVEN_PFN, GIVEN_PA, GIVEN_PAGE, GIVEN_VA)

# include/linux/page-flags.h: the low bits of page->mapping say what it points at.
PAGE_MAPPING_ANON, PAGE_MAPPING_MOVABLE = 0x1, 0x2


@dataclass(frozen=True)
class Frame:
    """Which frame an argument named: ``given`` (pfn, pa, page, va) and its ``value``,
    ``how`` (a sentence: how the value led to the frame), ``pfn`` and ``pa`` (physical,
    the address given or the frame's start)."""

    given: str
    value: int
    how: str
    pfn: int
    pa: int


@dataclass(frozen=True)
class PageInfo:
    """The decoded ``struct page`` of frame ``frame.pfn``.

    ``page_va`` is the virtual address of its ``struct page`` (None: no
    vmemmap base known); ``readable`` whether its bytes could be read.
    ``flags`` is the raw ``page->flags`` word, ``flag_names`` the set flag
    bits' names (without ``PG_``) from ``flag_source``.  ``refcount`` is
    ``_refcount``; ``mapcount`` is ``_mapcount + 1`` (None when the word holds
    a page type).  ``page_type`` names the type (buddy, slab, table, ...;
    ``type_source`` says from where), ``type_word`` is the raw 32-bit word.
    ``kinds`` are what the page is, in words (slab, buddy, page-table, anon,
    file, movable, reserved, compound-head, compound-tail).
    ``compound_head_va`` is the head's ``struct page`` for a compound page,
    ``compound_order`` its order (pages = 2**order).  ``slab_cache`` names
    the slab cache, ``buddy_order`` the free block's order, ``mapping_va``
    the ``address_space``/``anon_vma`` pointer (low bits cleared).
    ``table_level`` is the paging level when the frame is a kernel page-table
    page.  ``mappings`` are the kernel virtual addresses that map the frame
    (:class:`kmemdbg.kernel.Mapping`); ``notes`` say what could not be read.
    """

    frame: Frame
    pa: int
    page_va: Optional[int]
    readable: bool
    flags: Optional[int]
    flag_names: Tuple[str, ...]
    flag_source: str
    refcount: Optional[int]
    mapcount: Optional[int]
    type_word: Optional[int]
    page_type: Optional[str]
    type_source: str
    kinds: Tuple[str, ...]
    compound_head_va: Optional[int]
    compound_order: Optional[int]
    slab_cache: Optional[str]
    buddy_order: Optional[int]
    mapping_va: Optional[int]
    table_level: Optional[str]
    mappings: Tuple[Any, ...]
    mappings_complete: bool
    notes: Tuple[str, ...]

    @property
    def pfn(self) -> int:
        return self.frame.pfn


def _u(raw: bytes, off: Optional[int], size: int) -> Optional[int]:
    if off is None or off + size > len(raw):
        return None
    return int.from_bytes(raw[off:off + size], "little")


def _btf(kernel):
    objs = kernel.objects()
    return objs.btf if objs is not None else None


def resolve_frame(kernel, given: str, value: int) -> Frame:
    """The frame ``value`` names when read as ``given`` (GIVEN_KINDS; see the module doc).

    Raises KmemdbgError (one line) for a pfn beyond 64 bits of physical
    address, a ``struct page`` pointer outside the array or not at the start
    of an entry, or a virtual address the page tables do not map.
    """
    shift = kernel.tables.format.page_shift
    pages = kernel.struct_pages()
    if given == GIVEN_PFN:
        if value >> (64 - shift):
            raise KmemdbgError(f"pfn 0x{value:x} is beyond any physical address (64 bits)")
        return Frame(given, value, "a page frame number", value, value << shift)
    if given == GIVEN_PA:
        return Frame(given, value, "a physical address", value >> shift, value)
    if given == GIVEN_VA and kernel.layout.region_of(value).kind != "vmemmap":
        walk = kernel.walker.walk(value)
        if walk.pa is None:
            where = f" at {walk.fault.level}" if walk.fault is not None and walk.fault.level else ""
            reason = walk.fault.reason if walk.fault is not None else "not mapped"
            raise KmemdbgError(f"0x{value:016x}: not mapped ({reason}{where}): it names no frame "
                               "(give --pa or --pfn for a physical frame)")
        return Frame(given, value, f"a virtual address, translated by the page tables to pa 0x{walk.pa:x}",
                     walk.pa >> shift, walk.pa)
    # a struct page pointer, given as such or found in the vmemmap region
    if pages.vmemmap_va is None:
        raise KmemdbgError(f"0x{value:016x}: the struct page array's base is unknown in this dump")
    region = kernel.layout.region_of(value)
    if region.kind != "vmemmap":
        raise KmemdbgError(f"0x{value:016x} is not in the struct page array: it is in the {region.kind} "
                           f"region ({region.name}), not in vmemmap")
    delta = value - pages.vmemmap_va
    if delta < 0:
        raise KmemdbgError(f"0x{value:016x} is below the struct page array (vmemmap at "
                           f"0x{pages.vmemmap_va:016x}): not a struct page pointer")
    pfn, off = divmod(delta, pages.entry_bytes)
    if off:
        hint = " (vtop gives the frame holding the array there)" if given == GIVEN_VA else ""
        raise KmemdbgError(f"0x{value:016x} is {off} bytes into the struct page of pfn 0x{pfn:x} "
                           f"(at 0x{value - off:016x}): not a struct page pointer{hint}")
    how = ("a struct page pointer" if given == GIVEN_PAGE
           else "a virtual address in the vmemmap region, read as a struct page pointer")
    if pfn >> (64 - shift):
        raise KmemdbgError(f"0x{value:016x} is beyond any struct page (pfn 0x{pfn:x})")
    return Frame(given, value, how, pfn, pfn << shift)


def page_info(kernel, frame: Frame, mappings: bool = True, tables: bool = True) -> PageInfo:
    """The decoded ``struct page`` of ``frame`` (see :class:`PageInfo`).

    ``mappings`` False skips the inverted sweep and ``tables`` False the sweep
    of page-table pages (vtop's page line does without both).  Raises
    KmemdbgError (one line) when the frame is beyond the kernel's end of RAM.
    An unreadable ``struct page`` is not an error: the result says so.
    """
    info = kernel.info
    page_size = kernel.tables.format.page_size
    pfn, frame_pa = frame.pfn, frame.pfn * page_size
    evidence = kernel.page_evidence()
    if evidence.ram_end is not None and frame_pa >= evidence.ram_end.pa:
        raise KmemdbgError(f"pfn 0x{pfn:x} (pa 0x{frame_pa:x}) is beyond the end of RAM "
                           f"(0x{evidence.ram_end.pa:x}, from {evidence.ram_end.source}): it has no struct page")
    btf = _btf(kernel)
    names: PageFlagNames = page_flag_names(info, btf)
    types: PageTypeNames = page_type_names(info, btf)
    offsets = PageOffsets.from_vmcoreinfo(info)
    pages = kernel.struct_pages()
    page_va = pages.page_va(pfn)
    if page_va is not None:
        # where max_pfn is not readable (a slice), the array's own region is the bound
        region = kernel.layout.region_of(page_va) if page_va >> 64 == 0 else None
        if region is None or region.kind != "vmemmap":
            raise KmemdbgError(f"pfn 0x{pfn:x} has no struct page: it would be at 0x{page_va:x}, "
                               f"outside the struct page array (vmemmap)")
    notes: List[str] = []
    if not names.bits:
        notes.append(names.source)
    level = kernel.table_pages().get(frame_pa) if tables else None
    table_level = kernel.tables.format.levels[level].name if level is not None else None
    raw = None
    if page_va is None:
        notes.append("the struct page array's base is unknown in this dump")
    else:
        try:
            raw = kernel.read(page_va, pages.entry_bytes)
        except KmemdbgError as err:
            notes.append(f"its struct page at 0x{page_va:016x} is not readable here "
                         f"({str(err).splitlines()[0] if str(err) else 'read failed'})")
    found = _decode(kernel, raw, page_va, frame_pa, names, types, offsets, btf, notes) if raw else _NOTHING
    kinds = list(found.kinds)
    if table_level is not None and "page-table" not in kinds:
        kinds.append("page-table")
    maps: Tuple[Any, ...] = ()
    complete = True
    if mappings:
        maps = tuple(kernel.phys_to_virts(frame_pa))
        if kernel.reverse_faults:
            complete = False
            notes.append(f"{len(kernel.reverse_faults)} table faults in the sweep: mappings under them "
                         "are not listed")
    return PageInfo(frame, frame_pa, page_va, raw is not None, found.flags, found.flag_names, names.source,
                    found.refcount, found.mapcount, found.type_word, found.page_type, types.source,
                    tuple(kinds), found.head_va, found.order, found.cache, found.buddy_order,
                    found.mapping_va, table_level, maps, complete, tuple(notes))


@dataclass(frozen=True)
class _Decoded:
    """What one struct page's bytes say (the fields of :class:`PageInfo` of the same names)."""

    flags: Optional[int] = None
    flag_names: Tuple[str, ...] = ()
    refcount: Optional[int] = None
    mapcount: Optional[int] = None
    type_word: Optional[int] = None
    page_type: Optional[str] = None
    kinds: Tuple[str, ...] = ()
    head_va: Optional[int] = None
    order: Optional[int] = None
    cache: Optional[str] = None
    buddy_order: Optional[int] = None
    mapping_va: Optional[int] = None


_NOTHING = _Decoded()


def _decode(kernel, raw: bytes, page_va: int, frame_pa: int, names: PageFlagNames, types: PageTypeNames,
            offsets: PageOffsets, btf, notes: List[str]) -> _Decoded:
    info = kernel.info
    flags = _u(raw, offsets.flags if offsets.flags is not None else 0, 8) or 0
    word = _u(raw, offsets.mapcount, 4)
    kinds: List[str] = []
    typed = word is not None and types.has_type(word)
    mapcount = page_type = None
    if word is not None and not typed:
        mapcount = (word - (1 << 32) if word & 0x80000000 else word) + 1
    if typed:
        page_type = types.type_of(word) or f"unnamed type 0x{word:08x}"
    # compound pages: a tail's compound_head is head | 1; a head has PG_head
    head_word = _u(raw, offsets.compound_head, 8)
    head_bit = names.bit("head")
    head_va = order = None
    if head_word is not None and head_word & 1:
        head_va = head_word - 1
        kinds.append("compound-tail")
    elif head_bit is not None and flags >> head_bit & 1:
        head_va = page_va
        kinds.append("compound-head")
    if head_va is not None:
        order = _compound_order(kernel, head_va, info, btf, notes)
    # slab: the head's page type or PG_slab (kmemdbg.linux.slab), the cache from struct slab
    slabs = kernel.slabs()
    marks = SlabMarks.from_vmcoreinfo(info)
    slab_marks = SlabMarks(marks.pg_slab if marks.pg_slab is not None else names.bit("slab"),
                           marks.slab_value if marks.slab_value is not None else types.value("slab"))
    head_pa = slabs.head_of(frame_pa)
    cache = None
    if head_pa is not None or is_slab_page(slab_marks, flags, word):
        kinds.append("slab")
        cache, _ = slabs.cache_of(head_pa if head_pa is not None else frame_pa)
        if cache is None:
            notes.append("slab cache not named: struct slab or kmem_cache is not in this dump's types "
                         "or memory")
    buddy_order = None
    if page_type == "buddy":
        kinds.append("buddy")
        buddy_order = _u(raw, page_offset(info, "private"), 8)
    elif page_type == "table":
        kinds.append("page-table")
    elif page_type is not None and page_type != "slab":
        kinds.append(page_type)
    reserved = names.bit("reserved")
    if reserved is not None and flags >> reserved & 1:
        kinds.append("reserved")
    mapping_va = None
    if not typed and "slab" not in kinds and "compound-tail" not in kinds:
        mapping = _u(raw, offsets.mapping, 8)
        if mapping:
            low = mapping & (PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE)
            kinds.append({PAGE_MAPPING_ANON: "anon", PAGE_MAPPING_MOVABLE: "movable",
                          PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE: "ksm"}.get(low, "file"))
            mapping_va = mapping & ~(PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE)
    return _Decoded(flags, names.decode(flags), _u(raw, offsets.refcount, 4), mapcount, word, page_type,
                    tuple(kinds), head_va, order, cache, buddy_order, mapping_va)


def _compound_order(kernel, head_va: int, info, btf, notes: List[str]) -> Optional[int]:
    """The order of the compound page whose head's struct page is at ``head_va``: the byte
    the first tail page keeps it in (``OFFSET(page.compound_order)`` where VMCOREINFO
    exports it, else the low byte of ``folio._flags_1``, which overlays the first tail
    page's flags, found by BTF)."""
    entry = kernel.struct_pages().entry_bytes
    off = page_offset(info, "compound_order")
    if off is not None:
        where, size, mask = head_va + entry + off, 1, 0xFF
    elif btf is not None and btf.has_struct("folio") and btf.has_member("folio", "_flags_1"):
        where, size, mask = head_va + btf.offset("folio", "_flags_1"), 8, 0xFF
    else:
        notes.append("compound order unknown: neither OFFSET(page.compound_order) in VMCOREINFO nor "
                     "folio._flags_1 in BTF")
        return None
    try:
        return int.from_bytes(kernel.read(where, size), "little") & mask
    except KmemdbgError:
        notes.append(f"compound order unreadable (first tail page at 0x{head_va + entry:016x})")
        return None


__all__ = ["Frame", "PageInfo", "resolve_frame", "page_info", "GIVEN_KINDS", "GIVEN_PFN", "GIVEN_PA",
           "GIVEN_PAGE", "GIVEN_VA"]
