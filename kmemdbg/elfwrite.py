"""Writing small ELF64 core files (the output of ``kmemdbg slice``).

The layout is what drgn and makedumpfile expect of a kdump vmcore: an ELF
header, program headers at offset 64 with no section headers, one PT_NOTE
holding the notes, then one PT_LOAD per run of physically contiguous kept
pages with ``p_paddr`` the physical address.
"""
from __future__ import annotations

import struct
from typing import Iterable, List, Tuple

from .outfile import write_output

PT_LOAD, PT_NOTE = 1, 4
PF_RWX = 7


def note_bytes(name: bytes, ntype: int, desc: bytes) -> bytes:
    """One ELF note: header, NUL-terminated name and descriptor, each padded to 4 bytes."""
    nm = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(nm), len(desc), ntype) + pad(nm) + pad(desc)


def runs(pages: Iterable[int], page_size: int) -> List[Tuple[int, int]]:
    """Coalesce page addresses into (start, length) runs."""
    out: List[Tuple[int, int]] = []
    for pa in sorted(set(pages)):
        if out and out[-1][0] + out[-1][1] == pa:
            out[-1] = (out[-1][0], out[-1][1] + page_size)
        else:
            out.append((pa, page_size))
    return out


def write_core(path: str, machine: int, notes: bytes, segments: List[Tuple[int, int, bytes]],
               inputs: Iterable[str] = ()) -> int:
    """Write an ELF core with ``notes`` and ``segments`` of (pa, va, data); returns its size.

    The file is written through :func:`kmemdbg.outfile.write_output`: a fresh
    temporary file renamed into place, so an interrupted write never leaves a
    truncated core behind and ``path`` is never one of ``inputs``.
    """
    phnum = 1 + len(segments)
    off = 64 + 56 * phnum
    header = bytearray(b"\x7fELF\x02\x01\x01" + b"\0" * 9)
    header += struct.pack("<HHIQQQIHHHHHH", 4, machine, 1, 0, 64, 0, 0, 64, 56, phnum, 0, 0, 0)
    phdrs = bytearray(struct.pack("<IIQQQQQQ", PT_NOTE, 0, off, 0, 0, len(notes), len(notes), 4))
    data_off = off + len(notes)
    data_off += -data_off % 4096
    body_offsets = []
    for pa, va, data in segments:
        body_offsets.append(data_off)
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, PF_RWX, data_off, va, pa, len(data), len(data), 0)
        data_off += len(data)

    def write(f) -> None:
        f.write(header)
        f.write(phdrs)
        f.write(notes)
        for (_pa, _va, data), body in zip(segments, body_offsets):
            f.seek(body)
            f.write(data)

    return write_output(path, write, inputs)


__all__ = ["note_bytes", "runs", "write_core"]
