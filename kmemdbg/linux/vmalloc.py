"""vmap areas (``struct vmap_area`` with its ``struct vm_struct``): reading them, and lookups.

Which collections exist is decided by evidence in the dump (a symbol, a
struct member), never by the version number:

- ``vmap_nodes``/``nr_vmap_nodes`` and ``struct vmap_node``: Linux kernel
  commit d093602919ad ("mm: vmalloc: remove global vmap_area_root rb-tree")
  (in v6.9) split the busy tree per node; each node has ``busy`` and
  ``lazy`` (``struct rb_list``: root, sorted list head, lock).
- ``vmap_area_list`` (sorted list) and ``vmap_area_root`` (rb-tree) before
  that; unpurged areas on ``purge_vmap_area_list``.

The readers take a :class:`~kmemdbg.linux.reader.TypedReader` (usually
:class:`kmemdbg.kobjects.KernelObjects`).  Addresses are kernel virtual
unless named ``pa``/``phys_addr``; sizes in bytes.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .errors import CorruptStructureError, MissingSymbolError
from .reader import TypedReader

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
    the virtual address of the ``struct page *`` array.  ``vm_flags`` is the
    raw ``vm_struct.flags`` word (None without a ``vm_struct``).
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
    vm_flags: Optional[int] = None

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


@dataclass(frozen=True)
class AreaCollection:
    """One collection of vmap areas: ``state`` "busy" or "lazy", ``how`` "list" (``head_va`` a
    ``struct list_head *``) or "tree" (``head_va`` a ``struct rb_root *``), ``desc`` its name."""

    state: str
    how: str
    head_va: int
    desc: str


def area_collections(r: TypedReader, unavailable: List[str]) -> List[AreaCollection]:
    """Every collection of vmap areas the kernel keeps (see the module doc for which, by evidence).

    A lazily-freed collection that cannot be found is named in
    ``unavailable``; no busy one raises MissingSymbolError.
    """
    out: List[AreaCollection] = []
    btf = r.btf
    nodes_sym = r.symbol("vmap_nodes")
    if nodes_sym is not None and btf.has_struct("vmap_node"):
        base = r.u64(nodes_sym, "vmap_nodes pointer")
        nr_sym = r.need_symbol("nr_vmap_nodes", "number of vmap nodes")
        nr = int.from_bytes(r.checked_read(nr_sym, 4, "nr_vmap_nodes"), "little")
        if not 0 < nr <= 4096:
            raise CorruptStructureError(f"nr_vmap_nodes is {nr}")
        node_size = btf.sizeof("vmap_node")
        for i in range(nr):
            node = base + i * node_size
            for state, member in (("busy", "busy"), ("lazy", "lazy")):
                if btf.has_member("vmap_node", f"{member}.head"):
                    out.append(AreaCollection(state, "list", node + btf.offset("vmap_node", f"{member}.head"),
                                              f"vmap_nodes[{i}].{member}.head"))
                else:
                    out.append(AreaCollection(state, "tree", node + btf.offset("vmap_node", f"{member}.root"),
                                              f"vmap_nodes[{i}].{member}.root"))
        return out
    for state, lst, root in (("busy", "vmap_area_list", "vmap_area_root"),
                             ("lazy", "purge_vmap_area_list", "purge_vmap_area_root")):
        va = r.symbol(lst)
        if va is not None:
            out.append(AreaCollection(state, "list", va, lst))
            continue
        va = r.symbol(root)
        if va is not None:
            out.append(AreaCollection(state, "tree", va, root))
            continue
        if state == "busy":
            raise MissingSymbolError("no vmap area collection: none of vmap_nodes, vmap_area_list, "
                                     "vmap_area_root is in VMCOREINFO or kallsyms")
        unavailable.append(f"{state} vmap areas: neither {lst} nor {root} is in VMCOREINFO or kallsyms")
    return out


def read_raw_areas(r: TypedReader, unavailable: List[str]) -> List[VmapArea]:
    """Every vmap area of every collection, as read (callers not yet named, unsorted).

    Raises MissingSymbolError, CorruptStructureError, BtfError.
    """
    btf = r.btf
    list_off = btf.offset("vmap_area", "list")
    rb_off = btf.offset("vmap_area", "rb_node")
    has_flags = btf.has_member("vmap_area", "flags")
    out: List[VmapArea] = []
    for c in area_collections(r, unavailable):
        if c.how == "list":
            nodes = [n - list_off for n in r.list_nodes(c.head_va, c.desc)]
        else:
            root = r.u64(c.head_va, c.desc)
            nodes = [n - rb_off for n in r.rbtree_nodes(root, c.desc)]
        for area_va in nodes:
            out.append(read_area(r, area_va, c.state, has_flags, c.desc))
    return out


def read_area(r: TypedReader, area_va: int, state: str, has_flags: bool, desc: str) -> VmapArea:
    """The ``struct vmap_area`` at virtual ``area_va`` (and its ``vm_struct``) as vmallocinfo shows it.

    ``state`` is "busy" or "lazy"; ``has_flags`` whether ``vmap_area.flags``
    exists.  Raises CorruptStructureError naming ``desc``.
    """
    a = r.struct("vmap_area", area_va, f"{desc}: vmap_area")
    va_start, va_end = a.u("va_start"), a.u("va_end")
    if va_end <= va_start:
        raise CorruptStructureError(f"{desc}: vmap_area at 0x{area_va:016x} has start 0x{va_start:x} "
                                    f">= end 0x{va_end:x}")
    if state == "lazy":
        return VmapArea(va_start, va_end, va_end - va_start, ("unpurged", "vm_area"), None, None, 0,
                        None, None, va_start, va_end, area_va, None, state)
    vm_va = a.u("vm")
    if not vm_va:
        # /proc/vmallocinfo: an area with no vm_struct is vm_map_ram's when the kernel has no
        # vmap_area.flags, else only when VMAP_RAM is set (other such areas are not shown)
        ram = not has_flags or bool(a.u("flags") & VMAP_RAM)
        return VmapArea(va_start, va_end, va_end - va_start, ("vm_map_ram",) if ram else (), None,
                        None, 0, None, None, va_start, va_end, area_va, None, state,
                        "vm_map_ram" if ram else None)
    vm = r.struct("vm_struct", vm_va, f"{desc}: vm_struct of vmap_area 0x{area_va:016x}")
    start, size, flags = vm.u("addr"), vm.u("size"), vm.u("flags")
    words = tuple(w for bit, w in VM_FLAG_WORDS if flags & bit)
    return VmapArea(start, start + size, size, words, vm.u("caller") or None, None, vm.u("nr_pages"),
                    vm.u("phys_addr") or None, vm.u("pages") or None, va_start, va_end, area_va,
                    vm_va, state, vm_flags=flags)


def guard_range(area: VmapArea, page_size: int) -> Optional[Tuple[int, int]]:
    """The virtual ``[start, end)`` of the area's guard page, or None when it has none.

    ``vm_struct.size`` counts one guard page after the pages unless
    ``VM_NO_GUARD`` is set (``get_vm_area_size()`` in include/linux/vmalloc.h);
    an area without a ``vm_struct`` (vm_map_ram, lazily freed) has no
    recorded guard.  ``page_size`` is the kernel's base page size in bytes.
    """
    if area.vm_flags is None or area.vm_flags & VM_NO_GUARD or area.size < page_size:
        return None
    return area.end - page_size, area.end


def find_area(areas: Sequence[VmapArea], starts: Sequence[int], va: int) -> Optional[VmapArea]:
    """The area of ``areas`` (sorted by start; ``starts`` their starts) whose [start, end) holds
    virtual ``va``, a busy one before a lazily freed one; None when no area holds it."""
    i = bisect.bisect_right(starts, va)
    # Areas do not overlap, except a lazily freed one with a busy successor, so the holders
    # are among the last few starting at or below va, and at most one of them is busy.
    # From the nearest down: a busy holder at once, else the lowest lazily freed holder.
    lo = i - 4 if i > 4 else 0
    first = None
    while i > lo:
        i -= 1
        a = areas[i]
        if va < a.end:              # a.start <= va: bisect
            if a.state == "busy":
                return a
            first = a
    return first


__all__ = ["VmapArea", "AreaCollection", "area_collections", "read_raw_areas", "read_area", "area_purpose", "find_area", "guard_range", "VM_FLAG_WORDS", "VMAP_RAM",
           "VM_IOREMAP", "VM_ALLOC", "VM_MAP", "VM_USERMAP", "VM_DMA_COHERENT", "VM_SPARSE",
           "VM_UNINITIALIZED", "VM_NO_GUARD"]
