"""Walkers of ``struct list_head`` lists and ``struct rb_root`` trees.

Each yields the virtual address of the embedded node (``struct list_head *``
or ``struct rb_node *``); the caller subtracts the member's offset to get the
containing object, as ``list_entry()``/``rb_entry()`` do.  Member offsets
come from BTF and are passed in, so the walkers need no type source.
"""
from __future__ import annotations

from typing import Iterator, List, Set, Tuple

from ..errors import KmemdbgError
from .errors import CorruptStructureError
from .reader import ReadVirt

#: Hard bound on the entries of any list or tree walk.
MAX_LIST_ENTRIES = 1 << 20


def checked_read(read: ReadVirt, va: int, size: int, what: str) -> bytes:
    """``size`` bytes at virtual ``va``; a failure is a CorruptStructureError naming ``what``."""
    try:
        return read(va, size)
    except KmemdbgError as err:
        raise CorruptStructureError(f"{what} at 0x{va:016x}: cannot read {size} bytes: {err}") from None


def list_for_each(read: ReadVirt, head_va: int, next_off: int, prev_off: int, what: str) -> Iterator[int]:
    """Yield each ``struct list_head *`` of the list whose head is at virtual ``head_va``.

    Every entry's ``prev`` must point back at the one before (as
    ``CONFIG_DEBUG_LIST`` checks); a cycle that misses the head, a wrong
    back-link, an unreadable entry or more than MAX_LIST_ENTRIES entries
    raise CorruptStructureError naming ``what``.

        >>> [n - off for n in list_for_each(k.read, modules_va, 0, 8, "modules")]
    """
    seen: Set[int] = set()
    prev = head_va
    node = int.from_bytes(checked_read(read, head_va + next_off, 8, f"{what}: list head"), "little")
    count = 0
    while node != head_va:
        count += 1
        if count > MAX_LIST_ENTRIES:
            raise CorruptStructureError(f"{what}: more than {MAX_LIST_ENTRIES} entries (a cycle?)")
        if node in seen:
            raise CorruptStructureError(f"{what}: entry {count} at 0x{node:016x} comes round again "
                                        f"without reaching the head 0x{head_va:016x}")
        seen.add(node)
        raw = checked_read(read, node, 16, f"{what}: entry {count}")
        back = int.from_bytes(raw[prev_off:prev_off + 8], "little")
        if back != prev:
            raise CorruptStructureError(f"{what}: entry {count} at 0x{node:016x} has prev 0x{back:016x}, "
                                        f"expected 0x{prev:016x}")
        yield node
        prev, node = node, int.from_bytes(raw[next_off:next_off + 8], "little")


def rbtree_inorder(read: ReadVirt, root_node_va: int, left_off: int, right_off: int, node_size: int,
                   what: str) -> Iterator[int]:
    """Yield each ``struct rb_node *`` of the tree under ``root_node_va`` (``rb_root.rb_node``),
    smallest key first.  A node reached twice, an unreadable node or more than
    MAX_LIST_ENTRIES nodes raise CorruptStructureError naming ``what``.

        >>> [n - rb_off for n in rbtree_inorder(k.read, root, 8, 16, 24, "vmap_area_root")]
    """
    seen: Set[int] = set()
    stack: List[Tuple[int, int]] = []
    node = root_node_va
    while stack or node:
        while node:
            if node in seen or len(seen) >= MAX_LIST_ENTRIES:
                raise CorruptStructureError(f"{what}: node 0x{node:016x} reached twice or tree too large")
            seen.add(node)
            raw = checked_read(read, node, node_size, f"{what}: rb_node")
            stack.append((node, int.from_bytes(raw[right_off:right_off + 8], "little")))
            node = int.from_bytes(raw[left_off:left_off + 8], "little")
        node, right = stack.pop()
        yield node
        node = right


def hlist_for_each(read: ReadVirt, head_va: int, what: str, limit: int = MAX_LIST_ENTRIES) -> Iterator[int]:
    """Yield each ``struct hlist_node *`` of the ``struct hlist_head`` at virtual ``head_va``
    (``first``, then ``next`` at offset 0 of each node, to NULL).  A node reached twice or more
    than ``limit`` nodes raise CorruptStructureError naming ``what``."""
    seen: Set[int] = set()
    node = int.from_bytes(checked_read(read, head_va, 8, f"{what}: hlist head"), "little")
    while node:
        if node in seen or len(seen) >= limit:
            raise CorruptStructureError(f"{what}: node 0x{node:016x} reached twice or list too long")
        seen.add(node)
        yield node
        node = int.from_bytes(checked_read(read, node, 8, f"{what}: hlist node"), "little")


__all__ = ["list_for_each", "hlist_for_each", "rbtree_inorder", "checked_read", "MAX_LIST_ENTRIES"]
