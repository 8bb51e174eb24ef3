"""What ``__pa()``/``virt_to_phys()`` returns, and how that compares with the walk.

The kernel's arithmetic (no ``CONFIG_DEBUG_VIRTUAL``):

- x86-64 (``arch/x86/include/asm/page_64.h``, ``__phys_addr_nodebug``):
  ``va - __START_KERNEL_map + phys_base`` for ``va >= __START_KERNEL_map``,
  else ``va - page_offset_base``.  Both branches are correct only for the
  image and the direct map; everything else silently gets garbage.
- arm64 (``arch/arm64/include/asm/memory.h``, ``__virt_to_phys_nodebug``):
  after ``__tag_reset`` (sign extension from bit 55), ``__is_lm_address(va)``
  picks ``va - PAGE_OFFSET + PHYS_OFFSET``; anything else takes the image
  branch ``va - kimage_voffset``, even vmalloc and module addresses.

All ``*_pa`` values are physical, ``va`` virtual.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .layout import MASK64, START_KERNEL_MAP, Layout, Region


@dataclass(frozen=True)
class PaArithmetic:
    """``pa`` as ``__pa(va)`` computes it, the ``branch`` taken, and what a
    ``CONFIG_DEBUG_VIRTUAL`` kernel would have said (``debug_virtual``)."""

    pa: Optional[int]
    branch: str
    debug_virtual: str


def _x86_debug_direct(layout: Layout, va: int, pa: int, pob: int) -> str:
    """What ``__phys_addr()`` (arch/x86/mm/physaddr.c) does with a direct-map-branch ``va``:
    VIRTUAL_BUG_ON when ``va`` is below PAGE_OFFSET or ``!phys_addr_valid(pa)``, i.e.
    ``pa >> boot_cpu_data.x86_phys_bits`` is not 0."""
    if va < pob:
        return "would BUG (VIRTUAL_BUG_ON: below PAGE_OFFSET)"
    phys_bits = layout.value("x86_phys_bits")
    if phys_bits is None or not 0 < phys_bits <= 64:
        return ("unknown: phys_addr_valid() needs boot_cpu_data.x86_phys_bits, which is "
                + layout.value_source("x86_phys_bits"))
    src = layout.value_source("x86_phys_bits")
    if pa >> phys_bits:
        return f"would BUG (VIRTUAL_BUG_ON: !phys_addr_valid(): beyond {phys_bits} physical bits, from {src})"
    return f"accepted (within {phys_bits} physical bits, from {src})"


def kernel_pa(layout: Layout, va: int) -> PaArithmetic:
    """The kernel's own ``__pa(va)`` for this layout; ``pa`` is None when a quantity is missing."""
    va &= MASK64
    v = layout.value
    if layout.arch == "x86_64":
        if va >= START_KERNEL_MAP:
            phys_base = v("phys_base")
            if phys_base is None:
                return PaArithmetic(None, "image branch needs phys_base (missing)", "")
            y = va - START_KERNEL_MAP
            image = v("kernel_image_size") or (1 << 30)
            dbg = "would BUG (VIRTUAL_BUG_ON: beyond KERNEL_IMAGE_SIZE)" if y >= image else "accepted"
            return PaArithmetic((y + phys_base) & MASK64,
                                "image branch: va - __START_KERNEL_map + phys_base", dbg)
        pob = v("page_offset_base")
        if pob is None:
            return PaArithmetic(None, "direct-map branch needs page_offset_base (missing)", "")
        pa = (va - pob) & MASK64
        return PaArithmetic(pa, "direct-map branch: va - page_offset_base", _x86_debug_direct(layout, va, pa, pob))
    if layout.arch == "arm64":
        tagless = _arm64_tag_reset(va)
        po, pe, phys_off, voff = v("PAGE_OFFSET"), v("PAGE_END"), v("PHYS_OFFSET"), v("kimage_voffset")
        if po is None or pe is None:
            return PaArithmetic(None, "needs PAGE_OFFSET/PAGE_END (missing)", "")
        if ((tagless - po) & MASK64) < ((pe - po) & MASK64):
            if phys_off is None:
                return PaArithmetic(None, "linear branch needs PHYS_OFFSET (missing)", "")
            return PaArithmetic((tagless - po + phys_off) & MASK64,
                                "linear branch: va - PAGE_OFFSET + PHYS_OFFSET", "accepted")
        if voff is None:
            return PaArithmetic(None, "image branch needs kimage_voffset (missing)", "")
        return PaArithmetic((tagless - voff) & MASK64, "image branch: va - kimage_voffset",
                            "would WARN (virt_to_phys used for non-linear address) and return the same value")
    return PaArithmetic(None, f"no __pa() rules for {layout.arch}", "")


