"""The kernel crash has open, as kmemdbg sees it through the pipe.

Memory bytes, VMCOREINFO values and symbol values come from crash.  Two
facts kmemdbg's command line takes from a dump's *headers* (not its memory)
are read from the same headers here so the answers match the command
line's: the physical RAM ranges (ELF PT_LOADs, a compressed kdump's bitmap)
and the ELF direct-map offset (``p_vaddr - p_paddr``).  The memory source
declares them (:class:`~kmemdbg.sources.crash_pipe.CrashPhysicalMemory`
asks kmemdbg's own reader of the dump file).  For sources without such
headers (a live system, other formats) they are absent and ``kernel.notes``
says so.
"""
from __future__ import annotations

from typing import List, Optional

from ..api import kernel_from
from ..arch import ARCHES, arch_for_crash_machine
from ..errors import KmemdbgError, SourceError
from ..kallsyms import KallsymsSymbols
from ..kernel import Kernel
from ..memory import MemorySource
from ..session import check_root
from ..sources import DUMP_KINDS
from ..sources.crash_pipe import CrashLink, CrashPhysicalMemory
from ..vmcoreinfo import VmcoreInfo

#: Longest VMCOREINFO text accepted from the kernel's own buffer (the kernel's is one page).
MAX_VMCOREINFO_BYTES = 1 << 16


class CrashSymbols:
    """Symbols: the dump's kallsyms tables (as on the command line), then crash's own table.

    ``address(name)`` asks kallsyms first and crash's ``symbol_value()``
    (relocated DWARF/System.map symbols) for names kallsyms lacks;
    ``name_of(va)`` is kallsyms' ``name+0xoff/0xsize``.
    """

    def __init__(self, kallsyms: KallsymsSymbols, link: CrashLink) -> None:
        self.kallsyms, self.link = kallsyms, link
        self._crash: dict = {}

    @property
    def source(self) -> str:
        return "kallsyms tables in the dump" if self.kallsyms.table is not None else "crash's symbol table"

    @property
    def error(self) -> Optional[str]:
        return self.kallsyms.error

    def address(self, name: str) -> Optional[int]:
        va = self.kallsyms.address(name)
        if va is None:
            if name not in self._crash:
                self._crash[name] = self.link.symbol(name)
            va = self._crash[name]
        return va

    def name_of(self, va: int) -> Optional[str]:
        return self.kallsyms.name_of(va)


class CrashKernel(Kernel):
    """A Kernel read through crash; ``link`` is the pipe, ``source`` what crash said it has open."""

    link: Optional[CrashLink] = None
    source: dict = {}


def _vmcoreinfo_text(link: CrashLink, notes: List[str]) -> str:
    """The kernel's VMCOREINFO text, read through crash.

    The kernel keeps the text in ``vmcoreinfo_data`` (``vmcoreinfo_size``
    bytes); the dump's note is a copy of it.  Every key is then checked
    with crash's ``pc->read_vmcoreinfo()``, which reads the dump's own note,
    and the note's value wins where they differ (the note is what the
    command line reads).  Raises SourceError.
    """
    data_va, size_va = link.symbol("vmcoreinfo_data"), link.symbol("vmcoreinfo_size")
    if data_va is None or size_va is None:
        raise SourceError("crash knows no symbols vmcoreinfo_data/vmcoreinfo_size: kmemdbg needs the "
                          "kernel's VMCOREINFO (Linux >= 4.13 with CONFIG_CRASH_CORE or VMCORE_INFO)")
    ptr = int.from_bytes(link.read(data_va, 8, physical=False), "little")
    size = int.from_bytes(link.read(size_va, 8, physical=False), "little")
    if not ptr or not 0 < size <= MAX_VMCOREINFO_BYTES:
        raise SourceError(f"the kernel's VMCOREINFO buffer is unusable (vmcoreinfo_data 0x{ptr:x}, "
                          f"vmcoreinfo_size {size})")
    text = link.read(ptr, size, physical=False).split(b"\0", 1)[0].decode("ascii", "replace")
    lines = text.splitlines()
    changed = 0
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        if not sep:
            continue
        noted = link.vmcoreinfo(key)
        if noted is not None and noted != value:
            lines[i] = f"{key}={noted}"
            changed += 1
    if changed:
        notes.append(f"{changed} VMCOREINFO value(s) of the dump's note differ from the kernel's buffer; "
                     "the note's are used")
    return "\n".join(lines) + "\n"


def _dump_headers(kind: str, path: str, notes: List[str]) -> Optional[MemorySource]:
    """kmemdbg's own reader of the dump crash has open, for the facts of its *headers*
    (RAM ranges, ELF direct-map offset); None (and a note) when there is none."""
    found = next((k for k in DUMP_KINDS if k.name == kind), None)
    if found is None:
        notes.append(f"RAM ranges unknown: crash's source is {kind}, whose headers kmemdbg does not read")
        return None
    try:
        return found.open(path)
    except (KmemdbgError, OSError) as err:
        notes.append(f"RAM ranges unknown: the headers of {path} are unreadable ({err})")
        return None


def open_crash(link: CrashLink) -> CrashKernel:
    """Build the Kernel crash has open; raises SourceError/LayoutError with one-line causes."""
    source = link.source()
    notes: List[str] = []
    arch = arch_for_crash_machine(source.get("machine", ""))
    if arch is None:
        known = " or ".join(a.display for a in ARCHES)
        raise SourceError(f"crash's machine type {source.get('machine')!r} is not {known}")
    live = source.get("live") == "1"
    text = _vmcoreinfo_text(link, notes)
    info = VmcoreInfo.parse(text)
    path = source.get("path", "")
    if live:
        description = f"live system via crash ({source.get('memsrc') or path or 'live memory'})"
        headers = None
        notes.append("RAM ranges unknown on a live system read through crash")
    else:
        description = path
        headers = _dump_headers(source.get("kind", ""), path, notes)
    memory = CrashPhysicalMemory(link, live=live, description=description, headers=headers)
    kernel = kernel_from(memory, info, arch, None, description, None, notes, kind=CrashKernel)
    kernel.link, kernel.source = link, source
    kernel.symbols = CrashSymbols(KallsymsSymbols(info, kernel.read), link)
    check_root(kernel, False)
    if kernel.symbols.kallsyms.table is None and kernel.symbols.error:
        kernel.notes.append(kernel.symbols.error)
    return kernel


__all__ = ["CrashKernel", "CrashSymbols", "open_crash"]
