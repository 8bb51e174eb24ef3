"""A task's memory map: the ``struct vm_area_struct`` values of a ``struct mm_struct``.

Which structure holds the VMAs is decided by evidence in BTF, not by the
version number:

- ``mm_struct.mm_mt``: a maple tree indexed by address, Linux kernel commit
  d4af56c5c7c6 ("mm: start tracking VMAs with maple tree") (in v6.1), which
  also removed the ``mm->mmap`` list;
- ``mm_struct.mmap``: the sorted ``vm_next`` list of older kernels.

Maple tree facts used (``include/linux/maple_tree.h``, ``lib/maple_tree.c``):
an entry whose low two bits are ``10`` and that is above 4096 is a node
pointer; the node is at ``entry & ~0xff`` and its type is
``(entry >> 3) & 0xf`` (dense, leaf_64, range_64, arange_64).  A range or
leaf node's slot ``i`` covers ``[pivot[i-1] + 1, pivot[i]]`` inside the
node's ``[min, max]``; the last slot (which has no pivot) ends at ``max``,
and a slot whose pivot reaches ``max`` is the node's last.  Pivot and slot
counts and offsets come from BTF (``struct maple_range_64``,
``struct maple_arange_64``).  A leaf's internal entries (``XA_ZERO_ENTRY``
while a fork copies the tree) are not VMAs and are skipped.

Addresses are user virtual unless named otherwise; ``*_va`` fields holding
kernel pointers are kernel virtual.  Sizes in bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import KmemdbgError
from .errors import CorruptStructureError
from .reader import TypedReader

MAPLE_NODE_MASK = 0xFF
MAPLE_TYPE_SHIFT, MAPLE_TYPE_MASK = 3, 0xF
MAPLE_DENSE, MAPLE_LEAF_64, MAPLE_RANGE_64, MAPLE_ARANGE_64 = range(4)
ULONG_MAX = (1 << 64) - 1
#: Hard bounds of a walk: tree height, VMAs of one mm, path components of a file name.
MAX_HEIGHT, MAX_VMAS, MAX_PATH_PARTS = 32, 1 << 20, 64

# include/linux/mm.h: vm_flags bits, unchanged since v5.x (the low word; arch bits aside).
VM_FLAG_NAMES = ((0x1, "read"), (0x2, "write"), (0x4, "exec"), (0x8, "shared"), (0x10, "mayread"),
                 (0x20, "maywrite"), (0x40, "mayexec"), (0x80, "mayshare"), (0x100, "growsdown"),
                 (0x400, "pfnmap"), (0x2000, "locked"), (0x4000, "io"), (0x20000, "dontcopy"),
                 (0x40000, "dontexpand"), (0x100000, "account"), (0x200000, "noreserve"),
                 (0x400000, "hugetlb"), (0x4000000, "dontdump"), (0x8000000, "softdirty"),
                 (0x10000000, "mixedmap"), (0x20000000, "hugepage"), (0x40000000, "nohugepage"),
                 (0x80000000, "mergeable"))
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8


@dataclass(frozen=True)
class Vma:
    """One VMA: user virtual ``[start, end)``, raw ``flags`` (``vm_flags``), ``pgoff``
    (file offset in pages), the mapped file's ``path`` (None for anonymous memory),
    ``label`` (``[heap]``/``[stack]`` as ``/proc/PID/maps`` marks them, else "") and
    ``vma_va`` (kernel virtual ``struct vm_area_struct *``)."""

    start: int
    end: int
    flags: int
    pgoff: int
    path: Optional[str]
    label: str
    vma_va: int

    @property
    def flag_names(self) -> Tuple[str, ...]:
        return vm_flag_names(self.flags)

    @property
    def perms(self) -> str:
        """``rwxp`` / ``rwxs`` as ``/proc/PID/maps`` prints them."""
        f = self.flags
        return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + \
            ("x" if f & VM_EXEC else "-") + ("s" if f & VM_SHARED else "p")


def vm_flag_names(flags: int) -> Tuple[str, ...]:
    """The names of the known bits set in ``flags``, then ``0x...`` for any bits left over."""
    out = [name for bit, name in VM_FLAG_NAMES if flags & bit]
    rest = flags & ~sum(bit for bit, _ in VM_FLAG_NAMES)
    if rest:
        out.append(f"0x{rest:x}")
    return tuple(out)


def _is_node(entry: int) -> bool:
    return entry & 3 == 2 and entry > 4096


class MapleReader:
    """Reads maple trees through a :class:`~kmemdbg.linux.reader.TypedReader` (offsets from BTF)."""

    def __init__(self, objs: TypedReader) -> None:
        self.objs = objs
        btf = objs.btf  # type: ignore[attr-defined]
        self.node_size = btf.sizeof("maple_node")
        self.layout: Dict[int, Tuple[int, int, int, int]] = {}  # type -> pivot off, count, slot off, count
        for kind, struct in ((MAPLE_LEAF_64, "maple_range_64"), (MAPLE_RANGE_64, "maple_range_64"),
                             (MAPLE_ARANGE_64, "maple_arange_64")):
            piv = btf.member_path(struct, "pivot")
            slot = btf.member_path(struct, "slot")
            self.layout[kind] = (piv.offset, btf.resolve(piv.type).count, slot.offset,
                                 btf.resolve(slot.type).count)
        dense = btf.member_path("maple_node", "slot")
        self.layout[MAPLE_DENSE] = (0, 0, dense.offset, btf.resolve(dense.type).count)

    def entries(self, root: int, what: str) -> Iterator[Tuple[int, int, int]]:
        """Yield ``(first, last, entry)`` of every non-empty leaf entry of the tree whose
        ``ma_root`` is ``root``, in index order (``last`` inclusive).
        Raises CorruptStructureError naming ``what``."""
        if root == 0:
            return
        if not _is_node(root):
            yield 0, 0, root    # a tree holding only index 0 keeps the entry in the root
            return
        yield from self._node(root, 0, ULONG_MAX, 0, what)

    def _node(self, entry: int, lo: int, hi: int, depth: int, what: str) -> Iterator[Tuple[int, int, int]]:
        if depth > MAX_HEIGHT:
            raise CorruptStructureError(f"{what}: maple tree deeper than {MAX_HEIGHT} levels (a cycle?)")
        node = entry & ~MAPLE_NODE_MASK
        kind = (entry >> MAPLE_TYPE_SHIFT) & MAPLE_TYPE_MASK
        if kind not in self.layout:
            raise CorruptStructureError(f"{what}: maple node 0x{node:x} has unknown type {kind}")
        data = self.objs.checked_read(node, self.node_size, f"{what}: maple node")
        piv_off, npiv, slot_off, nslot = self.layout[kind]

        def word(off: int) -> int:
            return int.from_bytes(data[off:off + 8], "little")
        if kind == MAPLE_DENSE:
            for i in range(nslot):
                e = word(slot_off + 8 * i)
                if e and not _is_node(e) and lo + i <= hi:
                    yield lo + i, lo + i, e
            return
        leaf = kind == MAPLE_LEAF_64
        first = lo
        for i in range(nslot):
            last = word(piv_off + 8 * i) if i < npiv else hi
            if i > 0 and last == 0 or last < first or last > hi:
                break   # the unused pivots after the node's data are 0
            e = word(slot_off + 8 * i)
            if e:
                if leaf:
                    if e & 3 != 2:     # internal entries (XA_ZERO_ENTRY) hold no VMA
                        yield first, last, e
                elif _is_node(e):
                    yield from self._node(e, first, last, depth + 1, what)
                else:
                    raise CorruptStructureError(f"{what}: maple node 0x{node:x} slot {i} holds 0x{e:x}, "
                                                "not a node")
            if last >= hi:
                break
            first = last + 1


def _cstring(objs: TypedReader, va: int, limit: int = 256) -> str:
    raw = objs.checked_read(va, limit, "a name")
    return raw.split(b"\0")[0].decode("utf-8", "replace")


def file_path(objs: TypedReader, file_va: int) -> str:
    """The path of ``struct file *file_va`` as ``d_path()`` gives it from the root of its
    mount namespace (dentry names up to each mount's root, then up the mount's mountpoint).
    Raises KmemdbgError when a dentry or mount cannot be read."""
    btf = objs.btf  # type: ignore[attr-defined]
    dentry = objs.u64(file_va + btf.offset("file", "f_path.dentry"), "file.f_path.dentry")
    mnt = objs.u64(file_va + btf.offset("file", "f_path.mnt"), "file.f_path.mnt")
    name_off = btf.offset("dentry", "d_name.name")
    parent_off = btf.offset("dentry", "d_parent")
    mounts = btf.has_struct("mount") and btf.has_member("mount", "mnt_mountpoint")
    parts: List[str] = []
    for _ in range(4 * MAX_PATH_PARTS):
        root = objs.u64(mnt + btf.offset("vfsmount", "mnt_root"), "vfsmount.mnt_root") if mnt else 0
        parent = objs.u64(dentry + parent_off, "dentry.d_parent")
        if dentry == root or parent == dentry:
            if not mounts or not mnt:
                break
            mount = mnt - btf.offset("mount", "mnt")
            up = objs.u64(mount + btf.offset("mount", "mnt_parent"), "mount.mnt_parent")
            if up == mount:
                break
            dentry = objs.u64(mount + btf.offset("mount", "mnt_mountpoint"), "mount.mnt_mountpoint")
            mnt = up + btf.offset("mount", "mnt")
            continue
        parts.append(_cstring(objs, objs.u64(dentry + name_off, "dentry.d_name.name")))
        if len(parts) > MAX_PATH_PARTS:
            raise CorruptStructureError(f"file 0x{file_va:x}: path deeper than {MAX_PATH_PARTS}")
        dentry = parent
    return "/" + "/".join(reversed(parts))


def vma_addresses(objs: TypedReader, mm_va: int) -> List[int]:
    """Kernel virtual ``struct vm_area_struct *`` of every VMA of ``mm_va``, by address.
    Raises KmemdbgError (one line) when neither a maple tree nor a VMA list is in BTF."""
    btf = objs.btf  # type: ignore[attr-defined]
    what = f"VMAs of mm 0x{mm_va:x}"
    if btf.has_member("mm_struct", "mm_mt"):
        root = objs.u64(mm_va + btf.offset("mm_struct", "mm_mt.ma_root"), "mm_struct.mm_mt.ma_root")
        out = []
        for _first, _last, entry in MapleReader(objs).entries(root, what):
            out.append(entry)
            if len(out) > MAX_VMAS:
                raise CorruptStructureError(f"{what}: more than {MAX_VMAS}")
        return out
    if btf.has_member("mm_struct", "mmap") and btf.has_member("vm_area_struct", "vm_next"):
        out, seen = [], set()
        node = objs.u64(mm_va + btf.offset("mm_struct", "mmap"), "mm_struct.mmap")
        nxt = btf.offset("vm_area_struct", "vm_next")
        while node and node not in seen and len(out) <= MAX_VMAS:
            seen.add(node)
            out.append(node)
            node = objs.u64(node + nxt, "vm_area_struct.vm_next")
        return out
    raise KmemdbgError("mm_struct has neither mm_mt (maple tree) nor mmap (VMA list) in BTF")


def read_vmas(objs: TypedReader, mm_va: int) -> List[Vma]:
    """Every VMA of ``struct mm_struct *mm_va`` in address order (see the module doc).
    Raises KmemdbgError (one line) when the tree, a VMA or a file name cannot be read."""
    btf = objs.btf  # type: ignore[attr-defined]
    f = {m: objs.field("vm_area_struct", m) for m in ("vm_start", "vm_end", "vm_flags", "vm_pgoff", "vm_file")}

    def mm_word(member: str) -> Optional[int]:
        if not btf.has_member("mm_struct", member):
            return None
        return objs.u64(mm_va + btf.offset("mm_struct", member), f"mm_struct.{member}")
    start_brk, brk, start_stack = mm_word("start_brk"), mm_word("brk"), mm_word("start_stack")
    out = []
    for vma in vma_addresses(objs, mm_va):
        def get(member: str) -> int:
            off, size = f[member]
            return int.from_bytes(objs.checked_read(vma + off, size, f"vm_area_struct.{member}"), "little")
        start, end, file_va = get("vm_start"), get("vm_end"), get("vm_file")
        label = ""
        if not file_va:
            # fs/proc/task_mmu.c's tests for the two it names from mm fields
            if start_brk is not None and brk is not None and start <= brk and end >= start_brk:
                label = "[heap]"
            elif start_stack is not None and start <= start_stack <= end:
                label = "[stack]"
        out.append(Vma(start, end, get("vm_flags"), get("vm_pgoff"),
                       file_path(objs, file_va) if file_va else None, label, vma))
    return out


__all__ = ["Vma", "MapleReader", "read_vmas", "vma_addresses", "file_path", "vm_flag_names", "VM_FLAG_NAMES"]
