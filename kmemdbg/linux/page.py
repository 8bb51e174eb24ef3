"""``struct page``: where the array is, how big an entry is, and its page-type word.

The array (``vmemmap``) holds one ``struct page`` of ``SIZE(page)`` bytes per
frame, so ``pfn_to_page(pfn) = vmemmap + pfn * SIZE(page)`` (virtual).  Its
base is found by the architecture (``Arch.vmemmap_base``-style rules, see
:meth:`kmemdbg.kernel.Kernel.struct_pages`).

The page-type word is the 32-bit ``_mapcount`` (``page_type``).  Kernels from
about 6.9 keep the type in the top byte (``PAGE_SLAB_MAPCOUNT_VALUE`` and
friends then have zero low 24 bits); before, a type was one cleared bit under
a 0xf0000000 base.  The value VMCOREINFO exports tells the two apart.  :func:`page_type_is` works on an ``int`` or on a numpy
``uint32`` array alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..vmcoreinfo import VmcoreInfo

#: ``sizeof(struct page)`` when VMCOREINFO does not say (64 bytes on 64-bit kernels).
DEFAULT_PAGE_STRUCT_BYTES = 64


@dataclass(frozen=True)
class PageOffsets:
    """Byte offsets of ``struct page`` members from VMCOREINFO (``OFFSET(page.*)``), None when absent."""

    flags: Optional[int]
    mapcount: Optional[int]
    compound_head: Optional[int]
    refcount: Optional[int]
    mapping: Optional[int]

    @classmethod
    def from_vmcoreinfo(cls, info: VmcoreInfo) -> "PageOffsets":
        return cls(page_offset(info, "flags"), page_offset(info, "_mapcount"),
                   page_offset(info, "compound_head"), page_offset(info, "_refcount"),
                   page_offset(info, "mapping"))


@dataclass(frozen=True)
class StructPages:
    """The ``struct page`` array: ``vmemmap_va`` virtual address of pfn 0's entry (None: unknown)
    and ``entry_bytes`` (``SIZE(page)``)."""

    vmemmap_va: Optional[int]
    entry_bytes: int

    def page_va(self, pfn: int) -> Optional[int]:
        """``pfn_to_page(pfn)``: virtual address of frame ``pfn``'s struct page, None when unknown."""
        return None if self.vmemmap_va is None else self.vmemmap_va + pfn * self.entry_bytes


def page_offset(info: VmcoreInfo, member: str) -> Optional[int]:
    """``OFFSET(page.<member>)`` in bytes, or None when VMCOREINFO lacks it."""
    text = info.text(f"OFFSET(page.{member})")
    return int(text) if text is not None and text.isdigit() else None


def page_struct_bytes(info: VmcoreInfo) -> int:
    """``SIZE(page)`` in bytes (DEFAULT_PAGE_STRUCT_BYTES when VMCOREINFO lacks it)."""
    text = info.text("SIZE(page)")
    return int(text) if text and text.isdigit() else DEFAULT_PAGE_STRUCT_BYTES


def page_type_is(page_type, value: int):
    """Does the 32-bit page-type word (``int`` or numpy ``uint32`` array) carry VMCOREINFO's
    type ``value`` (``PAGE_SLAB_MAPCOUNT_VALUE``, ``PAGE_BUDDY_MAPCOUNT_VALUE``...)?"""
    value &= 0xFFFFFFFF
    if value & 0x00FFFFFF == 0:
        return (page_type >> 24) == (value >> 24)
    cleared = ~value & 0xFFFFFFFF
    return ((page_type & 0xF0000000) == 0xF0000000) & ((page_type & cleared) == 0)


def page_flag(flags, bit: int):
    """Bit ``bit`` of ``page->flags`` (``int`` or numpy ``uint64`` array) is set."""
    return ((flags >> bit) & 1) == 1


__all__ = ["StructPages", "PageOffsets", "page_offset", "page_struct_bytes", "page_type_is", "page_flag",
           "DEFAULT_PAGE_STRUCT_BYTES"]
