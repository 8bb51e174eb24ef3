"""The architecture registry: one folder per architecture, one :class:`Arch` record each.

:mod:`.base` holds the paging-format types the one generic walker reads;
:mod:`.spec` the :class:`Arch` record and the values its hooks return;
``x86_64/`` and ``arm64/`` fill them in.  Generic code never tests an
architecture's name: it looks the record up here and reads its data or calls
its hooks.

Lookups (each returns an :class:`Arch`)::

    arch_named(name)               # "x86_64", "arm64"; raises UnknownArchitectureError (a LayoutError)
    arch_for_elf_machine(e_machine)   # 62, 183            -> Arch or None
    arch_for_kdump_machine(machine)   # "x86_64", "aarch64", "arm64"  -> Arch or None
    arch_for_drgn(drgn_arch_name)     # "X86_64", "AARCH64" (drgn.Architecture member name) -> Arch or None
    arch_for_host(machine=None)       # os.uname().machine by default -> Arch or None
    arch_for_gdb(gdb_arch_name)       # "i386:x86-64", "aarch64..." -> Arch or None
    arch_for_crash_machine(machine)   # "X86_64", "ARM64"   -> Arch or None
    arch_for_vmcoreinfo(info)         # by the keys only one architecture writes -> Arch or None
    ARCHES                            # every Arch, in the order messages list them

Data of an :class:`Arch` (see its docstring): ``name``, ``display``,
``elf_machine``, ``kdump_machines``, ``host_machines``, ``drgn_arch``,
``crash_machine``, ``crash_define``, ``gdb_names``, ``page_sizes``,
``kernel_half``, ``user_half``, ``image_base``, ``vmcoreinfo_marks``,
``ptdump_use_bits``, ``ptdump_use_flags``, ``ptdump_table_flags``, ``ptdump_leaf_bits``,
``vsyscall_va``, ``expects_pxn``.

Hooks of an :class:`Arch` (va virtual, pa physical):

- ``kernel_tables(info, phys_bits) -> KernelTables``: the kernel root and
  paging format from VMCOREINFO (LayoutError naming a missing key);
- ``check_vmcoreinfo(info, fail)``: calls ``fail(key, why)`` for an
  implausible value; ``kernel_half_floor(info) -> int`` lowest kernel va;
- ``layout_rules(builder)``: adds regions and ``__pa()`` quantities to a
  :mod:`kmemdbg.layout` builder;
- ``kernel_pa(layout, va) -> PaArithmetic``: ``__pa()`` with its branch and
  the CONFIG_DEBUG_VIRTUAL verdict; ``virt_to_page(layout, va, pages) ->
  PaArithmetic``; ``linear_va(layout, pa) -> int | None`` (``__va()``);
  ``vmemmap_base(info, layout, page_shift, entry_bytes) -> int | None`` pfn
  0's struct page when VMCOREINFO has no ``SYMBOL(vmemmap)``;
- ``cpu_paging(link) -> CpuPaging``: a live CPU's paging registers (raises
  PagingOffError / SourceError); ``scan_order(paging, walker, limit_bytes)``
  physical ranges to scan for VMCOREINFO, most likely first;
- methods ``va_of(fmt, bits, high)`` (sign extension / halves),
  ``kernel_range(fmt, high)``, ``root_hole_index(fmt)``,
  ``matches_gdb(name)``, ``table_flag_names(raws)``.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

from .arm64 import ARCH as ARM64
from .base import FAULT_REASONS, Level, PagingFormat, Permissions  # noqa: F401
from .spec import (Arch, CpuPaging, KernelTables, PageArray, PaArithmetic,  # noqa: F401
                   PagingOffError, UnknownArchitectureError)
from .x86_64 import ARCH as X86_64

#: Every architecture, in the order messages list them.
ARCHES: Tuple[Arch, ...] = (X86_64, ARM64)
_BY_NAME: Dict[str, Arch] = {a.name: a for a in ARCHES}


def arch_named(name: str) -> Arch:
    """The architecture kmemdbg calls ``name``; raises UnknownArchitectureError."""
    got = _BY_NAME.get(name)
    if got is None:
        raise UnknownArchitectureError(f"unsupported architecture {name!r}")
    return got


def arch_for_elf_machine(e_machine: int) -> Optional[Arch]:
    """The architecture of ELF ``e_machine``, None when kmemdbg has none."""
    return next((a for a in ARCHES if a.elf_machine == e_machine), None)


def arch_for_kdump_machine(machine: str) -> Optional[Arch]:
    """The architecture of a kdump header's utsname machine string, None when unknown."""
    return next((a for a in ARCHES if machine in a.kdump_machines), None)


def arch_for_drgn(drgn_arch: str) -> Optional[Arch]:
    """The architecture of a ``drgn.Architecture`` member name ("X86_64"), None when unknown."""
    return next((a for a in ARCHES if a.drgn_arch == drgn_arch), None)


def arch_for_host(machine: Optional[str] = None) -> Optional[Arch]:
    """The architecture of a host's ``os.uname().machine`` (this host's by default)."""
    machine = os.uname().machine if machine is None else machine
    return next((a for a in ARCHES if machine in a.host_machines), None)


def arch_for_gdb(gdb_arch: str) -> Optional[Arch]:
    """The architecture of gdb's architecture name, None when unknown."""
    return next((a for a in ARCHES if a.matches_gdb(gdb_arch)), None)


def arch_for_crash_machine(machine: str) -> Optional[Arch]:
    """The architecture of crash's machine type string ("X86_64"), None when unknown."""
    return next((a for a in ARCHES if a.crash_machine == machine), None)


def arch_for_vmcoreinfo(info) -> Optional[Arch]:
    """The architecture whose own VMCOREINFO keys ``info`` (a VmcoreInfo) carries, or None."""
    return next((a for a in ARCHES if any(k in info for k in a.vmcoreinfo_marks)), None)


__all__ = ["ARCHES", "Arch", "CpuPaging", "KernelTables", "PageArray", "PaArithmetic",
           "PagingOffError", "UnknownArchitectureError", "arch_named", "arch_for_crash_machine",
           "arch_for_drgn", "arch_for_elf_machine", "arch_for_gdb", "arch_for_host",
           "arch_for_kdump_machine", "arch_for_vmcoreinfo", "FAULT_REASONS", "Level",
           "PagingFormat", "Permissions"]
