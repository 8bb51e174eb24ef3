"""Which x86-64 VMCOREINFO values are plausible (ranges, alignment)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..base import MASK64

if TYPE_CHECKING:  # pragma: no cover
    from ...vmcoreinfo import VmcoreInfo

PAGE_SIZES = (4096,)


def kernel_half_floor(info: "VmcoreInfo") -> int:
    """Lowest kernel virtual address the paging mode allows: the canonical upper half."""
    return (MASK64 << (56 if info.number("pgtable_l5_enabled") == 1 else 47)) & MASK64


def check_vmcoreinfo(info: "VmcoreInfo", fail: Callable[[str, str], None]) -> None:
    """Call ``fail(key, why)`` for the first x86-64 value the architecture does not allow."""
    l5 = info.number("pgtable_l5_enabled")
    if l5 is not None and l5 not in (0, 1):
        fail("NUMBER(pgtable_l5_enabled)", "must be 0 or 1")
    sme = info.number("sme_mask")
    # the C-bit of AMD SME/SEV: one physical-address bit (cpuid 0x8000001f ebx[5:0])
    if sme is not None and sme and (sme < 0 or sme & (sme - 1) or not 1 << 30 <= sme < 1 << 52):
        fail("NUMBER(sme_mask)", "not 0 or one physical-address bit")
    bits = info.number("MAX_PHYSMEM_BITS")
    if bits is not None and not 36 <= bits <= 52:
        fail("NUMBER(MAX_PHYSMEM_BITS)", "outside 36..52")
    size = info.number("KERNEL_IMAGE_SIZE")
    if size is not None and (not 0 < size <= 1 << 31 or size % 4096):
        fail("NUMBER(KERNEL_IMAGE_SIZE)", "not a page-aligned size of at most 2 GiB")
    base = info.number("phys_base")
    if base is not None and (not -(1 << 52) < base < 1 << 52 or base % 4096):
        fail("NUMBER(phys_base)", "not a page-aligned physical offset")
