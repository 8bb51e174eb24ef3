"""What a physical address holds: beyond RAM, a hole, a page-table page, the
kernel image, a free (buddy) page, a slab page, or ordinary memory.

Evidence comes from the memory source's RAM ranges, the set of page-table
pages found by sweeping the kernel tables, the kernel image's physical range,
and ``struct page`` read through vmemmap with the offsets VMCOREINFO exports
(``SIZE(page)``, ``OFFSET(page.flags)``, ``OFFSET(page._mapcount)``,
``NUMBER(PG_slab)``, ``NUMBER(PAGE_*_MAPCOUNT_VALUE)``).  Since 6.9-ish the
page type lives in the top byte of ``_mapcount`` (``PAGE_SLAB_MAPCOUNT_VALUE``
has zero low bits); before, a type was a cleared bit below a 0xf0000000 base.

All ``pa`` values are physical addresses; ``ram`` ranges are ``[start, end)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional, Tuple

from .linux.page import page_offset, page_type_is
from .linux.slab import SlabMarks, is_slab_page
from .vmcoreinfo import VmcoreInfo


class PhysInfo(NamedTuple):
    """``kind`` is one of beyond-ram, hole, page-table, kernel-image, free-page,
    slab-page, ram; ``detail`` is a human sentence."""

    pa: int
    kind: str
    detail: str


@dataclass(frozen=True)
class RamEnd:
    """The kernel's own end of RAM: physical ``pa`` (exclusive) and where it came from (``max_pfn``)."""

    pa: int
    source: str


@dataclass(frozen=True)
class PageEvidence:
    """What is known of one kernel's physical memory, worked out once.

    ``page_size`` bytes; ``ram`` the source's physical ``[start, end)``
    ranges; ``ram_end`` the kernel's own end of RAM; ``image_pa`` the
    kernel image's physical ``[start, end)``; ``vmemmap_va`` the virtual
    base of the struct page array (None: unknown).
    """

    page_size: int
    ram: Tuple[Tuple[int, int], ...]
    ram_end: Optional[RamEnd] = None
    image_pa: Optional[Tuple[int, int]] = None
    vmemmap_va: Optional[int] = None


def describe(pa: int, info: VmcoreInfo, evidence: PageEvidence, table_pages: Dict[int, int],
             read_virt: Optional[Callable[[int, int], Optional[bytes]]] = None,
             slab_cache_of: Optional[Callable[[int], Optional[str]]] = None) -> PhysInfo:
    """Describe physical ``pa`` with whatever evidence is given (see module doc).

    ``table_pages`` maps the physical frame of every page-table page to its
    level; ``read_virt(va, size)`` reads a struct page (None when
    unreadable); ``slab_cache_of(page_va)`` names the cache of the slab
    whose struct page is at virtual ``page_va``.
    """
    ram, ram_end, page_size = evidence.ram, evidence.ram_end, evidence.page_size
    image_pa, vmemmap_base = evidence.image_pa, evidence.vmemmap_va
    if ram_end is not None and pa >= ram_end.pa:
        return PhysInfo(pa, "beyond-ram", f"beyond the end of RAM (0x{ram_end.pa:x}, from {ram_end.source})")
    if not ram:
        return PhysInfo(pa, "ram", "no RAM map in this source")
    top = max(end for _, end in ram)
    if pa >= top:
        return PhysInfo(pa, "beyond-ram", f"beyond the end of the dumped memory (0x{top:x})")
    if not any(s <= pa < e for s, e in ram):
        return PhysInfo(pa, "hole", "in no memory range of this source (a hole, or left out of a slice)")
    frame = pa - pa % page_size
    if frame in table_pages:
        return PhysInfo(pa, "page-table", f"a page-table page (level {table_pages[frame]} of the kernel tables)")
    if image_pa and image_pa[0] <= pa < image_pa[1]:
        return PhysInfo(pa, "kernel-image", "inside the kernel image's physical range")
    size = _sized(info, "SIZE(page)")
    if vmemmap_base is None or read_virt is None or size is None:
        return PhysInfo(pa, "ram", "RAM (no struct page evidence)")
    page_va = vmemmap_base + (pa // page_size) * size
    raw = read_virt(page_va, size)
    if raw is None:
        return PhysInfo(pa, "ram", f"RAM; its struct page at 0x{page_va:x} is not readable")
    flags_off = page_offset(info, "flags")
    flags = int.from_bytes(raw[flags_off or 0:][:8], "little")
    mapcount_off = page_offset(info, "_mapcount")
    page_type = int.from_bytes(raw[mapcount_off:mapcount_off + 4], "little") if mapcount_off is not None else None
    buddy = info.number("PAGE_BUDDY_MAPCOUNT_VALUE")
    if page_type is not None and buddy is not None and page_type_is(page_type, buddy):
        return PhysInfo(pa, "free-page", "a free page (buddy allocator)")
    if is_slab_page(SlabMarks.from_vmcoreinfo(info), flags, page_type):
        name = slab_cache_of(page_va) if slab_cache_of else None
        return PhysInfo(pa, "slab-page", f"a slab page of cache {name}" if name else "a slab page")
    return PhysInfo(pa, "ram", f"RAM in use (page flags 0x{flags:x})")


def _sized(info: VmcoreInfo, key: str) -> Optional[int]:
    value = info.text(key)
    return int(value) if value is not None and value.isdigit() else None


__all__ = ["PhysInfo", "PageEvidence", "RamEnd", "describe"]
