"""Rendering ``page`` and ``vmap`` results (:mod:`kmemdbg.pageinfo`, :mod:`kmemdbg.vmapinfo`).

Text fits 80 columns, addresses as ``0x%016x``; JSON items are plain dicts
with lowercase ``"0x..."`` addresses (schemas ``kmemdbg/schemas/page.json``
and ``vmap.json``).  The library never prints: commands call these.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .render import addr, hexa, mapping_json, size_text, wrap


# -- page -------------------------------------------------------------------------------------
def _kind_words(info) -> str:
    words = []
    for kind in info.kinds:
        if kind == "slab":
            words.append(f"slab ({info.slab_cache})" if info.slab_cache else "slab")
        elif kind == "buddy":
            order = f", order {info.buddy_order}" if info.buddy_order is not None else ""
            words.append(f"free (buddy{order})")
        elif kind == "page-table":
            words.append(f"page table ({info.table_level})" if info.table_level else "page table")
        elif kind in ("compound-head", "compound-tail"):
            order = f" order {info.compound_order}" if info.compound_order is not None else ""
            words.append(kind.replace("compound-", "compound ") + order)
        else:
            words.append(kind)
    return ", ".join(words)


def page_line(info) -> str:
    """One line for vtop: the frame's struct page, pfn and what it is."""
    what = (_kind_words(info) or f"refcount {_num(info.refcount)}") if info.readable else "not readable here"
    where = addr(info.page_va) if info.page_va is not None else "unknown"
    return f"struct page {where}  pfn 0x{info.pfn:x}  {what}".rstrip()


def page_text(info) -> List[str]:
    """The ``page`` text block of one frame."""
    f = info.frame
    where = addr(info.page_va) if info.page_va is not None else "(vmemmap base unknown)"
    lines = [f"struct page {where}  pfn 0x{info.pfn:x}  pa {addr(info.pa)}"]
    lines += wrap(f"given: {f.given} 0x{f.value:x}, {f.how}", "  ", "    ")
    if info.readable:
        names = "|".join(info.flag_names) or "none"
        lines += wrap(f"flags: 0x{info.flags:x} = {names}", "  ", "    ")
        lines += wrap(f"(flag names from {info.flag_source})", "    ", "    ")
        counts = f"refcount {_num(info.refcount)}  mapcount {_num(info.mapcount)}"
        if info.page_type is not None:
            counts += f"  page type {info.page_type} (word 0x{info.type_word:08x})"
        lines.append(f"  {counts}")
        idle = "unreferenced (refcount 0: free, or inside a free block)" if info.refcount == 0 else \
            "in use (no type, no mapping)"
        lines += wrap(f"is: {_kind_words(info) or idle}", "  ", "    ")
        if "compound-tail" in info.kinds and info.compound_head_va is not None:
            lines.append(f"  head page: struct page {addr(info.compound_head_va)}")
        if info.mapping_va is not None:
            lines.append(f"  mapping: {addr(info.mapping_va)}")
    elif info.table_level is not None:
        lines.append(f"  is: page table ({info.table_level})")
    if info.mappings:
        lines.append(f"  mapped at {len(info.mappings)} kernel virtual address"
                     f"{'es' if len(info.mappings) != 1 else ''}:")
        for m in info.mappings:
            a = m.allocation
            owner = "" if a is None else f"; {a.kind} {a.name}" + (f" from {a.caller}" if a.caller else "")
            lines += wrap(f"{addr(m.va)}  {size_text(m.page_size)} {m.level}  {m.region.kind} "
                          f"({m.region.name}){owner}", "    ", "      ")
    else:
        lines.append("  mapped at no kernel virtual address")
    for note in info.notes:
        lines += wrap(f"note: {note}", "  ", "    ")
    return lines


