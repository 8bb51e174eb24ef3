"""The one test of a slab page, on one ``struct page`` or on a numpy array of them.

A frame is a slab page when its (head) ``struct page`` says so: the page
type ``PAGE_SLAB_MAPCOUNT_VALUE`` in ``_mapcount`` (newer kernels, which have
no ``PG_slab`` flag), or the ``PG_slab`` bit of ``page->flags`` before.  VMCOREINFO exports whichever
the kernel has.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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
