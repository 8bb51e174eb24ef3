"""vmap areas (``struct vmap_area`` with its ``struct vm_struct``) as values, and lookups over them.

The areas are read by :class:`kmemdbg.kobjects.KernelObjects` (which knows
where each kernel version keeps them); this module holds what they are and
the pure questions asked of a sorted list of them.  Addresses are kernel
virtual unless named ``pa``/``phys_addr``; sizes in bytes.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

# include/linux/vmalloc.h: vm_struct.flags bits, in the order /proc/vmallocinfo prints them.
# Stable since v5.x; VM_SPARSE was added in v6.9 (an older kernel never sets the bit).
VM_IOREMAP, VM_ALLOC, VM_MAP, VM_USERMAP, VM_DMA_COHERENT, VM_SPARSE = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x1000)
VM_FLAG_WORDS = ((VM_IOREMAP, "ioremap"), (VM_SPARSE, "sparse"), (VM_ALLOC, "vmalloc"),
                 (VM_MAP, "vmap"), (VM_USERMAP, "user"), (VM_DMA_COHERENT, "dma-coherent"))
# vmap_area.flags (exists once the member does): the area was made by vm_map_ram().
VMAP_RAM = 0x1
# vm_struct.flags: the area has no guard page / is still being set up (include/linux/vmalloc.h).
VM_UNINITIALIZED, VM_NO_GUARD = 0x20, 0x40


@dataclass(frozen=True)
class VmapArea:
    """One vmap area as ``/proc/vmallocinfo`` shows it.

    ``start``/``end`` (exclusive) are virtual and, when the area has a
    ``vm_struct``, are ``vm->addr`` and ``vm->addr + vm->size`` (the size
    includes the guard page, as vmallocinfo prints it); otherwise the
    ``vmap_area`` range.  ``flags`` are vmallocinfo's words (``vmalloc``,
    ``ioremap``, ``vm_map_ram``, ``unpurged``/``vm_area`` for lazily freed
    areas...).  ``caller_name`` is formatted as ``%pS`` does
    (``name+0xoff/0xsize`` with `` [module]`` for module code).  ``purpose``
    is kmemdbg's guess from the caller (``module``, ``stack``, ``bpf``...),
    not a kernel field.  ``phys_addr`` is physical (ioremap), ``pages_va``
    the virtual address of the ``struct page *`` array.
    """

    start: int
    end: int
    size: int
    flags: Tuple[str, ...]
    caller: Optional[int]
    caller_name: Optional[str]
    nr_pages: int
    phys_addr: Optional[int]
    pages_va: Optional[int]
    va_start: int
    va_end: int
    vmap_area_va: int
    vm_struct_va: Optional[int]
    state: str                  # "busy" or "lazy" (freed, awaiting purge)
    purpose: Optional[str] = None

    def contains(self, va: int) -> bool:
        return self.start <= va < self.end


def area_purpose(caller: Optional[str], flags: Tuple[str, ...]) -> Optional[str]:
    """kmemdbg's guess of what an area is for, from its caller's name (not a kernel field)."""
    name = (caller or "").split("+", 1)[0]
    if "ioremap" in flags:
        return "ioremap"
    if name in ("load_module", "module_alloc", "move_module") or name.startswith(("module_", "execmem")):
        return "module"
    if "stack" in name or name in ("scs_alloc", "dup_task_struct"):
        return "stack"
    if name.startswith(("bpf_", "__bpf")):
        return "bpf"
    return None


def busy_contains(busy: Sequence[VmapArea], va: int) -> bool:
    """``is_vmalloc_addr()`` of virtual ``va`` against ``busy`` (busy areas sorted by start)."""
    i = bisect.bisect_right([b.start for b in busy], va) - 1
    return i >= 0 and busy[i].start <= va < busy[i].end


def find_area(areas: Sequence[VmapArea], starts: Sequence[int], va: int) -> Optional[VmapArea]:
    """The area of ``areas`` (sorted by start; ``starts`` their starts) whose [start, end) holds
    virtual ``va``, a busy one before a lazily freed one; None when no area holds it."""
    i = bisect.bisect_right(starts, va)
    # areas do not overlap, except a lazily freed one with a busy successor
    hits = [a for a in areas[max(0, i - 4):i] if a.contains(va)]
    hits.sort(key=lambda a: a.state != "busy")
    return hits[0] if hits else None


__all__ = ["VmapArea", "area_purpose", "busy_contains", "find_area", "VM_FLAG_WORDS", "VMAP_RAM",
           "VM_IOREMAP", "VM_ALLOC", "VM_MAP", "VM_USERMAP", "VM_DMA_COHERENT", "VM_SPARSE",
           "VM_UNINITIALIZED", "VM_NO_GUARD"]
