"""Guest physical memory through QEMU's gdbstub, and what the CPU says about paging.

The memory source and the remote-protocol steps it takes live here; the link
to gdb's session (:class:`kmemdbg.gdb.source.GdbLink`) and the ``kmemdbg``
gdb command live in :mod:`kmemdbg.gdb`.

QEMU's gdbstub has a physical-memory mode: after ``maint packet
Qqemu.PhyMemMode:1`` every memory read gdb sends is a guest *physical*
read, until ``Qqemu.PhyMemMode:0`` (QEMU 4.1 and later; ``qqemu.PhyMemMode``
asks for the current mode).  :class:`GdbPhysicalMemory` switches the mode
on for the duration of one command and always restores what it found, even
when a read fails halfway.  Reads past the end of RAM come back as zeros,
not errors, so the source sets ``zero_fills_holes``.

Page tables and the VMCOREINFO note are read physically, never through the
guest's own virtual mappings.  Everything read is cached per stop; the
cache is dropped when the guest resumes (:meth:`GdbPhysicalMemory.clear`).

Every stub call goes through a :class:`StubLink`, so tests can drive the
same code with a fake target.  All addresses are guest physical (``pa``) unless
named ``va``.
"""
from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Protocol, Tuple

from ..arch import ARCHES, Arch, CpuPaging, PagingOffError, arch_for_gdb, arch_for_host, arch_named  # noqa: F401
from ..errors import PhysicalReadError, SourceError
from ..memory import MemorySource, TableCache
from ..vmcoreinfo import VmcoreInfo
from ..walk import Walker

PAGE = 4096


class NotConnectedError(SourceError):
    """gdb is not attached to a running target."""


class NoPhysicalModeError(SourceError):
    """The remote stub does not offer QEMU's physical-memory mode."""


class NotAKernelError(SourceError):
    """No Linux kernel's VMCOREINFO could be found in guest memory."""


class StubLink(Protocol):
    """What the gdbstub source needs from its connection to the stub.

    :class:`kmemdbg.gdb.source.GdbLink` implements it with gdb's Python API;
    tests implement it over a memory image.  Reads are of the address space
    the stub is in (physical while :meth:`GdbPhysicalMemory.physical_mode`
    is on); every failure is a SourceError or PhysicalReadError.
    """

    def connected(self) -> bool:
        """Whether a target is attached."""
        ...

    def packet(self, text: str) -> str:
        """Send one remote-protocol packet; the reply payload ("" when unsupported)."""
        ...

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes at ``addr``; PhysicalReadError when the stub refuses."""
        ...

    def register(self, name: str) -> Optional[int]:
        """Register ``name`` of the innermost frame, or None when the target lacks it."""
        ...

    def arch_name(self) -> str:
        """gdb's name of the target architecture (matched by :func:`kmemdbg.arch.arch_for_gdb`)."""
        ...

    def flush_cache(self) -> None:
        """Forget bytes the debugger cached (after leaving physical mode)."""
        ...

    def symbol_address(self, name: str) -> Optional[int]:
        """Address of ``name`` in the debugger's symbol file (may be unrelocated), or None."""
        ...


class GdbPhysicalMemory(MemorySource):
    """Guest physical memory read through the gdbstub, cached in 4 KiB pages per stop.

    ``read(pa, size)`` returns ``size`` bytes or raises PhysicalReadError.
    Use :meth:`physical_mode` around a batch of reads so the mode is
    switched once; a read outside it switches on and off by itself.  A live
    source: :meth:`clear` (the guest ran) starts a new ``generation``.
    """

    zero_fills_holes = True
    live = True
    description = "QEMU gdbstub"

    def __init__(self, link: StubLink) -> None:
        self.link = link
        self._pages: Dict[int, bytes] = {}
        self._depth = 0
        self._restore: Optional[str] = None
        self.packets = 0
        self.bytes_read = 0

    @contextlib.contextmanager
    def physical_mode(self) -> Iterator[None]:
        """Physical mode on for the block; the mode found before is restored on the way out."""
        if self._depth == 0:
            before = self.link.packet("qqemu.PhyMemMode")
            if before not in ("0", "1"):
                raise NoPhysicalModeError("the gdb stub has no physical-memory mode (Qqemu.PhyMemMode): "
                                          "kmemdbg needs QEMU 4.1 or later as the gdb server")
            self._restore = before
            if before != "1":
                reply = self.link.packet("Qqemu.PhyMemMode:1")
                if reply != "OK":
                    self._restore = None
                    raise NoPhysicalModeError(f"the gdb stub refused physical-memory mode ({reply!r})")
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                restore, self._restore = self._restore, None
                if restore == "0":
                    self.link.packet("Qqemu.PhyMemMode:0")
                    self.link.flush_cache()

    def _fetch(self, pa: int, size: int) -> bytes:
        with self.physical_mode():
            self.packets += 1
            data = self.link.read(pa, size)
        if len(data) != size:
            raise PhysicalReadError(pa, size, f"short read ({len(data)} bytes)")
        self.bytes_read += size
        return data

    def read(self, pa: int, size: int) -> bytes:
        """``size`` bytes at physical ``pa``, through the per-stop page cache."""
        if size <= 0:
            return b""
        first, last = pa // PAGE, (pa + size - 1) // PAGE
        missing: List[int] = [p for p in range(first, last + 1) if p not in self._pages]
        runs: List[Tuple[int, int]] = []
        for p in missing:
            if runs and runs[-1][1] == p:
                runs[-1] = (runs[-1][0], p + 1)
            else:
                runs.append((p, p + 1))
        for lo, hi in runs:
            data = self._fetch(lo * PAGE, (hi - lo) * PAGE)
            for i in range(hi - lo):
                self._pages[lo + i] = data[i * PAGE:(i + 1) * PAGE]
        blob = b"".join(self._pages[p] for p in range(first, last + 1))
        off = pa - first * PAGE
        return blob[off:off + size]

    def probe(self, pa: int, size: int) -> bytes:
        """An uncached read (for scans that touch each page once)."""
        return self._fetch(pa, size)

    def clear(self) -> None:
        """Forget everything read: the guest has run since."""
        self._pages.clear()
        self.moved_on()


