"""arm64 address arithmetic: ``__pa()``, ``__va()``, ``virt_to_page()`` and the vmemmap base.

``__pa()`` without ``CONFIG_DEBUG_VIRTUAL`` (``arch/arm64/include/asm/memory.h``,
``__virt_to_phys_nodebug``): after ``__tag_reset`` (sign extension from bit
55), ``__is_lm_address(va)`` picks ``va - PAGE_OFFSET + PHYS_OFFSET``;
anything else takes the image branch ``va - kimage_voffset``, even vmalloc
and module addresses.  All ``pa`` values are physical, ``va`` virtual.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..base import MASK64
from ...records import new_record
from ..spec import PaArithmetic, PageArray

if TYPE_CHECKING:  # pragma: no cover
    from ...layout import Layout
    from ...vmcoreinfo import VmcoreInfo


#: the two branches of __pa() (a check batch names one per address)
_LINEAR = "linear branch: va - PAGE_OFFSET + PHYS_OFFSET"
_IMAGE = "image branch: va - kimage_voffset"
_IMAGE_DEBUG = "would WARN (virt_to_phys used for non-linear address) and return the same value"


def tag_reset(va: int) -> int:
    """``__tag_reset()``: bits 63:56 made copies of bit 55 (arm64 TBI)."""
    return va | (0xFF << 56) if va >> 55 & 1 else va & ((1 << 56) - 1)


def _pa_quantities(layout: "Layout") -> tuple:
    """(PAGE_OFFSET, PAGE_END, PHYS_OFFSET, kimage_voffset) of ``layout``, each None when
    missing; looked up once per layout (a check batch asks for them per address)."""
    got = layout.__dict__.get("_arm64_pa_quantities")
    if got is None:
        v = layout.value
        got = (v("PAGE_OFFSET"), v("PAGE_END"), v("PHYS_OFFSET"), v("kimage_voffset"))
        object.__setattr__(layout, "_arm64_pa_quantities", got)
    return got


def kernel_pa(layout: "Layout", va: int) -> PaArithmetic:
    """The kernel's own ``__pa(va)``; ``pa`` is None when a quantity is missing."""
    tagless = va | (0xFF << 56) if va >> 55 & 1 else va & ((1 << 56) - 1)     # tag_reset(va)
    po, pe, phys_off, voff = layout.__dict__.get("_arm64_pa_quantities") or _pa_quantities(layout)
    if po is None or pe is None:
        return PaArithmetic(None, "needs PAGE_OFFSET/PAGE_END (missing)", "")
    if ((tagless - po) & MASK64) < ((pe - po) & MASK64):
        if phys_off is None:
            return PaArithmetic(None, "linear branch needs PHYS_OFFSET (missing)", "")
        return new_record(PaArithmetic, ((tagless - po + phys_off) & MASK64, _LINEAR, "accepted"))
    if voff is None:
        return PaArithmetic(None, "image branch needs kimage_voffset (missing)", "")
    return new_record(PaArithmetic, ((tagless - voff) & MASK64, _IMAGE, _IMAGE_DEBUG))


def virt_to_page(layout: "Layout", va: int, pages: PageArray) -> PaArithmetic:
    """``virt_to_page(va)`` without CONFIG_DEBUG_VIRTUAL (arch/arm64/include/asm/memory.h):
    ``VMEMMAP_START + ((__tag_reset(va) - PAGE_OFFSET) / PAGE_SIZE) * sizeof(struct page)``,
    the linear formula whatever ``va`` is, not ``__pa()``'s image branch.  The
    virtual ``struct page *`` is returned in ``pa``'s place."""
    po = layout.value("PAGE_OFFSET")
    if po is None or pages.start_va is None:
        return PaArithmetic(None, "virt_to_page() needs PAGE_OFFSET and VMEMMAP_START (missing)", "")
    idx = ((tag_reset(va) - po) & MASK64) >> pages.page_shift
    return PaArithmetic((pages.start_va + idx * pages.entry_bytes) & MASK64,
                        "virt_to_page(): VMEMMAP_START + (va - PAGE_OFFSET) / PAGE_SIZE", "")


def linear_va(layout: "Layout", pa: int) -> Optional[int]:
    """``__va(pa)``: ``PAGE_OFFSET + pa - PHYS_OFFSET``."""
    po, phys = layout.value("PAGE_OFFSET"), layout.value("PHYS_OFFSET")
    if po is None or phys is None:
        return None
    return (po + pa - phys) & MASK64


def vmemmap_base(info: "VmcoreInfo", layout: "Layout", page_shift: int, entry_bytes: int) -> Optional[int]:
    """Virtual address of pfn 0's struct page when VMCOREINFO has no ``SYMBOL(vmemmap)``:
    ``VMEMMAP_START - (PHYS_OFFSET >> PAGE_SHIFT) * sizeof(struct page)``."""
    start, phys = info.number("VMEMMAP_START"), layout.value("PHYS_OFFSET")
    if start is None or phys is None:
        return None
    return (start - (phys >> page_shift) * entry_bytes) & MASK64
