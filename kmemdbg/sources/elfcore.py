"""A raw ELF core (vmcore, QEMU dump, model vmcore) read without drgn.

Only the ELF header, the program headers and the requested bytes are read
(a read-only map of the file, see :mod:`kmemdbg.sources.dumpfile`); the file is opened read-only and
never written.  Physical addresses come from each PT_LOAD's ``p_paddr``.

Every header value is checked as it is read (``Elf64_Ehdr``/``Elf64_Phdr``
of the System V gABI): a 64-bit little-endian ``ET_CORE`` of a machine of the
architecture registry (:func:`kmemdbg.arch.arch_for_elf_machine`), program headers of exactly 56 bytes inside the file, PT_LOAD
segments whose file size does not pass their memory size and whose physical
range fits in 52 bits, notes inside the file.  A bad value raises
SourceError naming the field and the value.
"""
from __future__ import annotations

import bisect
import struct
from typing import List, Optional, Tuple

from ..arch import ARCHES, arch_for_elf_machine
from ..errors import PhysicalReadError, SourceError
from ..memory import LinearOffset, MemorySource, PhysicalView
from .dumpfile import DumpFile, open_regular

PT_LOAD = 1
PT_NOTE = 4
PHDR_BYTES = 56            # sizeof(Elf64_Phdr)
PN_XNUM = 0xFFFF           # e_phnum escape: the count is in section header 0's sh_info
MAX_PHNUM = 1 << 20        # far above any dump (one PT_LOAD per RAM range)
MAX_PHYS_BITS = 52         # x86-64 MAXPHYADDR and arm64 LPA2 both stop at 52 bits
MAX_READ_BYTES = 1 << 28   # one read of more than this is a caller's bug or a corrupt length
#: why a physical address in no PT_LOAD segment cannot be read (a template for the address)
_NOT_IN_CORE = "physical {:#x} is not in the core"
MAX_NOTE_BYTES = 64 << 20  # all notes of a dump (per-CPU registers, VMCOREINFO) fit easily


def program_headers(path: str) -> List[Tuple[int, int, int, int]]:
    """(p_type, p_vaddr, p_paddr, p_memsz) of every program header of the ELF file at ``path``.

    Reads only the headers with ``pread``, so it also works on files that
    cannot be mapped, such as /proc/kcore.  Raises SourceError.
    """
    import os

    fd = open_regular(path)
    try:
        head = os.pread(fd, 64, 0)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
            raise SourceError(f"{path}: not a 64-bit ELF file")
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        if phentsize != PHDR_BYTES or phnum >= PN_XNUM:
            raise SourceError(f"{path}: e_phentsize {phentsize} / e_phnum {phnum} not supported")
        table = os.pread(fd, phentsize * phnum, phoff)
        if len(table) < phentsize * phnum:
            raise SourceError(f"{path}: truncated program headers")
    finally:
        os.close(fd)
    out = []
    for i in range(phnum):
        p_type, _fl, _off, va, pa, _fs, memsz, _al = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        out.append((p_type, va, pa, memsz))
    return out


def linear_offset_from_headers(headers, image_start: int) -> Optional[int]:
    """``p_vaddr - p_paddr`` of a direct-map PT_LOAD (kexec vmcores, /proc/kcore >= 4.11).

    Segments at or above ``image_start`` (the kernel image) and those whose
    p_vaddr equals p_paddr (QEMU dumps) or whose p_paddr is unset are skipped.
    """
    for p_type, va, pa, _m in headers:
        if p_type == PT_LOAD and va != pa and va >> 63 and va < image_start and pa != (1 << 64) - 1:
            return (va - pa) & ((1 << 64) - 1)
    return None


