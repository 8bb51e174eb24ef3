"""A session: one kernel (dump, live or model), its page tables and its walker.

``open_core(path)`` needs no drgn and no debug info: the VMCOREINFO note
gives the root table and the paging format, and the ELF program headers
give physical memory.  Higher layers (layout, classify, check) hang off the
same session object.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from .errors import LayoutError, SourceError
from .kernel_tables import KernelTables, kernel_tables
from .memory import PhysicalMemory, TableCache
from .sources.elfcore import ElfCoreMemory
from .vmcoreinfo import VmcoreInfo
from .walk import BatchResult, Walk, Walker


@dataclass
class Session:
    """Everything needed to answer questions about one kernel's addresses.

    ``memory`` reads physical bytes; ``tables`` says where the kernel's root
    table is and in which format; ``walker`` translates kernel addresses.
    """

    memory: PhysicalMemory
    info: VmcoreInfo
    tables: KernelTables
    walker: Walker
    description: str
    prog: Optional[object] = None

    @property
    def arch(self) -> str:
        return self.tables.arch

    def translate(self, va: int) -> Walk:
        """Walk the kernel tables for virtual ``va``; the result records every level."""
        return self.walker.walk(va)

    def translate_many(self, vas: Iterable[int]) -> BatchResult:
        return self.walker.translate_many(vas)

    def read(self, va: int, size: int) -> bytes:
        """Read ``size`` bytes at virtual ``va`` through kmemdbg's own translation.

        Raises :class:`~kmemdbg.errors.KmemdbgError` with the fault line when
        a page is not mapped, or PhysicalReadError when it is not in the source.
        """
        from .errors import AddressError

        out = bytearray()
        while size > 0:
            walk = self.walker.walk(va)
            if walk.fault is not None:
                raise AddressError(walk.fault.message(va))
            n = min(size, walk.page_size - (walk.pa & (walk.page_size - 1)))
            out += self.memory.read(walk.pa, n)
            va, size = va + n, size - n
        return bytes(out)


def session_from(memory: PhysicalMemory, info: VmcoreInfo, arch: str, description: str,
                 prog: Optional[object] = None) -> Session:
    tables = kernel_tables(info, arch)
    walker = Walker(tables.format, memory, tables.root_pa, TableCache(memory),
                    half="upper" if arch == "arm64" else "both")
    return Session(memory, info, tables, walker, description, prog)


def open_core(path: str) -> Session:
    """Open an ELF vmcore (kdump, QEMU dump-guest-memory, kmemdbg slice or model core).

    Raises SourceError or LayoutError with a one-line cause.
    """
    mem = ElfCoreMemory(path)
    if mem.arch is None:
        raise SourceError(f"{path}: ELF machine {mem.machine} is not x86-64 or arm64")
    note = mem.note(b"VMCOREINFO")
    if note is None:
        raise LayoutError(f"{path}: the core has no VMCOREINFO note (was qemu_fw_cfg loaded in the guest?)")
    info = VmcoreInfo.parse(note)
    return session_from(mem, info, mem.arch, f"{path} ({info.osrelease() or 'unknown release'})")
