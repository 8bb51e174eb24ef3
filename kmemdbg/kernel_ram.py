"""Where RAM is, from the kernel itself: for sources that carry no RAM map.

A dump file's program headers say which physical ranges it holds; a live
QEMU guest over QMP, a gdbstub or a slice say nothing (or too little).  The
kernel keeps its own map: the ``iomem_resource`` tree, whose top-level
children named ``System RAM`` are what ``/proc/iomem`` prints, and
``max_pfn``, the end of RAM in frames.  Types come from BTF
(``struct resource``: ``start``, ``end`` inclusive, ``name``, ``sibling``).

All addresses are physical except the ``*_va`` pointers read from memory.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from .errors import KmemdbgError

#: A bound on the resource siblings walked (a corrupt list must not spin).
MAX_RESOURCES = 4096


def system_ram(kernel) -> Tuple[List[Tuple[int, int]], str]:
    """(physical ``[start, end)`` ranges of System RAM, where they came from).

    Raises KmemdbgError naming what is missing when the tree cannot be read.
    """
    objs = kernel.objects()
    if objs is None:
        raise KmemdbgError("no type information for struct resource")
    root = kernel.symbols.address("iomem_resource")
    if root is None:
        raise KmemdbgError("no symbol iomem_resource")
    btf = objs.btf
    try:
        o_start, o_end = btf.offset("resource", "start"), btf.offset("resource", "end")
        o_name, o_sib = btf.offset("resource", "name"), btf.offset("resource", "sibling")
        o_child = btf.offset("resource", "child")
    except KmemdbgError as err:
        raise KmemdbgError(f"struct resource layout unknown: {err}") from None

    def word(va: int) -> int:
        return int.from_bytes(kernel.read(va, 8), "little")

    out: List[Tuple[int, int]] = []
    node = word(root + o_child)
    seen = set()
    while node and len(seen) < MAX_RESOURCES:
        if node in seen:
            raise KmemdbgError(f"iomem_resource list loops at 0x{node:x}")
        seen.add(node)
        name_va = word(node + o_name)
        name = kernel.read(name_va, 16).split(b"\0", 1)[0] if name_va else b""
        if name == b"System RAM":
            start, end = word(node + o_start), word(node + o_end)
            if end >= start:
                out.append((start, end + 1))
        node = word(node + o_sib)
    if not out:
        raise KmemdbgError("iomem_resource has no System RAM entry")
    return sorted(out), "the kernel's iomem_resource tree (System RAM)"


def max_pfn_end(kernel, page_size: int) -> Optional[int]:
    """Physical end of RAM from the kernel's ``max_pfn`` (bytes), or None."""
    sym = kernel.symbols.address("max_pfn")
    if sym is None:
        return None
    try:
        value = int.from_bytes(kernel.read(sym, 8), "little")
    except KmemdbgError:
        return None
    return value * page_size if 0 < value < 1 << 52 else None


__all__ = ["system_ram", "max_pfn_end", "MAX_RESOURCES"]
