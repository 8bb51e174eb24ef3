"""Which arm64 VMCOREINFO values are plausible (ranges, alignment)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ...vmcoreinfo import signed64
from ..base import MASK64

if TYPE_CHECKING:  # pragma: no cover
    from ...vmcoreinfo import VmcoreInfo

PAGE_SIZES = (4096, 16384, 65536)
#: VA sizes the kernel can be built with (ARM64_VA_BITS_*).
VA_BITS = (36, 39, 42, 47, 48, 52)


def kernel_half_floor(info: "VmcoreInfo") -> int:
    """Lowest kernel virtual address: the bottom of the TTBR1 half of ``VA_BITS``."""
    va_bits = info.number("VA_BITS") or 52
    return (MASK64 << va_bits) & MASK64


def check_vmcoreinfo(info: "VmcoreInfo", fail: Callable[[str, str], None]) -> None:
    """Call ``fail(key, why)`` for the first arm64 value the architecture does not allow."""
    va_bits = info.number("VA_BITS")
    if va_bits is not None and va_bits not in VA_BITS:
        fail("NUMBER(VA_BITS)", f"not an arm64 VA size ({', '.join(map(str, VA_BITS))})")
    t1sz = info.number("TCR_EL1_T1SZ")
    if t1sz is not None and t1sz and not (12 <= t1sz <= 28 and 64 - t1sz <= (va_bits or 52)):
        fail("NUMBER(TCR_EL1_T1SZ)", f"gives {64 - t1sz}-bit kernel addresses, not 36..{va_bits or 52}")
    phys = info.number("PHYS_OFFSET")
    if phys is not None and (not -(1 << 52) <= signed64(phys) < 1 << 52 or phys % 4096):
        fail("NUMBER(PHYS_OFFSET)", "not a page-aligned 52-bit physical offset")
    voff = info.number("kimage_voffset")
    if voff is not None and (not (voff & MASK64) >> 63 or voff % 4096):
        fail("NUMBER(kimage_voffset)", "not a page-aligned kernel-half offset")
    size = info.size("page")
    if size is not None and not 32 <= size <= 256:
        fail("SIZE(page)", "not a plausible struct page size (32..256 bytes)")
