"""kdump-compressed (makedumpfile "diskdump") vmcores read without libkdumpfile.

The format, as makedumpfile and QEMU's ``dump-guest-memory`` write it:

- block 0: ``disk_dump_header``: signature ``"KDUMP   "``, version, a
  ``new_utsname`` (six 65-byte strings; QEMU leaves the system name empty and
  writes "Unknown" as the machine on arm64), a timeval, then status,
  ``block_size``, ``sub_hdr_size``, ``bitmap_blocks``, ``max_mapnr``...
- block 1: ``kdump_sub_header``: phys_base (QEMU's value is wrong: it reads the
  kernel's decimal as hex), dump_level, split, start/end pfn, and the file
  offset and size of the VMCOREINFO text and of the ELF notes.
- blocks ``1 + sub_hdr_size`` onwards: two bitmaps of ``max_mapnr`` bits,
  each half of ``bitmap_blocks`` blocks: frames that exist, frames dumped.
- then one 24-byte ``page_desc`` (file offset, size, flags, page flags) per
  dumped frame, in frame order; flags say zlib (1), lzo (2), snappy (4) or
  zstd (0x20) compression.

Frames are ``block_size`` bytes: QEMU writes 64 KiB blocks for arm64 guests
whatever their page size, which is why libkdumpfile (assuming the kernel's
page size) reads the wrong frames there.  The file is only read.
"""
from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from typing import List, Optional, Tuple

from ..errors import PhysicalReadError, SourceError
from .mapped import map_readonly

SIGNATURES = (b"KDUMP   ", b"DISKDUMP")
COMPRESS_ZLIB, COMPRESS_LZO, COMPRESS_SNAPPY, COMPRESS_ZSTD = 0x1, 0x2, 0x4, 0x20
UTS_LEN = 65
HEADER_FIELDS_OFF = 424   # after signature, version, utsname and an 8-aligned 16-byte timeval
ARCH_BY_MACHINE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


