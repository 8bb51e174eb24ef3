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
page size) reads the wrong frames there.  The file is only read, with
``pread`` (never mapped whole).

Every header value is checked when the file is opened: a power-of-two block
size the file can hold, bitmaps that cover ``max_mapnr`` frames and fit in the
file, page descriptors and the page data they point at present (a truncated
file is told at open, like a truncated ELF core).  A page never inflates to
more than one block.
"""
from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from typing import List, Optional, Tuple

import numpy as np

from ..arch import arch_for_kdump_machine
from ..errors import PhysicalReadError, SourceError
from ..memory import MemorySource
from ..vmcoreinfo import MAX_VMCOREINFO_BYTES
from .dumpfile import DumpFile

SIGNATURES = (b"KDUMP   ", b"DISKDUMP")
COMPRESS_ZLIB, COMPRESS_LZO, COMPRESS_SNAPPY, COMPRESS_ZSTD = 0x1, 0x2, 0x4, 0x20
UTS_LEN = 65
HEADER_FIELDS_OFF = 424   # after signature, version, utsname and an 8-aligned 16-byte timeval
HEADER_FIELDS = struct.Struct("<IiiIIIIIIi")
SUB_HEADER = struct.Struct("<QiiQQQQQQQQ")
SUB_HEADER_V6_END = 104   # start_pfn_64, end_pfn_64, max_mapnr_64 follow the 80 bytes above
DESC = struct.Struct("<qIIQ")
MIN_BLOCK, MAX_BLOCK = 4096, 1 << 20
#: 2^31 frames: 8 TiB of 4 KiB frames; each bitmap then takes 256 MiB.
MAX_FRAMES = 1 << 31
#: Descriptors checked at open for page data past the end of the file (the last ones
#: in frame order, whose data makedumpfile and QEMU write last).
TAIL_DESCRIPTORS = 4096
MAX_READ_BYTES = 1 << 28


def _popcounts(data: bytes) -> np.ndarray:
    """Number of set bits of each 64-bit little-endian word of ``data``."""
    words = np.frombuffer(data, dtype=np.uint64)
    return np.bitwise_count(words) if hasattr(np, "bitwise_count") else \
        np.unpackbits(words.view(np.uint8)).reshape(-1, 64).sum(axis=1)


class KdumpMemory(MemorySource):
    """Physical memory of a kdump-compressed core at ``path``.  Raises SourceError.

    Declares its RAM ranges (the dumped frames of the bitmap), its notes and
    VMCOREINFO, its architecture (the header's utsname machine, when it names
    one) and the bytes a truncated file lacks.
    """

    def __init__(self, path: str, cache_blocks: int = 256) -> None:
        self.path = path
        self.description = path
        self._file = DumpFile(path, 4096, "a kdump-compressed file")
        try:
            self._parse()
        except BaseException:
            self._file.close()
            raise
        self._cache: "OrderedDict[int, bytes]" = OrderedDict()
        self._cache_blocks = cache_blocks

    def _bad(self, what: str) -> SourceError:
        return SourceError(f"{self.path}: {what}")

    def _parse(self) -> None:
        f = self._file
        size = self._size = f.size
        head = f.read_at(0, 4096)
        if head[:8] not in SIGNATURES:
            if head[:16].startswith(b"makedumpfile"):
                raise self._bad("flattened kdump format: reassemble it with "
                                "'makedumpfile -R OUT < FILE' first")
            raise self._bad("not a kdump-compressed file")
        self.version = struct.unpack_from("<i", head, 8)[0]
        if not 1 <= self.version <= 64:
            raise self._bad(f"kdump header: version {self.version} is not a kdump version")
        uts = [head[12 + i * UTS_LEN:12 + (i + 1) * UTS_LEN].split(b"\0")[0].decode("ascii", "replace")
               for i in range(6)]
        self.machine = uts[4]
        self.arch_hint = arch_for_kdump_machine(self.machine)
        (_status, bs, sub_blocks, bitmap_blocks, max_mapnr, _ram, _dev, _written,
         _cpu, _ncpu) = HEADER_FIELDS.unpack_from(head, HEADER_FIELDS_OFF)
        if not MIN_BLOCK <= bs <= MAX_BLOCK or bs & (bs - 1):
            raise self._bad(f"kdump header: block_size {bs} is not a power of two in "
                            f"{MIN_BLOCK}..{MAX_BLOCK}")
        self.block_size = bs
        if not 0 < sub_blocks <= 1 << 16:
            raise self._bad(f"kdump header: sub_hdr_size {sub_blocks} blocks is not 1..65536")
        if bs + SUB_HEADER.size > size:
            raise self._bad(f"the dump is truncated inside its sub-header (block_size {bs}, "
                            f"file {size} bytes)")
        sub_raw = f.read_at(bs, SUB_HEADER_V6_END)
        sub = SUB_HEADER.unpack_from(sub_raw, 0)
        self.header_phys_base = sub[0]
        if self.version >= 6 and len(sub_raw) >= SUB_HEADER_V6_END:
            max64 = struct.unpack_from("<Q", sub_raw, 96)[0]
            if max64:
                max_mapnr = max64
        if not 0 < max_mapnr <= MAX_FRAMES:
            raise self._bad(f"kdump header: max_mapnr {max_mapnr} is not 1..{MAX_FRAMES} frames")
        self.max_mapnr = max_mapnr
        vi_off, vi_size = sub[5], sub[6]
        if vi_size and (vi_size > MAX_VMCOREINFO_BYTES or vi_off + vi_size > size):
            raise self._bad(f"kdump sub-header: VMCOREINFO of {vi_size} bytes at offset {vi_off} "
                            f"is not inside the file ({size} bytes) or larger than {MAX_VMCOREINFO_BYTES}")
        self._vmcoreinfo = (vi_off, vi_size)
        need = -(-max_mapnr // 8)
        half = bitmap_blocks * bs // 2
        if not need <= half <= need + bs:
            raise self._bad(f"kdump header: bitmap_blocks {bitmap_blocks} gives {half}-byte bitmaps, "
                            f"not the {need} bytes max_mapnr {max_mapnr} needs")
        bitmap_off = (1 + sub_blocks) * bs
        if bitmap_off + 2 * half > size:
            raise self._bad("the dump is truncated inside its bitmaps")
        # only the bits of frames below max_mapnr count; pad to whole 64-bit words
        nbytes = -(-need // 8) * 8
        valid = bytearray(f.read_at(bitmap_off, need).ljust(nbytes, b"\0"))
        dumped = bytearray(f.read_at(bitmap_off + half, need).ljust(nbytes, b"\0"))
        if max_mapnr % 8:
            keep = (1 << (max_mapnr % 8)) - 1
            valid[need - 1] &= keep
            dumped[need - 1] &= keep
        self._valid, self._dumped = bytes(valid), bytes(dumped)
        self._desc_off = bitmap_off + 2 * half
        counts = _popcounts(self._dumped)
        prefix = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=prefix[1:])
        self._prefix = prefix
        self._words = np.frombuffer(self._dumped, dtype=np.uint64)
        total = self.dumped_frames = int(prefix[-1])
        self.missing_bytes = max(0, self._desc_off + DESC.size * total - size)
        if not self.missing_bytes and total:
            # page data past the end of the file: the file was cut after its descriptors
            n = min(total, TAIL_DESCRIPTORS)
            tail = f.read_at(self._desc_off + DESC.size * (total - n), DESC.size * n)
            data_end = 0
            for off, length, _flags, _pf in DESC.iter_unpack(tail):
                if off >= 0 and 0 < length <= bs:
                    data_end = max(data_end, off + length)
            self.missing_bytes = max(0, data_end - size)

    # -- bitmaps -------------------------------------------------------------
    def _bit(self, bitmap: bytes, pfn: int) -> bool:
        i = pfn >> 3
        return i < len(bitmap) and bool(bitmap[i] >> (pfn & 7) & 1)

    def _rank(self, pfn: int) -> int:
        w = pfn >> 6
        return int(self._prefix[w]) + bin(int(self._words[w]) & ((1 << (pfn & 63)) - 1)).count("1")

    def _block(self, pfn: int) -> bytes:
        got = self._cache.get(pfn)
        if got is not None:
            self._cache.move_to_end(pfn)
            return got
        bs = self.block_size
        pa = pfn * bs
        if pfn >= self.max_mapnr or not self._bit(self._dumped, pfn):
            why = "excluded from the dump (filtered)" if pfn < self.max_mapnr and \
                self._bit(self._valid, pfn) else "not in the dump"
            raise PhysicalReadError(pa, bs, why)
        d = self._desc_off + DESC.size * self._rank(pfn)
        raw_desc = self._file.read_at(d, DESC.size)
        if len(raw_desc) < DESC.size:
            raise PhysicalReadError(pa, bs, "the dump is truncated (page descriptors)")
        off, size, flags, _pflags = DESC.unpack(raw_desc)
        if not 0 < size <= bs:
            raise PhysicalReadError(pa, bs, f"corrupt page descriptor: {size} bytes of data for a "
                                            f"{bs}-byte block")
        if off < 0 or off + size > self._size:
            raise PhysicalReadError(pa, bs, "the dump is truncated (page data)")
        raw = self._file.read_at(off, size)
        if flags & COMPRESS_ZLIB:
            inflate = zlib.decompressobj()
            try:
                # a block is a block: never inflate more than one byte past it
                data = inflate.decompress(raw, bs + 1)
            except zlib.error as err:
                raise PhysicalReadError(pa, bs, f"corrupt zlib block ({err})") from None
            if len(data) > bs:
                raise PhysicalReadError(pa, bs, f"corrupt zlib block: it inflates past {bs} bytes")
            if not inflate.eof:
                raise PhysicalReadError(pa, bs, "corrupt zlib block: the stream is incomplete")
        elif flags & (COMPRESS_LZO | COMPRESS_SNAPPY | COMPRESS_ZSTD):
            kind = {COMPRESS_LZO: "lzo", COMPRESS_SNAPPY: "snappy", COMPRESS_ZSTD: "zstd"}
            name = next(v for k, v in kind.items() if flags & k)
            raise PhysicalReadError(pa, bs, f"{name}-compressed blocks are not supported")
        else:
            data = raw
        if len(data) != bs:
            raise PhysicalReadError(pa, bs, f"block holds {len(data)} bytes, not {bs}")
        self._cache[pfn] = data
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return data

    def read(self, pa: int, size: int) -> bytes:
        if not 0 <= size <= MAX_READ_BYTES or pa < 0:
            raise PhysicalReadError(pa, size, f"a read of {size} bytes is out of bounds")
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
        if not size:
            return None
        return self._file.read_at(off, size)

    def ranges(self) -> List[Tuple[int, int]]:
        """Physical ``[start, end)`` runs of frames that exist (first bitmap)."""
        bs = self.block_size
        edges: List[int] = []
        prev = 0
        chunk = 1 << 20          # bytes of bitmap per step, so memory stays bounded
        valid = np.frombuffer(self._valid, dtype=np.uint8)
        for lo in range(0, len(valid), chunk):
            bits = np.unpackbits(valid[lo:lo + chunk], bitorder="little").astype(np.int8)
            step = np.diff(np.concatenate(([prev], bits)))
            edges += (np.flatnonzero(step) + lo * 8).tolist()
            prev = int(bits[-1])
        if prev:
            edges.append(len(valid) * 8)
        return [(a * bs, min(b, self.max_mapnr) * bs) for a, b in zip(edges[::2], edges[1::2])]

    def ram_ranges(self) -> Optional[List[Tuple[int, int]]]:
        """:meth:`ranges`, sorted (they already are)."""
        return sorted(self.ranges())

    def close(self) -> None:
        self._file.close()


__all__ = ["KdumpMemory"]
