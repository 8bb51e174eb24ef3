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

from ..arch import arm64, x86_64
from ..arch.base import PagingFormat
from ..errors import PhysicalReadError, SourceError
from ..memory import MemorySource, TableCache
from ..vmcoreinfo import VmcoreInfo
from ..walk import Walker

PAGE = 4096
MASK64 = (1 << 64) - 1


class NotConnectedError(SourceError):
    """gdb is not attached to a running target."""


class NoPhysicalModeError(SourceError):
    """The remote stub does not offer QEMU's physical-memory mode."""


class PagingOffError(SourceError):
    """The CPU has address translation switched off, so there are no kernel page tables."""


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
        """gdb's name of the target architecture ("i386:x86-64", "aarch64")."""
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

@dataclass(frozen=True)
class CpuPaging:
    """The translation regime the CPU is in at this stop.

    ``root_pa`` is the physical address of the top-level table that
    translates kernel addresses (CR3 on x86-64, TTBR1_EL1 on arm64), or None
    when the stub does not expose it; ``pc_va`` the program counter.
    """

    arch: str
    format: Optional[PagingFormat]
    root_pa: Optional[int]
    pc_va: Optional[int]
    evidence: str


def _bits(lo: int, hi: int) -> int:
    return ((1 << (hi - lo + 1)) - 1) << lo


def cpu_paging(link) -> CpuPaging:
    """Read the paging registers; raises SourceError subclasses with one-line causes."""
    name = link.arch_name()
    pc = link.register("pc")
    if name == "i386:x86-64":
        cr0, cr3, cr4 = link.register("cr0"), link.register("cr3"), link.register("cr4")
        if cr0 is None or cr3 is None or cr4 is None:
            return CpuPaging("x86_64", None, None, pc, "CR0/CR3/CR4 not exposed by the stub")
        if not cr0 >> 31 & 1:
            raise PagingOffError(f"paging is off (CR0.PG=0, CR0=0x{cr0:x}): no kernel page tables yet")
        efer = link.register("efer")
        if efer is not None and not efer >> 10 & 1:
            raise PagingOffError("the CPU is not in long mode (EFER.LMA=0): not a 64-bit kernel yet")
        levels = 5 if cr4 >> 12 & 1 else 4
        fmt = x86_64.paging_format(levels)
        return CpuPaging("x86_64", fmt, cr3 & _bits(12, 51), pc,
                         f"CR3=0x{cr3:x}, CR4.LA57={levels == 5:d}")
    if name.startswith("aarch64"):
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
        root = ttbr1 & _bits(6, 47)
        if ds or (page_size == 65536 and ips == 6):
            # 52-bit output addresses: TTBR BADDR[51:48] sits in bits 5:2.
            root |= (ttbr1 >> 2 & 0xF) << 48
        else:
            root = ttbr1 & _bits(1, 47)
        try:
            fmt = arm64.paging_format(page_size, 64 - t1sz, t1sz)
        except ValueError as err:
            raise SourceError(f"unsupported arm64 paging in TCR_EL1=0x{tcr:x}: {err}") from None
        return CpuPaging("arm64", fmt, root, pc,
                         f"TTBR1_EL1=0x{ttbr1:x}, TCR_EL1=0x{tcr:x} (T1SZ={t1sz}, {page_size // 1024}K, DS={ds})")
    raise SourceError(f"unknown architecture {name!r}: kmemdbg reads x86-64 and arm64 kernels "
                      "(for arm64 use gdb-multiarch)")


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
    """Physical ``[start, end)`` ranges to scan for the note, most likely first.

    The note and the data page are page allocations made at subsys_initcall
    time, which the buddy allocator serves from the lowest free pages, so
    the scan runs upward from the bottom of RAM: on x86-64 from 16 MiB
    (GFP_KERNEL avoids ZONE_DMA) and then the first 16 MiB; on arm64 from
    the 1 GiB boundary below the kernel image, whose physical address the
    program counter's translation gives (QEMU's virt board puts RAM at 1 GiB).
    """
    if paging.arch == "x86_64":
        return [(16 << 20, (16 << 20) + limit_bytes), (1 << 20, 16 << 20)]
    base = 1 << 30
    if walker is not None and paging.pc_va is not None and paging.pc_va >> 63:
        pa = walker.walk(paging.pc_va).pa
        if pa is not None:
            base = pa & ~((1 << 30) - 1)
    return [(base, base + limit_bytes)]


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


__all__ = ["StubLink", "GdbPhysicalMemory", "SCAN_LIMIT_BYTES", "CpuPaging", "cpu_paging", "find_vmcoreinfo",
           "FoundVmcoreinfo", "NotConnectedError", "NoPhysicalModeError", "PagingOffError",
           "NotAKernelError", "read_vmcoreinfo_at"]