class ElfCoreMemory(MemorySource):
    """Physical memory of a 64-bit little-endian ELF core file at ``path``.

    Declares its RAM ranges (the PT_LOADs), its notes, its architecture
    (``e_machine``), the direct-map offset of its PT_LOADs and the bytes a
    truncated file lacks.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = path
        self._file = f = DumpFile(path, 64, "an ELF core")
        try:
            self._parse(f)
        except BaseException:
            f.close()
            raise

    def _bad(self, what: str) -> SourceError:
        return SourceError(f"{self.path}: {what}")

    def _parse(self, f: DumpFile) -> None:
        size = f.size
        head = f.read_at(0, 64)
        ident = head[:16]
        if ident[:4] != b"\x7fELF":
            raise self._bad("not an ELF file")
        if ident[4] != 2 or ident[5] != 1:
            raise self._bad(f"not a 64-bit little-endian ELF file (EI_CLASS {ident[4]}, EI_DATA {ident[5]})")
        if ident[6] != 1:
            raise self._bad(f"ELF EI_VERSION {ident[6]} is not 1")
        (e_type, e_machine, e_version, _entry, e_phoff, e_shoff, _flags, _ehsize, e_phentsize,
         e_phnum, e_shentsize, _shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", head, 16)
        if e_type != 4:
            raise self._bad(f"ELF e_type {e_type} is not a core file (ET_CORE = 4)")
        if e_version != 1:
            raise self._bad(f"ELF e_version {e_version} is not 1")
        self.machine = e_machine
        self.arch_hint = arch_for_elf_machine(e_machine)
        if self.arch_hint is None:
            known = " or ".join(f"{a.display} ({a.elf_machine})" for a in ARCHES)
            raise self._bad(f"ELF e_machine {e_machine} is not {known}")
        if e_phentsize != PHDR_BYTES:
            raise self._bad(f"ELF e_phentsize {e_phentsize} is not {PHDR_BYTES} (sizeof(Elf64_Phdr))")
        if e_phnum == PN_XNUM:
            sh0 = f.read_at(e_shoff, 64) if e_shoff and e_shentsize >= 64 else b""
            if len(sh0) < 64:
                raise self._bad(f"ELF e_phnum is PN_XNUM but section header 0 (e_shoff {e_shoff}) is missing")
            e_phnum = struct.unpack_from("<I", sh0, 44)[0]
        if not 0 < e_phnum <= MAX_PHNUM:
            raise self._bad(f"ELF e_phnum {e_phnum}: a core needs 1 to {MAX_PHNUM} program headers")
        if e_phoff < 64 or e_phoff % 8:
            raise self._bad(f"ELF e_phoff {e_phoff} is not an 8-aligned offset past the ELF header")
        if e_phoff + e_phnum * PHDR_BYTES > size:
            raise self._bad(f"truncated program headers (e_phoff {e_phoff} + {e_phnum} x {PHDR_BYTES} "
                            f"bytes > file size {size})")
        table = f.read_at(e_phoff, e_phnum * PHDR_BYTES)
        # (paddr, filesz, offset, memsz, vaddr) per PT_LOAD, sorted by paddr
        self.loads: List[Tuple[int, int, int, int, int]] = []
        self.notes: List[Tuple[int, int]] = []
        note_bytes = 0
        for i in range(e_phnum):
            p_type, _fl, off, va, pa, filesz, memsz, _al = struct.unpack_from("<IIQQQQQQ", table,
                                                                              i * PHDR_BYTES)
            if p_type == PT_LOAD:
                if filesz > memsz:
                    raise self._bad(f"PT_LOAD {i}: p_filesz 0x{filesz:x} is larger than p_memsz 0x{memsz:x}")
                if pa + memsz > 1 << MAX_PHYS_BITS:
                    raise self._bad(f"PT_LOAD {i}: physical range 0x{pa:x} + 0x{memsz:x} passes "
                                    f"{MAX_PHYS_BITS} bits")
                if filesz and off >> 62:
                    raise self._bad(f"PT_LOAD {i}: p_offset 0x{off:x} is not a file offset")
                if memsz:
                    self.loads.append((pa, filesz, off, memsz, va))
            elif p_type == PT_NOTE:
                if off + filesz > size:
                    raise self._bad(f"PT_NOTE {i}: notes at offset {off} + {filesz} bytes pass the end of "
                                    f"the file ({size} bytes): the dump is truncated or corrupt")
                note_bytes += filesz
                if note_bytes > MAX_NOTE_BYTES:
                    raise self._bad(f"PT_NOTE {i}: more than {MAX_NOTE_BYTES} bytes of notes")
                self.notes.append((off, filesz))
        if not self.loads:
            raise self._bad("the core has no PT_LOAD segment: no memory")
        self.loads.sort()
        # Bytes of PT_LOAD data that the program headers promise past the end of the file.
        self.missing_bytes = sum(max(0, min(off + filesz, 1 << 62) - max(off, size))
                                 for _pa, filesz, off, _m, _v in self.loads)
        self._starts = [l[0] for l in self.loads]
        self._size = size
        # per PT_LOAD: (physical end of the bytes the file holds, file offset - physical start);
        # a segment whose bytes pass the end of the file has no fast path (end = start)
        self._fast = [(pa + filesz if off + filesz <= size else pa, off - pa)
                      for pa, filesz, off, _m, _v in self.loads]
        self._view = f.view

    def read(self, pa: int, size: int) -> bytes:
        i = bisect.bisect_right(self._starts, pa) - 1
        if i >= 0:
            file_end, delta = self._fast[i]
            if 0 <= size <= MAX_READ_BYTES and pa + size <= file_end:
                view = self._view
                if view is not None:
                    return view[pa + delta:pa + delta + size]
                return self._file.read_at(pa + delta, size)
        if not 0 <= size <= MAX_READ_BYTES:
            raise PhysicalReadError(pa, size, f"a read of {size} bytes is out of bounds")
        if i < 0 or pa >= self.loads[i][0] + self.loads[i][3]:
            # in no segment: what _read_slow would say at its first byte, without its loop
            raise PhysicalReadError(pa, size, _NOT_IN_CORE, pa)
        return self._read_slow(pa, size)

    def _read_slow(self, pa: int, size: int) -> bytes:
        out = bytearray()
        want, end = pa, pa + size
        while want < end:
            i = bisect.bisect_right(self._starts, want) - 1
            if i < 0:
                raise PhysicalReadError(pa, size, _NOT_IN_CORE, want)
            start, filesz, off, memsz, _va = self.loads[i]
            if want >= start + memsz:
                raise PhysicalReadError(pa, size, _NOT_IN_CORE, want)
            chunk_end = min(end, start + memsz)
            file_end = min(chunk_end, start + filesz)
            if want < file_end:
                a, b = off + (want - start), off + (file_end - start)
                if b > self._size:
                    raise PhysicalReadError(pa, size, "the core file is truncated")
                out += self._file.read_at(a, b - a)
            if chunk_end > max(want, file_end):
                out += bytes(chunk_end - max(want, file_end))
            want = chunk_end
        return bytes(out)

    def physical_view(self) -> Optional[PhysicalView]:
        """The file's read-only map and the PT_LOAD bytes it holds (None when read with ``pread``).

        Only bytes the file holds are in the view: a segment's zero-filled
        tail (``p_memsz`` past ``p_filesz``) and a segment cut short by a
        truncated file are read through :meth:`read`.
        """
        if self._view is None:
            return None
        view = self.__dict__.get("_physical_view")
        if view is None:
            segs = tuple((pa, end, pa + delta) for pa, (end, delta) in zip(self._starts, self._fast) if end > pa)
            # outside every PT_LOAD read() raises at once; the view says so, in read()'s words
            held = tuple((pa, pa + memsz) for pa, _f, _o, memsz, _v in self.loads)
            view = self._physical_view = PhysicalView(self._view, segs, held, _NOT_IN_CORE)
        return view

    def ram_ranges(self) -> Optional[List[Tuple[int, int]]]:
        """Physical ``[start, end)`` of every PT_LOAD, sorted."""
        return sorted((pa, pa + memsz) for pa, _f, _o, memsz, _v in self.loads)

    def linear_offset(self, image_start_va: int) -> Optional[LinearOffset]:
        """``p_vaddr - p_paddr`` of a direct-map PT_LOAD (see :func:`linear_offset_from_headers`)."""
        headers = [(PT_LOAD, va, pa, memsz) for pa, _f, _o, memsz, va in self.loads]
        offset = linear_offset_from_headers(headers, image_start_va)
        return None if offset is None else LinearOffset(offset, "ELF PT_LOAD p_vaddr - p_paddr")

    def vaddr_of(self, pa: int) -> Optional[int]:
        """The p_vaddr the core gives physical ``pa`` (None when not covered)."""
        i = bisect.bisect_right(self._starts, pa) - 1
        if i < 0:
            return None
        start, _filesz, _off, memsz, va = self.loads[i]
        return va + (pa - start) if pa < start + memsz else None

    def note(self, name: bytes) -> Optional[bytes]:
        """The descriptor of the first ELF note called ``name`` (e.g. b"VMCOREINFO")."""
        for off, length in self.notes:
            data = self._file.read_at(off, length)
            pos, stop = 0, len(data)
            while pos + 12 <= stop:
                namesz, descsz, _type = struct.unpack_from("<III", data, pos)
                pos += 12
                nm = data[pos:pos + namesz].rstrip(b"\0")
                pos += (namesz + 3) & ~3
                desc = data[pos:pos + descsz]
                pos += (descsz + 3) & ~3
                if nm == name:
                    if pos > stop + 3:
                        raise self._bad(f"note {name.decode('ascii', 'replace')}: descsz {descsz} passes "
                                        f"the end of its PT_NOTE segment")
                    return desc
        return None

    def close(self) -> None:
        self._view = None
        self.__dict__.pop("_physical_view", None)
        self._file.close()
