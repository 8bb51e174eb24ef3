"""What a kernel virtual address belongs to, as a structured owner: ``rd``'s and ``search``'s annotations.

:func:`owner_of_va` answers for one virtual address (a word's value in
``rd``, a hit's location in ``search``) from the kernel's one classification
(:meth:`kmemdbg.kernel.Kernel.classify`): an image symbol, a module symbol, a
vmap area or a slab object; in vmemmap, the struct page (and so the frame) it is part of.  Addresses the kernel owns in no such way (user
addresses, vmemmap, holes, plain numbers) have no owner.

Addresses: ``va`` virtual; ``offset`` in bytes from the symbol or object start.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .errors import KmemdbgError

#: Region kinds whose addresses can belong to a symbol, module, vmap area, slab object or struct page.
OWNED_REGIONS = frozenset({"kernel-image", "module", "vmalloc", "linear", "percpu", "vmemmap"})
#: Kinds of :class:`WordOwner`.
SYMBOL, MODULE, VMAP_AREA, SLAB_OBJECT, IMAGE_SECTION, MEMORY, STRUCT_PAGE = (
    "symbol", "module", "vmap-area", "slab-object", "image-section", "memory", "struct-page")

_PS = re.compile(r"(?P<sym>[^+\s]+)\+0x(?P<off>[0-9a-f]+)(?:/0x[0-9a-f]+)?(?: \[(?P<mod>[^\]]+)\])?$")


@dataclass(frozen=True)
class WordOwner:
    """The owner of a virtual address.

    ``kind``: ``symbol`` (image), ``module``, ``vmap-area``, ``slab-object``,
    ``image-section`` (no symbol there), ``struct-page`` (an entry of the
    struct page array: ``name`` says its pfn) or ``memory`` (a kind of kernel
    memory with no finer owner: a stack, a per-cpu area, a page-allocator page).
    ``name``: the symbol, module, slab cache, vmap area's caller or purpose,
    or memory label.  ``symbol``/``offset``: the symbol (or object start) and
    the byte offset from it; ``module``: the module name when in one;
    ``text``: all of it on one line.
    """

    kind: str
    name: str
    symbol: Optional[str]
    offset: Optional[int]
    module: Optional[str]
    text: str


def parse_ps(text: str):
    """(symbol, offset, module) of a ``%pS`` text ``name+0xoff/0xsize [module]``, or None."""
    m = _PS.match(text.strip())
    if m is None:
        return None
    return m.group("sym"), int(m.group("off"), 16), m.group("mod")


def owner_of_va(kernel, va: int) -> Optional[WordOwner]:
    """The owner of kernel virtual ``va`` (see the module doc), or None.

    Never raises for an address: a part of the kernel's records that cannot
    be read gives no owner rather than an error.
    """
    try:
        region = kernel.layout.region_of(va)
    except KmemdbgError:
        return None
    if region.kind not in OWNED_REGIONS:
        return None
    if region.kind == "vmemmap":
        return _struct_page(kernel, va)
    try:
        alloc = kernel.classify(va).allocation
    except KmemdbgError:
        return None
    if alloc is None:
        return None
    if alloc.kind == "image-section":
        got = parse_ps(alloc.detail) if alloc.detail else None
        if got is None:
            off = va - alloc.start
            return WordOwner(IMAGE_SECTION, f"kernel {alloc.name}", None, off, None,
                             f"kernel {alloc.name}+0x{off:x}")
        sym, off, _mod = got
        return WordOwner(SYMBOL, sym, sym, off, None, alloc.detail)
    if alloc.kind == "module":
        section = alloc.flags[0] if alloc.flags else ""
        got = parse_ps(alloc.detail) if alloc.detail else None
        if got is not None and got[2]:
            sym, off, mod = got
            return WordOwner(MODULE, mod, sym, off, mod, alloc.detail)
        off = va - alloc.start
        return WordOwner(MODULE, alloc.name, None, off, alloc.name,
                         f"module {alloc.name} {section}+0x{off:x}".replace(" +", "+"))
    if alloc.kind == "vmap-area":
        off = va - alloc.start
        caller = alloc.caller or alloc.name
        flags = " ".join(alloc.flags)
        got = parse_ps(caller)
        mod = got[2] if got else None
        text = f"vmap area 0x{alloc.start:x}+0x{off:x} ({caller})" + (f" [{flags}]" if flags else "")
        return WordOwner(VMAP_AREA, caller, None, off, mod, text)
    if alloc.kind == "slab-object":
        off = va - alloc.start
        return WordOwner(SLAB_OBJECT, alloc.name, None, off, None, f"[{alloc.name}] 0x{alloc.start:x}+0x{off:x}")
    return None


def _struct_page(kernel, va: int) -> Optional[WordOwner]:
    """The struct page holding virtual ``va`` in the struct page array, when vmemmap maps it."""
    try:
        pages = kernel.struct_pages()
    except KmemdbgError:
        return None
    if pages.vmemmap_va is None or not pages.entry_bytes or va < pages.vmemmap_va:
        return None
    if kernel.walker.walk(va).fault is not None:
        return None                 # no struct page there: a value that only looks like one
    pfn, off = divmod(va - pages.vmemmap_va, pages.entry_bytes)
    pa = pfn * kernel.tables.format.page_size
    name = f"struct page of pfn 0x{pfn:x}"
    return WordOwner(STRUCT_PAGE, name, None, off, None, f"{name} (pa 0x{pa:x})+0x{off:x}")


__all__ = ["WordOwner", "owner_of_va", "parse_ps", "OWNED_REGIONS"]
