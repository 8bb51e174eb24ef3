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

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

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


_PG_NUMBER = re.compile(r"NUMBER\(PG_([a-z0-9_]+?)(_mask)?\)")
_TYPE_NUMBER = re.compile(r"NUMBER\(PAGE_([A-Z0-9_]+)_MAPCOUNT_VALUE\)")


@dataclass(frozen=True)
class PageFlagNames:
    """Names of the ``page->flags`` bits: ``bits`` are (bit number, name without ``PG_``),
    one name per bit; ``nr_flags`` is ``__NR_PAGEFLAGS`` (None when unknown: then only
    the named bits are decoded); ``source`` says where the names came from."""

    bits: Tuple[Tuple[int, str], ...]
    nr_flags: Optional[int]
    source: str

    def decode(self, flags: int) -> Tuple[str, ...]:
        """The names of the set bits of ``flags`` below ``nr_flags``, lowest bit first."""
        limit = self.nr_flags if self.nr_flags is not None else 64
        return tuple(name for bit, name in self.bits if bit < limit and flags >> bit & 1)

    def bit(self, name: str) -> Optional[int]:
        """The bit number of flag ``name`` (without ``PG_``), or None when not known here."""
        for bit, n in self.bits:
            if n == name:
                return bit
        return None

    @property
    def mask(self) -> Optional[int]:
        """``(1 << __NR_PAGEFLAGS) - 1``: the bits of ``page->flags`` that are flags (None: unknown)."""
        return None if self.nr_flags is None else (1 << self.nr_flags) - 1


def page_flag_names(info: VmcoreInfo, btf=None) -> PageFlagNames:
    """The flag names of this kernel: the BTF ``enum pageflags`` when ``btf`` has it (every
    flag; an alias such as ``PG_swapcache`` for ``PG_owner_priv_1`` is left out, the
    first name of a bit wins), else the ``NUMBER(PG_*)`` VMCOREINFO exports (a few flags
    only; ``PG_head_mask`` gives ``head``)."""
    enum = btf.find("pageflags", ("enum", "enum64")) if btf is not None else None
    if enum is not None and enum.enumerators:
        values = enum.enumerators
        nr = values.get("__NR_PAGEFLAGS")
        seen: Dict[int, str] = {}
        for name, bit in values.items():
            if name.startswith("PG_") and 0 <= bit < 64 and (nr is None or bit < nr):
                seen.setdefault(bit, name[3:])
        return PageFlagNames(tuple(sorted(seen.items())), nr, "the kernel's BTF enum pageflags")
    found: Dict[int, str] = {}
    for key in info.raw:
        m = _PG_NUMBER.fullmatch(key)
        if m is None:
            continue
        value = info.number(key[7:-1])
        if value is None or value < 0:
            continue
        bit = value.bit_length() - 1 if m.group(2) else value
        if 0 <= bit < 64 and (not m.group(2) or value == 1 << bit):
            found.setdefault(bit, m.group(1))
    if not found:
        return PageFlagNames((), None, "no flag names: neither BTF enum pageflags nor NUMBER(PG_*) in VMCOREINFO")
    return PageFlagNames(tuple(sorted(found.items())), None,
                         "VMCOREINFO NUMBER(PG_*) (only the flags it exports; no BTF enum pageflags)")


@dataclass(frozen=True)
class PageTypeNames:
    """The page types of this kernel: (name, 32-bit ``_mapcount``/``page_type`` word) pairs
    as :func:`page_type_is` tests them, and where they came from."""

    values: Tuple[Tuple[str, int], ...]
    source: str

    def type_of(self, word: int) -> Optional[str]:
        """The name of the type the page-type word carries, or None."""
        for name, value in self.values:
            if page_type_is(word, value):
                return name
        return None

    def value(self, name: str) -> Optional[int]:
        """The page-type word of type ``name``, or None when this kernel names no such type."""
        for n, v in self.values:
            if n == name:
                return v
        return None

    @property
    def one_type_scheme(self) -> bool:
        """Whether the type is the word's top byte (the values have zero low 24 bits) rather
        than one cleared bit under a 0xf0000000 base."""
        return any(v & 0x00FFFFFF == 0 for _, v in self.values)

    def has_type(self, word: int) -> bool:
        """Whether the 32-bit ``_mapcount`` word holds a page type rather than a mapcount.

        One-type scheme: top byte 0xf0..0xfe (``page_type_has_type()``: below
        ``PGTY_mapcount_underflow << 24``).  Before it: a value below
        ``PAGE_MAPCOUNT_RESERVE`` (-128) as a signed word.
        """
        if self.one_type_scheme:
            return 0xF0 <= (word >> 24) < 0xFF
        return (word - (1 << 32) if word & 0x80000000 else word) < -128


def page_type_names(info: VmcoreInfo, btf=None) -> PageTypeNames:
    """The BTF ``enum pagetype`` (``PGTY_*``: newer kernels keep one type in the top byte of
    the word, the enum holding that byte) when ``btf`` has it, else VMCOREINFO's ``NUMBER(PAGE_*_MAPCOUNT_VALUE)`` (buddy, offline, slab,
    hugetlb, as this kernel exports them)."""
    enum = btf.find("pagetype", ("enum", "enum64")) if btf is not None else None
    if enum is not None and enum.enumerators:
        rows = tuple((name[5:], (v & 0xFF) << 24) for name, v in enum.enumerators.items()
                     if name.startswith("PGTY_") and name != "PGTY_mapcount_underflow")
        if rows:
            return PageTypeNames(rows, "the kernel's BTF enum pagetype")
    rows = []
    for key in info.raw:
        m = _TYPE_NUMBER.fullmatch(key)
        value = info.number(key[7:-1]) if m else None
        if value is not None:
            rows.append((m.group(1).lower(), value & 0xFFFFFFFF))
    return PageTypeNames(tuple(rows), "VMCOREINFO NUMBER(PAGE_*_MAPCOUNT_VALUE)" if rows else
                         "no page type names in BTF or VMCOREINFO")



__all__ = ["StructPages", "PageOffsets", "PageFlagNames", "PageTypeNames", "page_flag_names",
           "page_type_names", "page_offset", "page_struct_bytes", "page_type_is", "page_flag",
           "DEFAULT_PAGE_STRUCT_BYTES"]
