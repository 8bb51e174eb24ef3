"""Slab pages and objects, from ``struct page`` (VMCOREINFO) and ``struct slab`` (BTF).

A physical page is a slab page when its (head) ``struct page`` says so: in
6.9+ kernels the top byte of ``_mapcount`` holds the page type
(``NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)``), before that the ``PG_slab`` flag
(``NUMBER(PG_slab)``).  Tail pages of a compound slab point at their head
through ``compound_head | 1``.  ``struct slab`` overlays the head's struct
page; its ``slab_cache`` points at the ``struct kmem_cache`` whose ``name``
and ``size`` (the object stride, bytes) name and place the object.

Addresses: ``pa`` physical; ``*_va`` virtual.
"""
from __future__ import annotations

import struct
from typing import Dict, NamedTuple, Optional, Tuple

from .errors import KmemdbgError
from .linux.page import PageOffsets, page_type_is  # noqa: F401 - page_type_is re-exported
from .linux.slab import SlabMarks
from .records import new_record

_U64 = struct.Struct("<Q")     # a little-endian word of a struct page


class SlabObject(NamedTuple):
    """The slab object holding a physical address: cache name, object start (physical), stride."""

    cache: Optional[str]
    head_pa: int
    object_pa: Optional[int]
    object_size: Optional[int]


class Slabs:
    """Slab lookups for one kernel (see the module doc); answers are cached per head page."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        info = kernel.info
        pages = kernel.struct_pages()
        self.vmemmap, self.page_struct = pages.vmemmap_va, pages.entry_bytes
        self.page_size = kernel.tables.format.page_size
        offsets = PageOffsets.from_vmcoreinfo(info)
        self.mapcount_off = offsets.mapcount
        self.head_off = offsets.compound_head if offsets.compound_head is not None else 8
        self.marks = SlabMarks.from_vmcoreinfo(info)
        self._marks_slab = self.marks.bytes_test(self.mapcount_off)
        self._walker_read = kernel.walker.read
        self._caches: Dict[int, Tuple[Optional[str], Optional[int]]] = {}     # head pa -> (name, size)
        self._named: Dict[int, Tuple[Optional[str], Optional[int]]] = {}      # kmem_cache va -> (name, size)
        self._btf_offsets: Optional[Tuple[int, int, int]] = None
        objs = kernel.objects()
        if objs is not None:
            try:
                btf = objs.btf
                self._btf_offsets = (btf.offset("slab", "slab_cache"), btf.offset("kmem_cache", "name"),
                                     btf.offset("kmem_cache", "size"))
            except KmemdbgError:  # a slice's BTF subset may lack these types
                self._btf_offsets = None

    def _struct_page(self, pfn: int) -> Optional[bytes]:
        """Frame ``pfn``'s struct page (``page_struct`` bytes), None when it cannot be read.

        Read on its own each time: one compiled translation and a copy of its
        bytes, which costs less than keeping vmemmap pages when the frames
        asked about are scattered (a triage script's pointers are).  The
        walker's compiled read answers first; anything else (no compiled
        walk, a fault, bytes the source must read) goes through the
        kernel's own read.
        """
        if self.vmemmap is None:
            return None
        va, size = self.vmemmap + pfn * self.page_struct, self.page_struct
        try:
            got = self._walker_read(va, size)
            return got if type(got) is bytes else self.kernel.read(va, size)
        except KmemdbgError:
            return None

    def is_slab_pfn(self, pfn: int, raw: Optional[bytes] = None) -> bool:
        """Whether frame ``pfn``'s own struct page marks a slab (head) page
        (:func:`is_slab_page` on its ``flags`` word and, where VMCOREINFO places it,
        its ``_mapcount`` word)."""
        raw = raw if raw is not None else self._struct_page(pfn)
        return raw is not None and self._marks_slab(raw)

    def head_of(self, pa: int) -> Optional[int]:
        """Physical address of the head page of the slab holding ``pa``, or None."""
        got = self._head(pa)
        return got[0] if got is not None else None

    def _head(self, pa: int) -> Optional[Tuple[int, bytes]]:
        """(physical address, struct page bytes) of the head page of the slab holding ``pa``."""
        pfn = pa // self.page_size
        raw = self._struct_page(pfn)
        if raw is None:
            return None
        head = _U64.unpack_from(raw, self.head_off)[0]
        if head & 1 and self.vmemmap is not None:       # a tail page: compound_head | 1
            pfn = ((head - 1) - self.vmemmap) // self.page_struct
            raw = self._struct_page(pfn)
            if raw is None:
                return None
        return (pfn * self.page_size, raw) if self._marks_slab(raw) else None

    def cache_of(self, head_pa: int, raw: Optional[bytes] = None) -> Tuple[Optional[str], Optional[int]]:
        """(cache name, object size in bytes) of the slab whose head page is at ``head_pa``
        (``raw``: that head's struct page bytes, when the caller has read them); kept per head."""
        got = self._caches.get(head_pa)
        if got is None:
            got = self._caches[head_pa] = self._cache_named(head_pa, raw)
        return got

    def _cache_named(self, head_pa: int, raw: Optional[bytes]) -> Tuple[Optional[str], Optional[int]]:
        """:meth:`cache_of` without the per-head memo: from ``raw`` it costs one unpack and a
        lookup per cache, which is what the memo would cost."""
        if self._btf_offsets is None or self.vmemmap is None:
            return (None, None)
        off = self._btf_offsets[0]          # struct slab overlays the head's struct page
        if raw is not None and off + 8 <= len(raw):
            cache = _U64.unpack_from(raw, off)[0]
        else:
            slab_va = self.vmemmap + (head_pa // self.page_size) * self.page_struct
            try:
                cache = int.from_bytes(self.kernel.read(slab_va + off, 8), "little")
            except KmemdbgError:
                return (None, None)
        return self._named.get(cache) or self._name_of_cache(cache)

    def _name_of_cache(self, cache: int) -> Tuple[Optional[str], Optional[int]]:
        """(name, object size in bytes) of the ``struct kmem_cache`` at virtual ``cache``, read
        once per cache (every slab of a cache shares them)."""
        _, name_off, size_off = self._btf_offsets
        k = self.kernel
        name, size = None, None
        try:
            name_ptr = int.from_bytes(k.read(cache + name_off, 8), "little")
            size = int.from_bytes(k.read(cache + size_off, 4), "little") or None
            name = k.read(name_ptr, 64).split(b"\0", 1)[0].decode("ascii", "replace")
        except KmemdbgError:
            pass
        got = self._named[cache] = (name, size)
        return got

    def object_of(self, pa: int) -> Optional[SlabObject]:
        """The slab object holding physical ``pa``, or None when ``pa`` is not in a slab page."""
        got = self._head(pa)
        if got is None:
            return None
        head, raw = got
        name, size = self._cache_named(head, raw)     # per address: no per-head memo to grow
        start = head + (pa - head) // size * size if size else None
        return new_record(SlabObject, (name, head, start, size))


__all__ = ["SlabObject", "Slabs", "page_type_is"]
