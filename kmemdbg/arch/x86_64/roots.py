"""Where the x86-64 kernel's root table is, and its paging format, from VMCOREINFO.

``swapper_pg_dir`` (= ``init_top_pgt``) is an image symbol, so its physical
address is ``va - __START_KERNEL_map + phys_base``; it is never translated
through itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import LayoutError
from ..base import MASK64
from ..spec import KernelTables
from .paging import START_KERNEL_MAP, paging_format

if TYPE_CHECKING:  # pragma: no cover
    from ...vmcoreinfo import VmcoreInfo


def kernel_tables(info: "VmcoreInfo", phys_bits: int = 52) -> KernelTables:
    """Root and format of the kernel tables; ``phys_bits`` is MAXPHYADDR.

    Raises LayoutError naming a missing vmcoreinfo key.
    """
    root_va = info.symbol("swapper_pg_dir")
    if root_va is None:
        root_va = info.symbol("init_top_pgt")
    if root_va is None:
        raise LayoutError("vmcoreinfo has no SYMBOL(swapper_pg_dir)")
    phys_base = info.number("phys_base")
    if phys_base is None:
        raise LayoutError("vmcoreinfo has no NUMBER(phys_base)")
    l5 = info.number("pgtable_l5_enabled") or 0
    sme = info.number("sme_mask") or 0
    fmt = paging_format(5 if l5 else 4, phys_bits=phys_bits, sme_mask=sme & ((1 << 52) - 1))
    root_pa = (root_va - START_KERNEL_MAP + phys_base) & MASK64
    ev = "SYMBOL(swapper_pg_dir) - __START_KERNEL_map + NUMBER(phys_base); " \
         f"NUMBER(pgtable_l5_enabled)={l5}; NUMBER(sme_mask)={sme:#x}"
    return KernelTables("x86_64", fmt, root_pa, root_va, ev)
