"""Where the arm64 kernel's root table is, and its paging format, from VMCOREINFO.

``swapper_pg_dir - kimage_voffset`` is the root; the granule, the configured
``VA_BITS`` and the runtime ``TCR_EL1_T1SZ`` give the format.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

from ...errors import LayoutError
from ..base import MASK64
from ..spec import KernelTables
from .paging import SWAP_LAYOUT_6_10, SWAP_LAYOUT_OLD, paging_format

if TYPE_CHECKING:  # pragma: no cover
    from ...vmcoreinfo import VmcoreInfo


def _release(osrelease: Optional[str]) -> Tuple[int, int]:
    """(major, minor) of an OSRELEASE string; (99, 0) when unknown (assume current)."""
    try:
        major, minor = (osrelease or "").split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except ValueError:
        return (99, 0)


def kernel_tables(info: "VmcoreInfo", phys_bits: int = 52) -> KernelTables:
    """Root and format of the kernel (TTBR1) tables; ``phys_bits`` is unused on arm64.

    Raises LayoutError naming a missing vmcoreinfo key or an unsupported paging mode.
    """
    root_va = info.symbol("swapper_pg_dir")
    if root_va is None:
        root_va = info.symbol("init_top_pgt")
    if root_va is None:
        raise LayoutError("vmcoreinfo has no SYMBOL(swapper_pg_dir)")
    info.require(["NUMBER(kimage_voffset)", "NUMBER(VA_BITS)"])
    page_size = info.page_size()
    if page_size is None:
        raise LayoutError("vmcoreinfo has no PAGESIZE")
    voff = info.number("kimage_voffset")
    va_bits = info.number("VA_BITS")
    t1sz = info.number("TCR_EL1_T1SZ")
    # PROT_NONE and swap encodings leave no trace in a dump but the
    # release: PTE_PRESENT_INVALID replaced PTE_PROT_NONE (bit 58) in 6.10.
    old = _release(info.osrelease()) < (6, 10)
    try:
        fmt = paging_format(page_size, va_bits, t1sz, prot_none_bit=58 if old else 11,
                            swap_layout=SWAP_LAYOUT_OLD if old else SWAP_LAYOUT_6_10)
    except ValueError as err:
        raise LayoutError(f"unsupported arm64 paging: {err}") from None
    root_pa = (root_va - voff) & MASK64
    ev = f"SYMBOL(swapper_pg_dir) - NUMBER(kimage_voffset); PAGESIZE={page_size}; " \
         f"NUMBER(VA_BITS)={va_bits}; NUMBER(TCR_EL1_T1SZ)={t1sz}"
    return KernelTables("arm64", fmt, root_pa, root_va, ev)
