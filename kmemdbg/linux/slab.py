"""The one test of a slab page, on one ``struct page`` or on a numpy array of them.

A frame is a slab page when its (head) ``struct page`` says so: the page
type ``PAGE_SLAB_MAPCOUNT_VALUE`` in ``_mapcount`` (newer kernels, which have
no ``PG_slab`` flag), or the ``PG_slab`` bit of ``page->flags`` before.  VMCOREINFO exports whichever
the kernel has.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Optional

from ..vmcoreinfo import VmcoreInfo
from .page import page_flag, page_type_is


@dataclass(frozen=True)
class SlabMarks:
    """How this kernel marks a slab page: ``NUMBER(PG_slab)`` and ``NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)``."""

    pg_slab: Optional[int]
    slab_value: Optional[int]

    @classmethod
    def from_vmcoreinfo(cls, info: VmcoreInfo) -> "SlabMarks":
        return cls(info.number("PG_slab"), info.number("PAGE_SLAB_MAPCOUNT_VALUE"))

    @property
    def known(self) -> bool:
        """Whether VMCOREINFO says how slab pages are marked at all."""
        return self.pg_slab is not None or self.slab_value is not None

    def bytes_test(self, mapcount_off: Optional[int]) -> Callable[[bytes], bool]:
        """:func:`is_slab_page` on one ``struct page``'s bytes, its constants worked out once.

        The returned ``test(raw)`` reads ``page->flags`` as the little-endian
        64-bit word at byte 0 and the 32-bit ``_mapcount`` at byte
        ``mapcount_off`` (None: unknown, the page type is not looked at).  A
        per-address path calls it, so it is one expression, not three calls.
        """
        flag = 1 << self.pg_slab if self.pg_slab is not None else 0
        u64, u32 = struct.Struct("<Q").unpack_from, struct.Struct("<I").unpack_from
        if mapcount_off is None or self.slab_value is None:
            return lambda raw: bool(u64(raw, 0)[0] & flag)
        # page_type_is as one masked compare: (word & mask) == want
        value = self.slab_value & 0xFFFFFFFF
        if value & 0x00FFFFFF == 0:
            mask, want = 0xFF000000, value & 0xFF000000
        elif value & 0xF0000000 == 0xF0000000:
            mask, want = 0xF0000000 | (~value & 0xFFFFFFFF), 0xF0000000
        else:           # the type asks a top-nibble bit to be both set and clear: never
            mask, want = 0, 1
        off = mapcount_off
        if not flag:
            return lambda raw: (u32(raw, off)[0] & mask) == want
        return lambda raw: bool(u64(raw, 0)[0] & flag) or (u32(raw, off)[0] & mask) == want


def is_slab_page(marks: SlabMarks, flags, page_type):
    """Whether a ``struct page`` with ``flags`` (``page->flags``) and ``page_type`` (the 32-bit
    ``_mapcount`` word, None when unknown) is a slab page.  Works on ints (-> bool) and on
    numpy arrays (-> bool array) alike.

        >>> is_slab_page(SlabMarks.from_vmcoreinfo(k.info), flags, page_type)
        True
    """
    slab = False
    if marks.pg_slab is not None:
        slab = page_flag(flags, marks.pg_slab)
    if page_type is not None and marks.slab_value is not None:
        slab = slab | page_type_is(page_type, marks.slab_value)
    return slab


__all__ = ["SlabMarks", "is_slab_page"]