def _num(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def page_json(info, with_mappings: bool = True) -> Dict[str, Any]:
    """The ``page`` item of one frame (``with_mappings`` False: vtop's ``page`` member)."""
    f = info.frame
    out = {"given": {"kind": f.given, "value": hexa(f.value), "how": f.how},
           "pfn": info.pfn, "pa": hexa(info.pa), "page": hexa(info.page_va), "readable": info.readable,
           "flags": hexa(info.flags), "flag_names": list(info.flag_names), "flag_source": info.flag_source,
           "refcount": info.refcount, "mapcount": info.mapcount, "type_word": hexa(info.type_word),
           "page_type": info.page_type, "type_source": info.type_source, "kinds": list(info.kinds),
           "compound": (None if info.compound_head_va is None else
                        {"head": hexa(info.compound_head_va), "order": info.compound_order}),
           "slab_cache": info.slab_cache, "buddy_order": info.buddy_order,
           "mapping": hexa(info.mapping_va), "table_level": info.table_level, "notes": list(info.notes)}
    if with_mappings:
        out["mappings"] = [mapping_json(m) for m in info.mappings]
        out["mappings_complete"] = info.mappings_complete
    return out


# -- vmap -------------------------------------------------------------------------------------
VMAP_HEADER = f"{'start':<18} {'end':<18} {'size':>9} {'pages':>6} {'guard':<6} flags"


def _guard_word(entry) -> str:
    if entry.guard is None:
        return "none"
    return "MAPPED" if entry.guard_mapped else "yes"


def vmap_text(listing, page_size: int) -> List[str]:
    """The ``vmap`` table: one line per area (flags and caller wrapped under it when long)."""
    lines: List[str] = []
    if listing.query_va is not None:
        e = listing.entries[0]
        a = e.area
        lines += wrap(f"{addr(listing.query_va)} is {listing.query_va - a.start:#x} bytes into the vmap "
                      f"area {addr(a.start)}-{addr(a.end)}", "", "  ")
        if listing.in_guard:
            lines.append("  it is in the area's guard page (never mapped)")
    lines.append(VMAP_HEADER)
    for e in listing.entries:
        a = e.area
        pages = str(a.nr_pages) if a.vm_struct_va is not None else "-"
        head = f"{addr(a.start)} {addr(a.end)} {a.size:>9} {pages:>6} {_guard_word(e):<6}"
        lines += wrap(head + " ".join(a.flags), "", " " * 62)
        if a.caller_name:
            lines += wrap(f"caller {a.caller_name}", "    ", "      ")
        if listing.query_va is not None:
            lines += _area_detail(e, page_size)
    for u in listing.unavailable:
        lines += wrap(f"note: {u}", "", "  ")
    return lines


def _area_detail(entry, page_size: int) -> List[str]:
    a = entry.area
    out = [f"  state {a.state}  vmap_area {addr(a.vmap_area_va)}  vm_struct {addr(a.vm_struct_va)}"]
    if a.pages_va is not None:
        out.append(f"  pages array {addr(a.pages_va)}")
    if a.phys_addr is not None:
        out.append(f"  phys_addr {addr(a.phys_addr)}")
    if entry.guard is not None:
        state = "MAPPED (it should never be)" if entry.guard_mapped else "not mapped"
        out.append(f"  guard page {addr(entry.guard[0])}-{addr(entry.guard[1])}: {state}")
    if a.purpose:
        out.append(f"  purpose (kmemdbg's guess from the caller): {a.purpose}")
    return out


def vmap_json(entry, query_va: Optional[int] = None, in_guard: bool = False) -> Dict[str, Any]:
    """The ``vmap`` item of one area (``query_va``: the address asked about, if any)."""
    a = entry.area
    return {"start": hexa(a.start), "end": hexa(a.end), "size": a.size,
            "pages": a.nr_pages if a.vm_struct_va is not None else None,
            "caller": a.caller_name, "flags": list(a.flags), "state": a.state,
            "vm_flags": hexa(a.vm_flags), "phys_addr": hexa(a.phys_addr), "pages_array": hexa(a.pages_va),
            "vmap_area": hexa(a.vmap_area_va), "vm_struct": hexa(a.vm_struct_va), "purpose": a.purpose,
            "guard": (None if entry.guard is None else
                      {"start": hexa(entry.guard[0]), "end": hexa(entry.guard[1]), "mapped": entry.guard_mapped}),
            "query": (None if query_va is None else
                      {"va": hexa(query_va), "offset": query_va - a.start, "in_guard": in_guard})}


__all__ = ["page_text", "page_line", "page_json", "vmap_text", "vmap_json", "VMAP_HEADER"]
