"""A session: one kernel (dump, live or model), its page tables and its walker.

``open_core(path)`` needs no drgn and no debug info: the VMCOREINFO note
gives the root table and the paging format, and the ELF program headers
give physical memory.  Higher layers (layout, classify, check) hang off the
same session object.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, List, Optional, Tuple

from .arch import arch_named
from .errors import LayoutError, PhysicalReadError, SourceError
from .kernel_tables import KernelTables, kernel_tables
from .memory import PhysicalMemory, TableCache
from .vmcoreinfo import VmcoreInfo
from .walk import BatchResult, Walk, Walker

if TYPE_CHECKING:  # pragma: no cover
    from .arch import Arch

#: Bytes one virtual read may ask for (a corrupt length must not become a huge allocation).
MAX_READ_BYTES = 1 << 28


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
    prog: Optional[object] = field(default=None, repr=False, compare=False)
    #: what was degraded while opening (the root table unreadable with allow_truncated, ...)
    notes: List[str] = field(default_factory=list)

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

        The compiled walk reads the plain case (:meth:`~kmemdbg.walk.Walker.read`);
        otherwise each page is translated through the walker's per-snapshot memo
        (:meth:`~kmemdbg.walk.Walker.translate_one`); only a fault is walked
        again in full, for its message.  Raises
        :class:`~kmemdbg.errors.KmemdbgError` with the fault line when a page
        is not mapped, or PhysicalReadError when it is not in the source.
        """
        if not 0 <= size <= MAX_READ_BYTES:
            from .errors import AddressError

            raise AddressError(f"0x{va:016x}: a read of {size} bytes is out of bounds "
                               f"(at most {MAX_READ_BYTES})")
        got = self.walker.read(va, size)
        if got is not None:
            # bytes, or the physical address of a one-page read the view lacks (the source says why)
            return got if type(got) is bytes else self.memory.read(got, size)
        pa, page, _fault = self.walker.translate_one(va)
        if pa is not None and (pa & (page - 1)) + size <= page:
            return self.memory.read(pa, size)       # the usual case: inside one page
        out = bytearray()
        while size > 0:
            if pa is None:
                from .errors import AddressError

                raise AddressError(self.walker.walk(va).fault.message(va))   # type: ignore[union-attr]
            n = min(size, page - (pa & (page - 1)))
            out += self.memory.read(pa, n)
            va, size = va + n, size - n
            if size > 0:
                pa, page, _fault = self.walker.translate_one(va)
        return bytes(out)


def session_parts(memory: PhysicalMemory, info: VmcoreInfo, arch: "Arch | str") -> Tuple[KernelTables, Walker]:
    """The kernel's tables (root and format, from ``info``) and a walker over them.

    ``arch`` is a registry Arch or its name.  Raises LayoutError/VmcoreinfoError
    naming the VMCOREINFO key at fault.
    """
    arch = arch_named(arch) if isinstance(arch, str) else arch
    tables = kernel_tables(info, arch.name)
    walker = Walker(tables.format, memory, tables.root_pa, TableCache(memory), half=arch.kernel_half)
    return tables, walker


def session_from(memory: PhysicalMemory, info: VmcoreInfo, arch: "Arch | str", description: str,
                 prog: Optional[object] = None) -> Session:
    """A Session (no symbols, no layout): :func:`kmemdbg.api.kernel_from` builds the full Kernel."""
    tables, walker = session_parts(memory, info, arch)
    return Session(memory, info, tables, walker, description, prog)


def check_root(kernel: Session, allow_truncated: bool = False) -> None:
    """The root table must be in the source and the tables must map the kernel's own root.

    ``SYMBOL(swapper_pg_dir)`` is an image address, so its walk through the
    tables it names must come back to the root table: when it does not, the
    paging values of VMCOREINFO (level count, VA size, phys_base,
    kimage_voffset) do not describe these tables.  Raises SourceError; a root
    that cannot be read is only a note with ``allow_truncated``.
    """
    t = kernel.tables
    try:
        kernel.walker.cache.table(t.root_pa, t.format.table_size(0))
    except PhysicalReadError as err:
        msg = f"the kernel root table (pa 0x{t.root_pa:x}, {t.evidence.split(';')[0]}) cannot be read: " \
              f"{err.reason}"
        if not allow_truncated:
            raise SourceError(f"{kernel.description}: {msg} (use --allow-truncated to go on)") from None
        kernel.notes.append(msg)
        return
    if t.root_pa % t.format.root_align:
        raise SourceError(f"{kernel.description}: the kernel root table pa 0x{t.root_pa:x} is not "
                          f"{t.format.root_align}-byte aligned ({t.evidence.split(';')[0]})")
    walk = kernel.walker.walk(t.root_va)
    if walk.fault is not None and walk.fault.reason == "table-unreadable" and allow_truncated:
        kernel.notes.append(f"the walk of swapper_pg_dir stops: {walk.fault.message(t.root_va)}")
        return
    if walk.pa != t.root_pa:
        got = f"to pa 0x{walk.pa:x}" if walk.fault is None else f"nowhere ({walk.fault.reason} at " \
                                                                  f"{walk.fault.level})"
        raise SourceError(f"{kernel.description}: the page tables map swapper_pg_dir 0x{t.root_va:x} {got}, "
                          f"not to the root table at pa 0x{t.root_pa:x}: VMCOREINFO ({t.evidence}) does "
                          f"not describe these tables ({t.format.name})")


def open_core(path: str) -> Session:
    """Open an ELF vmcore (kdump, QEMU dump-guest-memory, kmemdbg slice or model core).

    Needs no drgn and no debug info; the Kernel has no symbols.  Raises
    SourceError or LayoutError with a one-line cause.
    """
    from .api import kernel_from
    from .sources.elfcore import ElfCoreMemory

    mem = ElfCoreMemory(path)
    note = mem.note(b"VMCOREINFO")
    if note is None:
        raise LayoutError(f"{path}: the core has no VMCOREINFO note (was qemu_fw_cfg loaded in the guest?)")
    info = VmcoreInfo.parse(note)
    return kernel_from(mem, info, mem.arch_hint, None, f"{path} ({info.osrelease() or 'unknown release'})")
