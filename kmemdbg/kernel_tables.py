"""Where a kernel's page tables are and in which format, from VMCOREINFO alone.

This is the minimum needed to walk kernel addresses in any dump: the root
table's physical address and the paging format.  Layout discovery proper
(regions, evidence) builds on it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .arch import arm64, x86_64
from .arch.base import PagingFormat
from .errors import LayoutError
from .vmcoreinfo import VmcoreInfo, check_values, signed64

START_KERNEL_MAP = 0xFFFFFFFF80000000


@dataclass(frozen=True)
class KernelTables:
    """The kernel root table at physical ``root_pa`` (``root_va`` virtual) in ``format``.

    ``evidence`` names the vmcoreinfo keys each value came from.
    """

    arch: str
    format: PagingFormat
    root_pa: int
    root_va: int
    evidence: str


def _release(osrelease: "str | None") -> tuple:
    """(major, minor) of an OSRELEASE string; (99, 0) when unknown (assume current)."""
    try:
        major, minor = (osrelease or "").split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except ValueError:
        return (99, 0)


def kernel_tables(info: VmcoreInfo, arch: str, phys_bits: int = 52) -> KernelTables:
    """Derive the kernel root and format for ``arch`` ("x86_64" or "arm64").

    x86-64: ``swapper_pg_dir`` (= ``init_top_pgt``) is an image symbol, so its
    physical address is ``va - __START_KERNEL_map + phys_base``; it is never
    translated through itself.  arm64: ``swapper_pg_dir - kimage_voffset``.
    Raises LayoutError naming a missing vmcoreinfo key, VmcoreinfoError
    naming a value the architecture does not allow.
    """
    check_values(info, arch)
    root_va = info.symbol("swapper_pg_dir")
    if root_va is None:
        root_va = info.symbol("init_top_pgt")
    if root_va is None:
        raise LayoutError("vmcoreinfo has no SYMBOL(swapper_pg_dir)")
    if arch == "x86_64":
        phys_base = info.number("phys_base")
        if phys_base is None:
            raise LayoutError("vmcoreinfo has no NUMBER(phys_base)")
        l5 = info.number("pgtable_l5_enabled") or 0
        sme = info.number("sme_mask") or 0
        fmt = x86_64.paging_format(5 if l5 else 4, phys_bits=phys_bits, sme_mask=sme & ((1 << 52) - 1))
        root_pa = (root_va - START_KERNEL_MAP + phys_base) & ((1 << 64) - 1)
        ev = "SYMBOL(swapper_pg_dir) - __START_KERNEL_map + NUMBER(phys_base); " \
             f"NUMBER(pgtable_l5_enabled)={l5}; NUMBER(sme_mask)={sme:#x}"
        return KernelTables(arch, fmt, root_pa, root_va, ev)
    if arch == "arm64":
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
            fmt = arm64.paging_format(page_size, va_bits, t1sz, prot_none_bit=58 if old else 11,
                                      swap_layout=arm64.SWAP_LAYOUT_OLD if old else arm64.SWAP_LAYOUT_6_10)
        except ValueError as err:
            raise LayoutError(f"unsupported arm64 paging: {err}") from None
        root_pa = (root_va - voff) & ((1 << 64) - 1)
        ev = f"SYMBOL(swapper_pg_dir) - NUMBER(kimage_voffset); PAGESIZE={page_size}; " \
             f"NUMBER(VA_BITS)={va_bits}; NUMBER(TCR_EL1_T1SZ)={t1sz}"
        return KernelTables(arch, fmt, root_pa, root_va, ev)
    raise LayoutError(f"unsupported architecture {arch!r}")


__all__ = ["KernelTables", "kernel_tables", "signed64"]