def _arm64_tag_reset(va: int) -> int:
    """``__tag_reset()``: bits 63:56 made copies of bit 55 (arm64 TBI)."""
    return va | (0xFF << 56) if va >> 55 & 1 else va & ((1 << 56) - 1)


@dataclass(frozen=True)
class PageArray:
    """Where ``struct page`` objects live: ``vmemmap_va`` is the virtual address of
    pfn 0's struct page, ``start_va`` the start of the vmemmap region (arm64's
    ``VMEMMAP_START``; None where unknown), ``entry_bytes`` is ``sizeof(struct page)``
    and ``page_shift`` is PAGE_SHIFT."""

    vmemmap_va: int
    start_va: Optional[int]
    entry_bytes: int
    page_shift: int


def kernel_virt_to_page(layout: Layout, va: int, pages: PageArray) -> PaArithmetic:
    """The kernel's own ``virt_to_page(va)`` (a virtual ``struct page *`` in ``pa``'s place).

    - x86-64: ``pfn_to_page(__pa(va) >> PAGE_SHIFT)``, i.e. ``vmemmap + pfn``
      (SPARSEMEM_VMEMMAP), so it inherits both ``__pa()`` branches.
    - arm64 without CONFIG_DEBUG_VIRTUAL (arch/arm64/include/asm/memory.h):
      ``VMEMMAP_START + ((__tag_reset(va) - PAGE_OFFSET) / PAGE_SIZE) * sizeof(struct page)``:
      the linear formula whatever ``va`` is, not ``__pa()``'s image branch.
    """
    if layout.arch == "arm64":
        po = layout.value("PAGE_OFFSET")
        if po is None or pages.start_va is None:
            return PaArithmetic(None, "virt_to_page() needs PAGE_OFFSET and VMEMMAP_START (missing)", "")
        idx = ((_arm64_tag_reset(va) - po) & MASK64) >> pages.page_shift
        return PaArithmetic((pages.start_va + idx * pages.entry_bytes) & MASK64,
                            "virt_to_page(): VMEMMAP_START + (va - PAGE_OFFSET) / PAGE_SIZE", "")
    arith = kernel_pa(layout, va)
    if arith.pa is None:
        return arith
    return PaArithmetic((pages.vmemmap_va + (arith.pa >> pages.page_shift) * pages.entry_bytes) & MASK64,
                        f"virt_to_page(): vmemmap + (__pa() >> PAGE_SHIFT), __pa() by the {arith.branch}",
                        arith.debug_virtual)


OK = "ok"
MISMATCH = "mismatch"
UNMAPPED = "unmapped"
NOT_APPLICABLE = "not-applicable"
VERDICTS = (OK, MISMATCH, UNMAPPED, NOT_APPLICABLE)


@dataclass(frozen=True)
class Check:
    """A verdict on ``virt_to_phys(va)`` (or on a claimed physical address).

    ``linear_pa`` is ``__pa(va)`` by the kernel's arithmetic, ``walk_pa``
    what the page tables say, ``claimed_pa`` what the caller claimed.
    ``true_pages`` gives (va, pa) per page when a range was checked.
    """

    va: int
    linear_pa: Optional[int]
    walk_pa: Optional[int]
    claimed_pa: Optional[int]
    verdict: str
    region: Region
    explanation: str
    branch: str
    debug_virtual: str
    true_pages: Tuple[Tuple[int, Optional[int]], ...] = ()
    bogus: Optional[str] = None


__all__ = ["PaArithmetic", "kernel_pa", "PageArray", "kernel_virt_to_page", "Check", "VERDICTS", "OK", "MISMATCH", "UNMAPPED",
           "NOT_APPLICABLE"]
