"""arm64 live-CPU facts: the paging registers at a gdb stop, and where VMCOREINFO is in RAM.

``link`` is a :class:`kmemdbg.gdb.source.GdbLink`-like object: ``register(name)``
gives an integer or None when the stub does not expose the register.
"""
from __future__ import annotations

from typing import List, Tuple

from ...errors import SourceError
from ..base import bits
from ..spec import CpuPaging, PagingOffError
from .paging import paging_format


def cpu_paging(link) -> CpuPaging:
    """Read SCTLR_EL1/TCR_EL1/TTBR1_EL1; raises PagingOffError when the MMU or TTBR1 is off,
    SourceError for a TCR the walker cannot follow."""
    pc = link.register("pc")
    sctlr = link.register("SCTLR_EL1")
    if sctlr is None:
        sctlr = link.register("SCTLR")
    if sctlr is not None and not sctlr & 1:
        raise PagingOffError(f"the MMU is off (SCTLR_EL1.M=0, SCTLR=0x{sctlr:x}): no kernel page tables yet")
    tcr, ttbr1 = link.register("TCR_EL1"), link.register("TTBR1_EL1")
    if tcr is None or ttbr1 is None:
        return CpuPaging("arm64", None, None, pc, "TTBR1_EL1/TCR_EL1 not exposed by the stub")
    if tcr >> 23 & 1:
        raise PagingOffError("TTBR1 walks are disabled (TCR_EL1.EPD1=1): no kernel half to translate")
    t1sz = tcr >> 16 & 0x3F
    page_size = {1: 16384, 2: 4096, 3: 65536}.get(tcr >> 30 & 3)
    if page_size is None:
        raise SourceError(f"TCR_EL1.TG1 has the reserved value 0 (TCR_EL1=0x{tcr:x})")
    ds, ips = tcr >> 59 & 1, tcr >> 32 & 7
    root = ttbr1 & bits(6, 47)
    if ds or (page_size == 65536 and ips == 6):
        # 52-bit output addresses: TTBR BADDR[51:48] sits in bits 5:2.
        root |= (ttbr1 >> 2 & 0xF) << 48
    else:
        root = ttbr1 & bits(1, 47)
    try:
        fmt = paging_format(page_size, 64 - t1sz, t1sz)
    except ValueError as err:
        raise SourceError(f"unsupported arm64 paging in TCR_EL1=0x{tcr:x}: {err}") from None
    return CpuPaging("arm64", fmt, root, pc,
                     f"TTBR1_EL1=0x{ttbr1:x}, TCR_EL1=0x{tcr:x} (T1SZ={t1sz}, {page_size // 1024}K, DS={ds})")


def scan_order(paging: CpuPaging, walker, limit_bytes: int) -> List[Tuple[int, int]]:
    """Physical ``[start, end)`` ranges to scan for the VMCOREINFO note, most likely first.

    The note is a page allocation made at subsys_initcall time, served from the
    lowest free pages: from the 1 GiB boundary below the kernel image, whose
    physical address the program counter's translation gives (QEMU's virt
    board puts RAM at 1 GiB).  ``walker`` is a kernel-table Walker or None.
    """
    base = 1 << 30
    if walker is not None and paging.pc_va is not None and paging.pc_va >> 63:
        pa = walker.walk(paging.pc_va).pa
        if pa is not None:
            base = pa & ~((1 << 30) - 1)
    return [(base, base + limit_bytes)]