class KdumpMemory:
    """Physical memory of a kdump-compressed core at ``path``."""

    zero_fills_holes = False

    def __init__(self, path: str, cache_blocks: int = 256) -> None:
        self.path = path
        self._map, self._size = map_readonly(path, 4096, "a kdump-compressed file")
        m = self._map
        if bytes(m[:8]) not in SIGNATURES:
            if bytes(m[:16]).startswith(b"makedumpfile"):
                raise SourceError(f"{path}: flattened kdump format: reassemble it with "
                                  "'makedumpfile -R OUT < FILE' first")
            raise SourceError(f"{path}: not a kdump-compressed file")
        self.version = struct.unpack_from("<i", m, 8)[0]
        uts = [bytes(m[12 + i * UTS_LEN:12 + (i + 1) * UTS_LEN]).split(b"\0")[0].decode("ascii", "replace")
               for i in range(6)]
        self.machine = uts[4]
        self.arch: Optional[str] = ARCH_BY_MACHINE.get(self.machine)
        (_status, bs, sub_blocks, bitmap_blocks, max_mapnr, _ram, _dev, _written,
         _cpu, _ncpu) = struct.unpack_from("<IiiIIIIIIi", m, HEADER_FIELDS_OFF)
        if bs <= 0 or bs & (bs - 1) or bitmap_blocks <= 0:
            raise SourceError(f"{path}: corrupt kdump header (block size {bs})")
        self.block_size = bs
        sub = struct.unpack_from("<QiiQQQQQQQQ", m, bs)
        self.header_phys_base = sub[0]
        self._vmcoreinfo = (sub[5], sub[6])
        if self.version >= 6 and bs + 104 <= self._size:
            max64 = struct.unpack_from("<Q", m, bs + 96)[0]
            if max64:
                max_mapnr = max64
        self.max_mapnr = max_mapnr
        bitmap_off = (1 + sub_blocks) * bs
        half = bitmap_blocks * bs // 2
        if bitmap_off + 2 * half > self._size:
            raise SourceError(f"{path}: the dump is truncated inside its bitmaps")
        self._valid = bytes(m[bitmap_off:bitmap_off + half])
        self._dumped = bytes(m[bitmap_off + half:bitmap_off + 2 * half])
        self._desc_off = bitmap_off + 2 * half
        # number of dumped frames before each 64-frame word, for O(1) ranks
        words = memoryview(self._dumped).cast("Q") if len(self._dumped) % 8 == 0 else None
        if words is None:
            raise SourceError(f"{path}: corrupt kdump bitmap size")
        self._words = words
        prefix = [0] * (len(words) + 1)
        total = 0
        for i, w in enumerate(words):
            prefix[i] = total
            total += bin(w).count("1")
        prefix[len(words)] = total
        self._prefix = prefix
        self.dumped_frames = total
        if self._desc_off + 24 * total > self._size:
            self.missing_bytes = self._desc_off + 24 * total - self._size
        else:
            self.missing_bytes = 0
        self._cache: "OrderedDict[int, bytes]" = OrderedDict()
        self._cache_blocks = cache_blocks

    # -- bitmaps -------------------------------------------------------------
    def _bit(self, bitmap: bytes, pfn: int) -> bool:
        i = pfn >> 3
        return i < len(bitmap) and bool(bitmap[i] >> (pfn & 7) & 1)

    def _rank(self, pfn: int) -> int:
        w = pfn >> 6
        return self._prefix[w] + bin(self._words[w] & ((1 << (pfn & 63)) - 1)).count("1")

    def _block(self, pfn: int) -> bytes:
        got = self._cache.get(pfn)
        if got is not None:
            self._cache.move_to_end(pfn)
            return got
        pa = pfn * self.block_size
        if pfn >= self.max_mapnr or not self._bit(self._dumped, pfn):
            why = "excluded from the dump (filtered)" if pfn < self.max_mapnr and \
                self._bit(self._valid, pfn) else "not in the dump"
            raise PhysicalReadError(pa, self.block_size, why)
        d = self._desc_off + 24 * self._rank(pfn)
        if d + 24 > self._size:
            raise PhysicalReadError(pa, self.block_size, "the dump is truncated (page descriptors)")
        off, size, flags, _pflags = struct.unpack_from("<qIIQ", self._map, d)
        if off < 0 or off + size > self._size:
            raise PhysicalReadError(pa, self.block_size, "the dump is truncated (page data)")
        raw = self._map[off:off + size]
        if flags & COMPRESS_ZLIB:
            try:
                data = zlib.decompress(raw)
            except zlib.error as err:
                raise PhysicalReadError(pa, self.block_size, f"corrupt zlib block ({err})") from None
        elif flags & (COMPRESS_LZO | COMPRESS_SNAPPY | COMPRESS_ZSTD):
            kind = {COMPRESS_LZO: "lzo", COMPRESS_SNAPPY: "snappy", COMPRESS_ZSTD: "zstd"}
            name = next(v for k, v in kind.items() if flags & k)
            raise PhysicalReadError(pa, self.block_size, f"{name}-compressed blocks are not supported")
        else:
            data = bytes(raw)
        if len(data) != self.block_size:
            raise PhysicalReadError(pa, self.block_size, f"block holds {len(data)} bytes, not {self.block_size}")
        self._cache[pfn] = data
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return data

    def read(self, pa: int, size: int) -> bytes:
        bs = self.block_size
        out = bytearray()
        want, end = pa, pa + size
        while want < end:
            block = self._block(want // bs)
            off = want % bs
            n = min(end - want, bs - off)
            out += block[off:off + n]
            want += n
        return bytes(out)

    # -- metadata --------------------------------------------------------------
    def note(self, name: bytes) -> Optional[bytes]:
        """The VMCOREINFO text from the sub-header (other notes are not indexed)."""
        if name != b"VMCOREINFO":
            return None
        off, size = self._vmcoreinfo
        if not size or off + size > self._size:
            return None
        return bytes(self._map[off:off + size])

    def ranges(self) -> List[Tuple[int, int]]:
        """Physical ``[start, end)`` runs of frames that exist (first bitmap)."""
        out: List[Tuple[int, int]] = []
        bs = self.block_size
        start = None
        valid = self._valid
        for i in range(min(len(valid), (self.max_mapnr + 7) // 8)):
            byte = valid[i]
            if (byte == 0xFF and start is not None) or (byte == 0 and start is None):
                continue
            for bit in range(8):
                pfn = i * 8 + bit
                on = byte >> bit & 1
                if on and start is None:
                    start = pfn
                elif not on and start is not None:
                    out.append((start * bs, pfn * bs))
                    start = None
        if start is not None:
            out.append((start * bs, min(self.max_mapnr, len(valid) * 8) * bs))
        return out

    def close(self) -> None:
        self._map.close()


__all__ = ["KdumpMemory"]
