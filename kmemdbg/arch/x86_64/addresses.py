"""x86-64 address arithmetic: ``__pa()``, ``__va()``, ``virt_to_page()`` and the vmemmap base.

``__pa()`` without ``CONFIG_DEBUG_VIRTUAL`` (``arch/x86/include/asm/page_64.h``,
``__phys_addr_nodebug``): ``va - __START_KERNEL_map + phys_base`` for
``va >= __START_KERNEL_map``, else ``va - page_offset_base``.  Both branches
are correct only for the image and the direct map; everything else silently
gets garbage.  All ``pa`` values are physical, ``va`` virtual.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..base import MASK64
from ...records import new_record
from ..spec import PaArithmetic, PageArray
from .paging import START_KERNEL_MAP

if TYPE_CHECKING:  # pragma: no cover
    from ...layout import Layout
    from ...vmcoreinfo import VmcoreInfo


#: the two branches of __pa() (a check batch names one per address)
_IMAGE = "image branch: va - __START_KERNEL_map + phys_base"
_DIRECT = "direct-map branch: va - page_offset_base"


def _pa_quantities(layout: "Layout") -> tuple:
    """(phys_base, KERNEL_IMAGE_SIZE, page_offset_base) of ``layout``, each None when missing
    (KERNEL_IMAGE_SIZE: 1 GiB then); looked up once per layout, as a check batch asks per address."""
    got = layout.__dict__.get("_x86_pa_quantities")
    if got is None:
        v = layout.value
        got = (v("phys_base"), v("kernel_image_size") or (1 << 30), v("page_offset_base"))
        object.__setattr__(layout, "_x86_pa_quantities", got)   # a frozen dataclass: derived data only
    return got


def _phys_bits(layout: "Layout") -> tuple:
    """(``boot_cpu_data.x86_phys_bits`` or None when unusable, its source, the sentence for a
    valid ``pa``); resolved on the first direct-map address (it needs type information)."""
    got = layout.__dict__.get("_x86_phys_bits")
    if got is None:
        bits, src = layout.value("x86_phys_bits"), layout.value_source("x86_phys_bits")
        if bits is None or not 0 < bits <= 64:
            got = (None, src, "")
        else:
            got = (bits, src, f"accepted (within {bits} physical bits, from {src})")
        object.__setattr__(layout, "_x86_phys_bits", got)
    return got


def _debug_direct(layout: "Layout", va: int, pa: int, pob: int) -> str:
    """What ``__phys_addr()`` (arch/x86/mm/physaddr.c) does with a direct-map-branch ``va``:
    VIRTUAL_BUG_ON when ``va`` is below PAGE_OFFSET or ``!phys_addr_valid(pa)``, i.e.
    ``pa >> boot_cpu_data.x86_phys_bits`` is not 0."""
    if va < pob:
        return "would BUG (VIRTUAL_BUG_ON: below PAGE_OFFSET)"
    phys_bits, src, accepted = _phys_bits(layout)
    if phys_bits is None:
        return "unknown: phys_addr_valid() needs boot_cpu_data.x86_phys_bits, which is " + src
    if pa >> phys_bits:
        return f"would BUG (VIRTUAL_BUG_ON: !phys_addr_valid(): beyond {phys_bits} physical bits, from {src})"
    return accepted


def kernel_pa(layout: "Layout", va: int) -> PaArithmetic:
    """The kernel's own ``__pa(va)``; ``pa`` is None when a quantity is missing."""
    phys_base, image, pob = layout.__dict__.get("_x86_pa_quantities") or _pa_quantities(layout)
    if va >= START_KERNEL_MAP:
        if phys_base is None:
            return PaArithmetic(None, "image branch needs phys_base (missing)", "")
        y = va - START_KERNEL_MAP
        dbg = "would BUG (VIRTUAL_BUG_ON: beyond KERNEL_IMAGE_SIZE)" if y >= image else "accepted"
        return new_record(PaArithmetic, ((y + phys_base) & MASK64, _IMAGE, dbg))
    if pob is None:
        return PaArithmetic(None, "direct-map branch needs page_offset_base (missing)", "")
    pa = (va - pob) & MASK64
    return new_record(PaArithmetic, (pa, _DIRECT, _debug_direct(layout, va, pa, pob)))


def virt_to_page(layout: "Layout", va: int, pages: PageArray) -> PaArithmetic:
    """``virt_to_page(va)``: ``pfn_to_page(__pa(va) >> PAGE_SHIFT)``, i.e. ``vmemmap + pfn``
    (SPARSEMEM_VMEMMAP), so it inherits both ``__pa()`` branches.  The virtual
    ``struct page *`` is returned in ``pa``'s place."""
    arith = kernel_pa(layout, va)
    if arith.pa is None:
        return arith
    return PaArithmetic((pages.vmemmap_va + (arith.pa >> pages.page_shift) * pages.entry_bytes) & MASK64,
                        f"virt_to_page(): vmemmap + (__pa() >> PAGE_SHIFT), __pa() by the {arith.branch}",
                        arith.debug_virtual)


def linear_va(layout: "Layout", pa: int) -> Optional[int]:
    """``__va(pa)``: the direct-map virtual address ``page_offset_base + pa``."""
    pob = layout.value("page_offset_base")
    return None if pob is None else (pob + pa) & MASK64


def vmemmap_base(info: "VmcoreInfo", layout: "Layout", page_shift: int, entry_bytes: int) -> Optional[int]:
    """Virtual address of pfn 0's struct page when VMCOREINFO has no ``SYMBOL(vmemmap)``:
    ``vmemmap_base`` of the layout."""
    return layout.value("vmemmap_base")