# -- what the CPU says ---------------------------------------------------------

def stub_arch(link: StubLink) -> Arch:
    """The registry Arch of the stub's CPU; SourceError when kmemdbg has none for it."""
    name = link.arch_name()
    arch = arch_for_gdb(name)
    if arch is None:
        known = " and ".join(a.display for a in ARCHES)
        others = " or ".join(a.display for a in ARCHES if a is not arch_for_host())
        raise SourceError(f"unknown architecture {name!r}: kmemdbg reads {known} kernels "
                          f"(for {others} use gdb-multiarch)")
    return arch


def cpu_paging(link: StubLink) -> CpuPaging:
    """Read the paging registers (the architecture's ``cpu_paging`` hook); raises
    SourceError subclasses (PagingOffError when translation is off) with one-line causes."""
    return stub_arch(link).cpu_paging(link)


# -- finding VMCOREINFO in guest memory -----------------------------------------

NOTE_NAME = b"VMCOREINFO\0\0"
SCAN_LIMIT_BYTES = 1 << 30


@dataclass(frozen=True)
class FoundVmcoreinfo:
    """VMCOREINFO text found at physical ``pa``; ``how`` says how it was found."""

    text: str
    pa: int
    how: str


def _parse_note_page(head: bytes) -> Optional[Tuple[int, int]]:
    """(offset of the text, its length bound) when ``head`` starts a VMCOREINFO note or data page."""
    if len(head) >= 34 and head[12:24] == NOTE_NAME and head[24:34] == b"OSRELEASE=":
        namesz, descsz, ntype = struct.unpack_from("<III", head)
        if namesz == 11 and ntype == 0 and 0 < descsz < 65536:
            return 24, descsz
    if head.startswith(b"OSRELEASE="):
        return 0, 2 * PAGE
    return None


def _validated(text: bytes) -> Optional[str]:
    body = text.split(b"\0", 1)[0].decode("ascii", "replace")
    info = VmcoreInfo.parse(body)
    if info.osrelease() and info.page_size() and info.symbol("swapper_pg_dir") is not None:
        return body
    return None


def read_vmcoreinfo_at(memory, pa: int) -> Optional[str]:
    """The VMCOREINFO text of a note or data page at physical ``pa``, or None."""
    try:
        head = memory.probe(pa, 64)
    except PhysicalReadError:
        return None
    where = _parse_note_page(head)
    if where is None:
        return None
    off, length = where
    try:
        return _validated(memory.probe(pa + off, length))
    except PhysicalReadError:
        return None


def scan_order(paging: CpuPaging, walker: Optional[Walker], limit_bytes: int) -> List[Tuple[int, int]]:
    """Physical ``[start, end)`` ranges to scan for the note, most likely first (the
    architecture's ``scan_order`` hook: the note and the data page are page allocations
    made at subsys_initcall time, which the buddy allocator serves from the lowest free
    pages, so each architecture scans upward from where its RAM starts)."""
    return arch_named(paging.arch).scan_order(paging, walker, limit_bytes)


def find_vmcoreinfo(link, memory, paging: CpuPaging, limit_bytes: int = SCAN_LIMIT_BYTES) -> FoundVmcoreinfo:
    """Locate the kernel's VMCOREINFO in guest memory.

    First through ``vmcoreinfo_note`` when gdb has a vmlinux loaded (its
    value, a linear-map pointer, is translated with the CPU's own tables);
    then by scanning the first bytes of each physical page.  Raises
    NotAKernelError when neither finds it.
    """
    walker = None
    if paging.format is not None and paging.root_pa is not None:
        walker = Walker(paging.format, memory, paging.root_pa, TableCache(memory))
    var_va = link.symbol_address("vmcoreinfo_note")
    if walker is not None and var_va is not None:
        var_pa = walker.walk(var_va).pa
        if var_pa is not None:
            note_va = int.from_bytes(memory.read(var_pa, 8), "little")
            note_pa = walker.walk(note_va).pa if note_va else None
            if note_pa is not None:
                text = read_vmcoreinfo_at(memory, note_pa)
                if text:
                    return FoundVmcoreinfo(text, note_pa, "symbol vmcoreinfo_note of gdb's symbol file")
    scanned = 0
    for start, end in scan_order(paging, walker, limit_bytes):
        for pa in range(start, end, PAGE):
            scanned += 1
            try:
                head = memory.probe(pa, 64)
            except PhysicalReadError:
                break
            if _parse_note_page(head) is None:
                continue
            text = read_vmcoreinfo_at(memory, pa)
            if text:
                return FoundVmcoreinfo(text, pa, f"scan of guest physical memory ({scanned} pages)")
    raise NotAKernelError(f"no Linux VMCOREINFO in the first {limit_bytes >> 20} MiB of guest RAM "
                          f"({scanned} pages scanned): not a Linux kernel, or one without "
                          "CONFIG_VMCORE_INFO; loading the vmlinux in gdb lets kmemdbg use "
                          "vmcoreinfo_note")


__all__ = ["StubLink", "GdbPhysicalMemory", "SCAN_LIMIT_BYTES", "stub_arch", "CpuPaging", "cpu_paging", "find_vmcoreinfo",
           "FoundVmcoreinfo", "NotConnectedError", "NoPhysicalModeError", "PagingOffError",
           "NotAKernelError", "read_vmcoreinfo_at"]
