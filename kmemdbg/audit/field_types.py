"""What C type a word of kernel memory has, when BTF can know it.

A slab object of a cache named after a structure (``vm_area_struct``,
``task_struct``, ``sighand_cache`` holding ``struct sighand_struct``...)
has that structure's type; the member at a byte offset then says whether
the word is a physical address (``phys_addr_t``, ``dma_addr_t``,
``resource_size_t``), a pointer, a field known to hold a virtual address,
or some other integer.  That is evidence the misuse rule weighs: a value in
a pointer or user-address field is not a stored ``virt_to_phys()`` result,
whatever it equals numerically.

Offsets are bytes from the start of the object.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..errors import KmemdbgError

PHYS_TYPEDEFS = frozenset({"phys_addr_t", "dma_addr_t", "resource_size_t"})
#: Caches whose objects are a structure of another name (mm/, kernel/fork.c, fs/).
CACHE_STRUCTS = {
    "sighand_cache": "sighand_struct", "signal_cache": "signal_struct", "files_cache": "files_struct",
    "fs_cache": "fs_struct", "cred_jar": "cred", "filp": "file", "radix_tree_node": "xa_node",
    "kernfs_node_cache": "kernfs_node", "sock_inode_cache": "socket_alloc", "pid": "pid",
    "mm_struct": "mm_struct", "vm_area_struct": "vm_area_struct", "task_struct": "task_struct",
    "anon_vma": "anon_vma", "anon_vma_chain": "anon_vma_chain", "vmap_area": "vmap_area",
    "buffer_head": "buffer_head", "dentry": "dentry", "nsproxy": "nsproxy",
}
#: Integer members that hold virtual addresses (user or kernel), by outermost structure.
VA_FIELDS = {
    "vm_area_struct": frozenset({"vm_start", "vm_end"}),
    "mm_struct": frozenset({"mmap_base", "mmap_legacy_base", "task_size", "start_code", "end_code",
                            "start_data", "end_data", "start_brk", "brk", "start_stack", "arg_start",
                            "arg_end", "env_start", "env_end", "highest_vm_end"}),
    "vmap_area": frozenset({"va_start", "va_end", "subtree_max_size"}),
}

PHYS, POINTER, VIRTUAL, INTEGER = "phys", "pointer", "virtual-address", "integer"


@dataclass(frozen=True)
class FieldType:
    """``path`` (``action[3].sa.sa_handler``) in ``struct``, its C type name, and its ``category``:
    ``phys``, ``pointer`` (``pointee`` names the struct pointed at), ``virtual-address`` or ``integer``."""

    struct: str
    path: str
    type_name: str
    category: str
    pointee: Optional[str] = None

    def describe(self) -> str:
        where = f"member {self.path}" if self.path else "the variable"
        return f"{self.struct} {where} ({self.type_name})"


class FieldTyper:
    """Types words of slab objects by their cache's structure; answers are memoised."""

    def __init__(self, btf) -> None:
        self.btf = btf
        self._structs: Dict[Tuple[str, Optional[int]], Optional[object]] = {}
        self._memo: Dict[Tuple[str, int], Optional[FieldType]] = {}

    def struct_of_cache(self, cache: Optional[str], object_size: Optional[int]):
        """The BTF struct of ``cache``'s objects, or None (kmalloc-N and unknown caches)."""
        if not cache:
            return None
        key = (cache, object_size)
        if key not in self._structs:
            name = CACHE_STRUCTS.get(cache, cache)
            self._structs[key] = self._named(name, object_size) if self.btf.has_struct(name) else None
        return self._structs[key]

    def field_at(self, cache: Optional[str], object_size: Optional[int], offset: int) -> Optional[FieldType]:
        """The type of the 8-byte word at ``offset`` of an object of ``cache``, or None."""
        return self._field(self.struct_of_cache(cache, object_size), offset)

    def field_of_struct(self, struct: str, object_size: Optional[int], offset: int) -> Optional[FieldType]:
        """The type of the word at ``offset`` of a ``struct`` (e.g. a per-cpu variable's type)."""
        return self._field(self._named(struct, object_size), offset)

    def field_of_percpu(self, offset: int) -> Optional[FieldType]:
        """The type of the word at byte ``offset`` of a CPU's per-cpu unit, when a static
        per-cpu variable (a BTF VAR of DATASEC ``.data..percpu``) holds it."""
        vars_ = self.btf.datasec_vars(".data..percpu")
        i = bisect.bisect_right([v[0] for v in vars_], offset) - 1 if vars_ else -1
        if i < 0 or not offset < vars_[i][0] + vars_[i][1]:
            return None
        start, _size, name, vtype = vars_[i]
        key = ("\0percpu " + name, offset - start)
        if key not in self._memo:
            try:
                self._memo[key] = _descend(self.btf, vtype, name, offset - start, "")
            except KmemdbgError:
                self._memo[key] = None
        return self._memo[key]

    def _named(self, name: str, object_size: Optional[int]):
        try:
            t = self.btf.struct(name)
            return None if object_size and self.btf.sizeof(t) > object_size else t
        except KmemdbgError:
            return None

    def _field(self, t, offset: int) -> Optional[FieldType]:
        if t is None:
            return None
        key = (t.name, offset)
        if key not in self._memo:
            try:
                self._memo[key] = _descend(self.btf, t, t.name, offset, "")
            except KmemdbgError:
                self._memo[key] = None
        return self._memo[key]


def _descend(btf, t, top: str, offset: int, path: str) -> Optional[FieldType]:
    chain = []
    while t.kind in ("typedef", "const", "volatile", "restrict", "type_tag"):
        if t.kind == "typedef":
            chain.append(t.name)
        t = t.ref
    if any(name in PHYS_TYPEDEFS for name in chain):
        return FieldType(top, path, chain[0], PHYS)
    if t.kind == "ptr":
        target = t.ref.resolved()
        return FieldType(top, path, (chain[0] if chain else "pointer"), POINTER,
                         target.name if target.kind in ("struct", "union") else None)
    if t.kind == "array":
        elem = t.element
        size = btf.sizeof(elem)
        if not size or offset >= size * t.count:
            return None
        return _descend(btf, elem, top, offset % size, f"{path}[{offset // size}]")
    if t.kind in ("struct", "union"):
        best = None
        for m in t.members:
            if m.bit_size:
                continue
            try:
                msize = btf.sizeof(m.type)
            except KmemdbgError:
                continue
            if not m.offset <= offset < m.offset + msize:
                continue
            sub = _descend(btf, m.type, top, offset - m.offset, f"{path}.{m.name}" if path else m.name)
            if sub is None:
                continue
            # by the outermost struct: 6.12 puts vm_start/vm_end in an anonymous struct
            if m.name in VA_FIELDS.get(top, ()) and sub.category == INTEGER:
                sub = FieldType(top, sub.path, sub.type_name, VIRTUAL)
            # in a union, a phys member wins (the word may be that), else a pointer reading
            if best is None or _rank(sub) > _rank(best):
                best = sub
        return best
    if t.kind in ("int", "enum", "enum64"):
        return FieldType(top, path, chain[0] if chain else (t.name or t.kind), INTEGER)
    return None


def _rank(f: FieldType) -> int:
    return {PHYS: 3, INTEGER: 2, VIRTUAL: 1, POINTER: 0}[f.category]


__all__ = ["FieldType", "FieldTyper", "PHYS", "POINTER", "VIRTUAL", "INTEGER", "CACHE_STRUCTS", "VA_FIELDS"]
