"""A raw ELF core (vmcore, QEMU dump, model vmcore) read without drgn.

Only the ELF header, the program headers and the requested bytes are read;
the file is opened read-only and never written.  Physical addresses come
from each PT_LOAD's ``p_paddr``.
"""
from __future__ import annotations

import bisect
import struct
from typing import List, Optional, Tuple

from ..errors import PhysicalReadError, SourceError
from .mapped import map_readonly

PT_LOAD = 1
PT_NOTE = 4
EM_X86_64 = 62
EM_AARCH64 = 183
ARCH_BY_MACHINE = {EM_X86_64: "x86_64", EM_AARCH64: "arm64"}


def program_headers(path: str) -> List[Tuple[int, int, int, int]]:
    """(p_type, p_vaddr, p_paddr, p_memsz) of every program header of the ELF file at ``path``.

    Reads only the headers with ``pread``, so it also works on files that
    cannot be mapped, such as /proc/kcore.  Raises SourceError.
    """
    import os

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise SourceError(f"{path}: cannot open: {err.strerror}") from None
    try:
        head = os.pread(fd, 64, 0)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
            raise SourceError(f"{path}: not a 64-bit ELF file")
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        table = os.pread(fd, phentsize * phnum, phoff)
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


class ElfCoreMemory:
    """Physical memory of a 64-bit little-endian ELF core file at ``path``."""

    zero_fills_holes = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._map, size = map_readonly(path, 64, "an ELF core")
        ident = self._map[:16]
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            raise SourceError(f"{path}: not a 64-bit little-endian ELF file")
        (e_type, e_machine, _v, _entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize,
         e_phnum) = struct.unpack_from("<HHIQQQIHHH", self._map, 16)
        if e_type != 4:
            raise SourceError(f"{path}: ELF type {e_type} is not a core file")
        self.machine = e_machine
        self.arch: Optional[str] = ARCH_BY_MACHINE.get(e_machine)
        # (paddr, filesz, offset, memsz, vaddr) per PT_LOAD, sorted by paddr
        self.loads: List[Tuple[int, int, int, int, int]] = []
        self.notes: List[Tuple[int, int]] = []
        if e_phentsize < 56 or e_phoff + e_phnum * e_phentsize > size:
            raise SourceError(f"{path}: truncated program headers")
        for i in range(e_phnum):
            p_type, _fl, off, va, pa, filesz, memsz, _al = struct.unpack_from(
                "<IIQQQQQQ", self._map, e_phoff + i * e_phentsize)
            if p_type == PT_LOAD:
                self.loads.append((pa, filesz, off, memsz, va))
            elif p_type == PT_NOTE:
                self.notes.append((off, filesz))
        self.loads.sort()
        # Bytes of PT_LOAD data that the program headers promise past the end of the file.
        self.missing_bytes = sum(max(0, min(off + filesz, 1 << 62) - max(off, size))
                                 for _pa, filesz, off, _m, _v in self.loads)
        self._starts = [l[0] for l in self.loads]
        self._size = size

    def read(self, pa: int, size: int) -> bytes:
        i = bisect.bisect_right(self._starts, pa) - 1
        if i >= 0:
            start, filesz, off, _memsz, _va = self.loads[i]
            if pa + size <= start + filesz and off + filesz <= self._size:
                a = off + pa - start
                return self._map[a:a + size]
        return self._read_slow(pa, size)

    def _read_slow(self, pa: int, size: int) -> bytes:
        out = bytearray()
        want, end = pa, pa + size
        while want < end:
            i = bisect.bisect_right(self._starts, want) - 1
            if i < 0:
                raise PhysicalReadError(pa, size, f"physical 0x{want:x} is not in the core")
            start, filesz, off, memsz, _va = self.loads[i]
            if want >= start + memsz:
                raise PhysicalReadError(pa, size, f"physical 0x{want:x} is not in the core")
            chunk_end = min(end, start + memsz)
            file_end = min(chunk_end, start + filesz)
            if want < file_end:
                a, b = off + (want - start), off + (file_end - start)
                if b > self._size:
                    raise PhysicalReadError(pa, size, "the core file is truncated")
                out += self._map[a:b]
            if chunk_end > max(want, file_end):
                out += bytes(chunk_end - max(want, file_end))
            want = chunk_end
        return bytes(out)

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
            pos, stop = off, min(off + length, self._size)
            while pos + 12 <= stop:
                namesz, descsz, _type = struct.unpack_from("<III", self._map, pos)
                pos += 12
                nm = bytes(self._map[pos:pos + namesz]).rstrip(b"\0")
                pos += (namesz + 3) & ~3
                desc = bytes(self._map[pos:pos + descsz])
                pos += (descsz + 3) & ~3
                if nm == name:
                    return desc
        return None

    def close(self) -> None:
        self._map.close()
