"""``rd``: words of kernel virtual, physical or user memory, each 64-bit word with its owner.

:func:`read_words` reads ``count`` units of ``width`` bytes from ``start``
page by page: kernel virtual addresses through the kernel's tables, user
addresses through a task's tables (``Kernel.user_walker``), physical ones
straight from the memory source.  It stops at the first page that cannot
be read and says which (a :class:`ReadStop`); what came before is kept.
Each 8-byte word's value is annotated with what it points at
(:func:`kmemdbg.annotate.owner_of_va`), as crash's ``rd -s`` does.

Addresses: ``start``/``address`` in the dump's space (``space``: virtual,
physical or user); values little-endian unsigned integers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from .annotate import WordOwner, owner_of_va
from .errors import AddressError, KmemdbgError

VIRTUAL, PHYSICAL, USER = "virtual", "physical", "user"
WIDTHS = (1, 2, 4, 8)
#: Bytes one rd may ask for.
MAX_RD_BYTES = 1 << 20
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Word:
    """One unit read: its ``address`` (in the dump's space), its ``value`` and, for 8-byte
    words, the owner of the value read as a kernel virtual address (or None)."""

    address: int
    value: int
    owner: Optional[WordOwner]


@dataclass(frozen=True)
class ReadStop:
    """Where reading stopped: the first unreadable page's ``address`` (page-aligned, in the
    dump's space) and ``reason`` (the fault or read error, one line)."""

    address: int
    reason: str


@dataclass(frozen=True)
class MemDump:
    """``words`` read from ``start`` (``space`` virtual, physical or user, of task ``pid``),
    ``width`` bytes each; ``count`` were asked for; ``data`` the raw bytes read;
    ``stop`` where reading stopped early (None when all were read)."""

    space: str
    start: int
    width: int
    count: int
    words: Tuple[Word, ...]
    data: bytes
    stop: Optional[ReadStop]
    pid: Optional[int] = None

    @property
    def complete(self) -> bool:
        return self.stop is None


def _page_reader(kernel, space: str, pid: Optional[int]) -> Tuple[Callable[[int, int], bytes], int]:
    """(read(address, n) of bytes inside one page, page size) for ``space``."""
    page = kernel.tables.format.page_size
    mem = kernel.memory
    if space == PHYSICAL:
        return mem.read, page
    walker = kernel.user_walker(pid=pid) if space == USER else kernel.walker

    def read(address: int, n: int) -> bytes:
        walk = walker.walk(address)
        if walk.fault is not None:
            raise AddressError(walk.fault.message(address))
        return mem.read(walk.pa, n)
    return read, page


def read_words(kernel, start: int, count: int = 1, width: int = 8, space: str = VIRTUAL,
               pid: Optional[int] = None, annotate: bool = True) -> MemDump:
    """``count`` units of ``width`` bytes (1, 2, 4 or 8) from ``start`` in ``space``.

    ``pid`` names the task whose user tables ``space == "user"`` reads.
    Raises AddressError for a bad width, count or range, and KmemdbgError
    (one line, naming the page) when not even the first unit can be read.
    """
    if width not in WIDTHS:
        raise AddressError(f"width {width}: give 1, 2, 4 or 8 bytes")
    if not 1 <= count or count * width > MAX_RD_BYTES:
        raise AddressError(f"count {count}: give 1 to {MAX_RD_BYTES // width} units of {width} bytes")
    if space not in (VIRTUAL, PHYSICAL, USER):
        raise AddressError(f"unknown address space {space!r}")
    if space == USER and pid is None:
        raise AddressError("a user address needs --pid")
    size = count * width
    if start + size - 1 > MASK64:
        raise AddressError(f"0x{start:x}: {size} bytes from here run past the end of the address space")
    read, page = _page_reader(kernel, space, pid)
    data = bytearray()
    stop = None
    cur = start
    while cur < start + size:
        n = min(page - cur % page, start + size - cur)
        try:
            data += read(cur, n)
        except KmemdbgError as err:
            stop = ReadStop(cur - cur % page, _line(err))
            break
        cur += n
    usable = len(data) - len(data) % width
    if usable == 0:
        where = f"pid {pid} " if space == USER else ""
        raise KmemdbgError(f"{where}{space} 0x{start:x}: nothing readable: {stop.reason if stop else 'short read'}")
    words: List[Word] = []
    for off in range(0, usable, width):
        value = int.from_bytes(data[off:off + width], "little")
        owner = owner_of_va(kernel, value) if annotate and width == 8 and value else None
        words.append(Word(start + off, value, owner))
    return MemDump(space, start, width, count, tuple(words), bytes(data[:usable]), stop,
                   pid if space == USER else None)


def _line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


__all__ = ["read_words", "MemDump", "Word", "ReadStop", "VIRTUAL", "PHYSICAL", "USER", "MAX_RD_BYTES"]
