"""arm64 (AArch64): everything kmemdbg knows about the architecture, in one folder.

- :mod:`.paging` the 4K/16K/64K stage-1 formats (descriptors, flags, permissions),
- :mod:`.roots` the kernel (TTBR1) root table from VMCOREINFO,
- :mod:`.layout` the region rules of the virtual layout, by era,
- :mod:`.addresses` ``__pa()``/``__va()``/``virt_to_page()`` and the vmemmap base,
- :mod:`.checks` plausibility of VMCOREINFO values,
- :mod:`.cpu` the paging registers of a live CPU and where to look for VMCOREINFO.

:data:`ARCH` is the registry's record (:class:`kmemdbg.arch.Arch`).
"""
from __future__ import annotations

from ..spec import Arch
from . import addresses, checks, cpu, layout, roots
from .paging import (  # noqa: F401  (re-exported: ``from kmemdbg.arch import arm64``)
    AF, AP_TABLE_NO_EL0, AP_TABLE_RO, CONT, DBM, ENCODING_48, ENCODING_LPA2, ENCODING_LPA64K, GP,
    MAIR_6X, NG, NS_TABLE, PXN, PXN_TABLE, RDONLY, SW_DIRTY, SW_SPECIAL, SWAP_LAYOUT_6_10,
    SWAP_LAYOUT_OLD, TABLE_BIT, USER, UXN, UXN_TABLE, VALID, paging_format, walk_va_bits)

ARCH = Arch(
    name="arm64",
    display="arm64",
    elf_machine=183,            # EM_AARCH64
    kdump_machines=("aarch64", "arm64"),
    host_machines=("aarch64",),
    drgn_arch="AARCH64",
    crash_machine="ARM64",
    crash_define="ARM64",
    gdb_names=("aarch64*",),
    page_sizes=checks.PAGE_SIZES,
    kernel_half="upper",
    user_half="lower",
    image_base=None,
    vmcoreinfo_marks=("NUMBER(VA_BITS)", "NUMBER(kimage_voffset)"),
    # The software dirty bit records use; the kernel's arm64 ptdump ignores it too.
    ptdump_use_bits=SW_DIRTY,
    ptdump_use_flags=frozenset({"SW_DIRTY"}),
    ptdump_table_flags=(("PXNTable", PXN_TABLE, True), ("UXNTable", UXN_TABLE, True),
                        ("APTable0", AP_TABLE_NO_EL0, True), ("APTable1", AP_TABLE_RO, True)),
    ptdump_leaf_bits=0,
    vsyscall_va=None,
    expects_pxn=True,
    kernel_tables=roots.kernel_tables,
    check_vmcoreinfo=checks.check_vmcoreinfo,
    kernel_half_floor=checks.kernel_half_floor,
    layout_rules=layout.layout_rules,
    kernel_pa=addresses.kernel_pa,
    virt_to_page=addresses.virt_to_page,
    linear_va=addresses.linear_va,
    vmemmap_base=addresses.vmemmap_base,
    cpu_paging=cpu.cpu_paging,
    scan_order=cpu.scan_order,
)
