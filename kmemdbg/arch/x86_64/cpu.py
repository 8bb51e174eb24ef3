"""x86-64 live-CPU facts: the paging registers at a gdb stop, and where VMCOREINFO is in RAM.

``link`` is a :class:`kmemdbg.gdb.source.GdbLink`-like object: ``register(name)``
gives an integer or None when the stub does not expose the register.
"""
from __future__ import annotations

from typing import List, Tuple

from ..base import bits
from ..spec import CpuPaging, PagingOffError
from .paging import paging_format


def cpu_paging(link) -> CpuPaging:
    """Read CR0/CR3/CR4/EFER; raises PagingOffError when paging or long mode is off."""
    pc = link.register("pc")
    cr0, cr3, cr4 = link.register("cr0"), link.register("cr3"), link.register("cr4")
    if cr0 is None or cr3 is None or cr4 is None:
        return CpuPaging("x86_64", None, None, pc, "CR0/CR3/CR4 not exposed by the stub")
    if not cr0 >> 31 & 1:
        raise PagingOffError(f"paging is off (CR0.PG=0, CR0=0x{cr0:x}): no kernel page tables yet")
    efer = link.register("efer")
    if efer is not None and not efer >> 10 & 1:
        raise PagingOffError("the CPU is not in long mode (EFER.LMA=0): not a 64-bit kernel yet")
    levels = 5 if cr4 >> 12 & 1 else 4
    fmt = paging_format(levels)
    return CpuPaging("x86_64", fmt, cr3 & bits(12, 51), pc, f"CR3=0x{cr3:x}, CR4.LA57={levels == 5:d}")


def scan_order(paging: CpuPaging, walker, limit_bytes: int) -> List[Tuple[int, int]]:
    """Physical ``[start, end)`` ranges to scan for the VMCOREINFO note, most likely first.

    The note is a page allocation made at subsys_initcall time, served from
    the lowest free pages: from 16 MiB (GFP_KERNEL avoids ZONE_DMA), then the
    first 16 MiB.
    """
    return [(16 << 20, (16 << 20) + limit_bytes), (1 << 20, 16 << 20)]
