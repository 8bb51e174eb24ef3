"""The protocol the :mod:`kmemdbg.linux` helpers read kernel memory through."""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Protocol, Tuple

from ..errors import KmemdbgError

#: ``read(va, size) -> bytes``: ``size`` bytes at kernel virtual ``va``; raises KmemdbgError.
ReadVirt = Callable[[int, int], bytes]


class Reader(Protocol):
    """What a helper needs: virtual reads (through the kernel's own page tables)."""

    def read(self, va: int, size: int) -> bytes:
        """``size`` bytes at kernel virtual ``va``; raises KmemdbgError when unmapped or unreadable."""
        ...


def read_uint(read: ReadVirt, va: int, size: int) -> int:
    """The little-endian unsigned integer of ``size`` bytes at virtual ``va`` (raises KmemdbgError)."""
    return int.from_bytes(read(va, size), "little")


def try_read_uint(read: ReadVirt, va: int, size: int):
    """:func:`read_uint`, or None when the bytes cannot be read (no evidence, not an error)."""
    try:
        return read_uint(read, va, size)
    except KmemdbgError:
        return None



class TypedReader(Protocol):
    """A :class:`Reader` that also knows symbols and BTF types (:class:`kmemdbg.kobjects.KernelObjects`).

    Every method raises a :class:`~kmemdbg.linux.errors.KobjectsError` kind
    or BtfError, as one line naming what was being read (``what``).
    """

    session: object
    btf: object

    def read(self, va: int, size: int) -> bytes: ...

    def symbol(self, name: str) -> Optional[int]:
        """A kernel symbol's virtual address, or None."""
        ...

    def need_symbol(self, name: str, why: str) -> int:
        """A kernel symbol's virtual address; raises MissingSymbolError naming ``why``."""
        ...

    def field(self, struct_name: str, path: str) -> Tuple[int, int]:
        """(byte offset, size in bytes) of member ``path`` (``a.b[2].c``) of ``struct_name``."""
        ...

    def checked_read(self, va: int, size: int, what: str) -> bytes: ...

    def u64(self, va: int, what: str) -> int: ...

    def struct(self, struct_name: str, va: int, what: str) -> "StructView":
        """The whole ``struct_name`` at virtual ``va``."""
        ...

    def list_nodes(self, head_va: int, what: str) -> Iterator[int]: ...

    def rbtree_nodes(self, root_node_va: int, what: str) -> Iterator[int]: ...


class StructView:
    """The bytes of one struct read at virtual ``va``, with members by BTF path."""

    __slots__ = ("reader", "struct", "data", "va")

    def __init__(self, reader: TypedReader, struct: str, data: bytes, va: int) -> None:
        self.reader, self.struct, self.data, self.va = reader, struct, data, va

    def u(self, path: str) -> int:
        """The unsigned value of member ``path`` (at most its first 8 bytes)."""
        off, size = self.reader.field(self.struct, path)
        return int.from_bytes(self.data[off:off + min(size, 8)], "little")

__all__ = ["Reader", "ReadVirt", "TypedReader", "StructView", "read_uint", "try_read_uint"]
