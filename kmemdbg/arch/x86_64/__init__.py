"""x86-64: everything kmemdbg knows about the architecture, in one folder.

- :mod:`.paging` the 4- and 5-level paging formats (entry bits, flags, permissions),
- :mod:`.roots` the kernel root table from VMCOREINFO,
- :mod:`.layout` the region rules of the virtual layout,
- :mod:`.addresses` ``__pa()``/``__va()``/``virt_to_page()`` and the vmemmap base,
- :mod:`.checks` plausibility of VMCOREINFO values,
- :mod:`.cpu` the paging registers of a live CPU and where to look for VMCOREINFO.

:data:`ARCH` is the registry's record (:class:`kmemdbg.arch.Arch`).
"""
from __future__ import annotations

from ..spec import Arch
from . import addresses, checks, cpu, layout, roots
from .paging import (  # noqa: F401  (re-exported: ``from kmemdbg.arch import x86_64``)
    A, D, DEFAULT_PAT, G, NX, P, PAT_4K, PAT_LARGE, PCD, PKEY_SHIFT, PROTNONE, PS, PWT, RW,
    START_KERNEL_MAP, US, paging_format)

#: The legacy vsyscall page (``VSYSCALL_ADDR``, ``arch/x86/include/uapi/asm/vsyscall.h``).
VSYSCALL_VA = 0xFFFFFFFFFF600000

ARCH = Arch(
    name="x86_64",
    display="x86-64",
    elf_machine=62,             # EM_X86_64
    kdump_machines=("x86_64",),
    host_machines=("x86_64",),
    drgn_arch="X86_64",
    crash_machine="X86_64",
    crash_define="X86_64",
    gdb_names=("i386:x86-64",),
    page_sizes=checks.PAGE_SIZES,
    kernel_half="both",
    user_half="both",
    image_base=START_KERNEL_MAP,
    vmcoreinfo_marks=("NUMBER(phys_base)", "NUMBER(pgtable_l5_enabled)"),
    # Accessed and Dirty record use, not attributes.
    ptdump_use_bits=A | D,
    ptdump_use_flags=frozenset({"A", "D"}),
    # ``!RW``/``!US`` where a table entry lacks RW/US, ``NX`` where one sets it.
    ptdump_table_flags=(("RW", RW, False), ("US", US, False), ("NX", NX, True)),
    ptdump_leaf_bits=P,
    vsyscall_va=VSYSCALL_VA,
    expects_pxn=False,
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
