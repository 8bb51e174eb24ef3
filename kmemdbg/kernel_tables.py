"""Where a kernel's page tables are and in which format, from VMCOREINFO alone.

This is the minimum needed to walk kernel addresses in any dump: the root
table's physical address and the paging format.  The architecture's
``kernel_tables`` hook (``kmemdbg/arch/<name>/roots.py``) knows how; layout
discovery proper (regions, evidence) builds on it.
"""
from __future__ import annotations

from .arch import arch_named
from .arch.spec import KernelTables
from .vmcoreinfo import VmcoreInfo, check_values, signed64


def kernel_tables(info: VmcoreInfo, arch: str, phys_bits: int = 52) -> KernelTables:
    """Derive the kernel root and format for the architecture named ``arch``.

    Raises LayoutError naming a missing vmcoreinfo key (or an unknown
    architecture), VmcoreinfoError naming a value the architecture does not allow.
    """
    spec = arch_named(arch)
    check_values(info, arch)
    return spec.kernel_tables(info, phys_bits)


__all__ = ["KernelTables", "kernel_tables", "signed64"]
