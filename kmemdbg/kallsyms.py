"""The kernel's own symbol table (kallsyms), read from memory with no drgn and no debug info.

Used where drgn is absent (gdb's embedded Python).  VMCOREINFO carries the
addresses of the tables since Linux 6.0 (Linux kernel commit 5fd8fea935a1
("vmcoreinfo: include kallsyms symbols") (in v6.0)).  Formats, from the
kernel's ``scripts/kallsyms.c`` and ``kernel/kallsyms.c`` of 6.1 and 6.12:

- ``kallsyms_num_syms``: the symbol count, an ``unsigned int``.
- ``kallsyms_names``: one record per symbol, in address order: a length
  byte, then that many token indices.  A length with bit 7 set takes a
  second byte: ``(b0 & 0x7f) | (b1 << 7)`` (Linux kernel commit 73bbb94466fd
  ("kallsyms: support "big" kernel symbols") (in v6.1)).  The first
  character of the expanded name is the type letter (``t``, ``T``, ``d``...).
- ``kallsyms_token_table``: 256 NUL-terminated strings;
  ``kallsyms_token_index``: 256 ``u16`` offsets of each token in that table.
- ``kallsyms_offsets`` (``int`` per symbol) with ``kallsyms_relative_base``:
  ``address = relative_base + (u32)offset``; or, with
  ``CONFIG_KALLSYMS_ABSOLUTE_PERCPU`` (x86-64 SMP kernels before 6.15), a
  non-negative offset is an absolute value and a negative one means
  ``relative_base - 1 - offset``.  Which rule applies is decided by
  evidence: the one that puts ``_stext`` where VMCOREINFO says it is.
  Kernels without base-relative kallsyms have ``kallsyms_addresses``
  (``unsigned long`` per symbol) instead.

All addresses are kernel virtual addresses.
"""
from __future__ import annotations

import bisect
from array import array
from typing import Callable, Dict, List, Optional, Tuple

from .errors import KmemdbgError
from .vmcoreinfo import VmcoreInfo
from .walk_accel import PURE_REQUESTED

ReadVirt = Callable[[int, int], bytes]

MAX_SYMBOLS = 1 << 21        # a sanity bound: Debian's 6.12 vmlinux has ~190k
CHUNK_BYTES = 64 << 10       # kallsyms_names is read in pieces of this size
MAX_SYMBOL_BYTES = 0x10000   # a larger gap between symbols ends a section
SCANNED_LOOKUPS = 32         # name lookups answered by a scan before a dict of names is built


#: the kallsyms tables that can follow kallsyms_names in the image (what bounds it)
_TABLES_AFTER_NAMES = ("kallsyms_token_table", "kallsyms_token_index", "kallsyms_offsets",
                       "kallsyms_relative_base", "kallsyms_addresses", "kallsyms_num_syms")
MAX_NAMES_BYTES = 64 << 20   # kallsyms_names is read in one piece only up to this size

try:
    from . import _kallsymsc
except ImportError:          # built without a C compiler: the Python decoder does it all
    _kallsymsc = None

#: Whether kallsyms_names is expanded by the compiled module: built, and not
#: ``walk_accel.PURE_REQUESTED``.  Tests set it to False for the reference.
COMPILED = _kallsymsc is not None and not PURE_REQUESTED


class KallsymsError(KmemdbgError):
    """The kallsyms tables are missing from VMCOREINFO or do not decode."""


def _chunk(read: ReadVirt, va: int) -> bytes:
    """The next CHUNK_BYTES of kallsyms_names at virtual ``va``, or, when that runs into
    memory the source lacks (a slice keeps only the pages the tables fill), up to the next
    4 KiB boundary."""
    try:
        more = read(va, CHUNK_BYTES)
    except KmemdbgError:
        more = read(va, 4096 - va % 4096)
    if not more:
        raise KallsymsError(f"kallsyms_names: nothing readable at 0x{va:x}")
    return more


def _expand_compiled(info: VmcoreInfo, read: ReadVirt, names_va: int, count: int,
                     tokens: List[str]) -> Optional[Tuple[List[str], str]]:
    """(names, type letters) from the compiled expansion of kallsyms_names, or None when it
    cannot be used here and :meth:`Kallsyms._names` decodes (the reference).

    The table is read in one piece, up to the nearest kallsyms table VMCOREINFO places
    after it (at most MAX_NAMES_BYTES); None when there is none, the read fails (a slice
    keeps only the pages the records fill) or the records run past that piece.
    """
    after = [va for va in (info.symbol(n) for n in _TABLES_AFTER_NAMES) if va is not None and va > names_va]
    if not after or min(after) - names_va > MAX_NAMES_BYTES:
        return None
    try:
        blob = read(names_va, min(after) - names_va)
    except KmemdbgError:
        return None
    try:
        return _kallsymsc.expand(blob, count, [t.encode("latin-1") for t in tokens])
    except ValueError as err:           # the same lines the Python decoder raises
        raise KallsymsError(str(err)) from None


class Kallsyms:
    """Every vmlinux symbol of one kernel: names, addresses and type letters.

    ``read(va, size)`` reads kernel virtual memory.  Raises KallsymsError
    (one line) when VMCOREINFO lacks the table addresses or they do not
    decode; read errors from ``read`` propagate.
    """

    def __init__(self, info: VmcoreInfo, read: ReadVirt) -> None:
        need = ("kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table", "kallsyms_token_index")
        where = {n: info.symbol(n) for n in need}
        missing = [n for n, v in where.items() if v is None]
        if missing:
            raise KallsymsError(f"vmcoreinfo has no SYMBOL({missing[0]}) (kernel before 6.0?)")
        count = int.from_bytes(read(where["kallsyms_num_syms"], 4), "little")
        if not 0 < count <= MAX_SYMBOLS:
            raise KallsymsError(f"kallsyms_num_syms reads {count}: not a symbol count")
        tokens = self._tokens(read, where["kallsyms_token_table"], where["kallsyms_token_index"])
        got = _expand_compiled(info, read, where["kallsyms_names"], count, tokens) if COMPILED else None
        names, types = got if got is not None else self._names(read, where["kallsyms_names"], count, tokens)
        addresses = self._addresses(info, read, count, names)
        if addresses == sorted(addresses):      # the usual case: already in address order
            self.addresses, self.names, self.types = addresses, names, "".join(types)
        else:
            order = sorted(range(count), key=addresses.__getitem__)     # stable: aliases keep table order
            self.addresses = [addresses[i] for i in order]
            self.names = [names[i] for i in order]
            self.types = "".join([types[i] for i in order])
        self._by_name: Optional[Dict[str, int]] = None     # built once scans stop paying
        self._scans = 0

    @staticmethod
    def _tokens(read: ReadVirt, table_va: int, index_va: int) -> List[str]:
        index = array("H")
        index.frombytes(read(index_va, 512))
        last = max(index)
        blob = read(table_va, last + 256)
        out = []
        for off in index:
            end = blob.find(b"\0", off)
            if end < 0:
                raise KallsymsError("kallsyms_token_table: a token is not NUL-terminated")
            out.append(blob[off:end].decode("latin-1"))
        return out

    @staticmethod
    def _names(read: ReadVirt, names_va: int, count: int, tokens: List[str]) -> Tuple[List[str], List[str]]:
        """Every record's expanded text, split into (names, type letters), in table order.

        One pass over the records; each is expanded by ``str.join`` over a
        ``map`` of the token list (the start-up's hot spot was a generator
        per symbol through a chunked stream).
        """
        token = tokens.__getitem__
        buf = b""
        pos = end = 0
        va = names_va               # next virtual address to read
        texts: List[str] = []
        keep = texts.append
        for _ in range(count):
            if pos + 2 > end:
                more = _chunk(read, va)
                buf, pos, va = buf[pos:] + more, 0, va + len(more)
                end = len(buf)
            n = buf[pos]
            if n & 0x80:
                n = (n & 0x7F) | (buf[pos + 1] << 7)
                pos += 1
            pos += 1
            if not n:
                raise KallsymsError("kallsyms_names: an empty symbol record")
            while pos + n > end:
                more = _chunk(read, va)
                buf, pos, va = buf[pos:] + more, 0, va + len(more)
                end = len(buf)
            keep("".join(map(token, buf[pos:pos + n])))
            pos += n
        if not all(texts):
            raise KallsymsError("kallsyms_names: a symbol record expands to nothing")
        return [t[1:] for t in texts], [t[0] for t in texts]

    @staticmethod
    def _addresses(info: VmcoreInfo, read: ReadVirt, count: int, names: List[str]) -> List[int]:
        absolute = info.symbol("kallsyms_addresses")
        if absolute is not None:
            arr = array("Q")
            arr.frombytes(read(absolute, 8 * count))
            return list(arr)
        offsets_va, base_va = info.symbol("kallsyms_offsets"), info.symbol("kallsyms_relative_base")
        if offsets_va is None or base_va is None:
            raise KallsymsError("vmcoreinfo has neither kallsyms_addresses nor kallsyms_offsets")
        base = int.from_bytes(read(base_va, 8), "little")
        offsets = array("i")
        offsets.frombytes(read(offsets_va, 4 * count))
        mask = (1 << 64) - 1
        stext = info.symbol("_stext")
        if stext is not None and "_stext" in names:
            o = offsets[names.index("_stext")]
            relative, percpu = (base + (o & 0xFFFFFFFF)) & mask, (o if o >= 0 else (base - 1 - o)) & mask
            if percpu == stext and relative != stext:
                return [(o if o >= 0 else (base - 1 - o)) & mask for o in offsets]
            if relative != stext and percpu != stext:
                raise KallsymsError(f"kallsyms puts _stext at neither 0x{relative:x} nor "
                                    f"0x{percpu:x}; vmcoreinfo says 0x{stext:x}")
        if base + (1 << 32) <= mask:
            u32 = array("I")
            u32.frombytes(offsets.tobytes())
            return [base + o for o in u32]
        return [(base + (o & 0xFFFFFFFF)) & mask for o in offsets]

    def __len__(self) -> int:
        return len(self.addresses)

    def address(self, name: str) -> Optional[int]:
        """Virtual address of the first symbol called ``name`` in address order, or None.

        The first SCANNED_LOOKUPS lookups scan the name list (a command that needs
        a few symbols never pays for an index of every name); later ones use a
        dict built once, which keeps the same first symbol.
        """
        by_name = self._by_name
        if by_name is None:
            if self._scans < SCANNED_LOOKUPS:
                self._scans += 1
                try:
                    return self.addresses[self.names.index(name)]
                except ValueError:
                    return None
            by_name = self._by_name = dict(zip(reversed(self.names), reversed(self.addresses)))
        return by_name.get(name)

    def lookup(self, va: int) -> Optional[Tuple[str, int, int]]:
        """``(name, start, size_bytes)`` of the symbol holding virtual ``va``, or None.

        kallsyms has no sizes: a symbol extends to the next higher symbol
        address, and among aliases at one address the last in table order
        is chosen.  A gap of MAX_SYMBOL_BYTES or more is taken as the end of
        a section rather than one huge symbol, so ``va`` in it has no
        symbol; the last symbol has no known end either.  These are drgn's
        rules for its kallsyms finder, so names match what drgn prints.
        """
        i = bisect.bisect_right(self.addresses, va) - 1
        if i < 0:
            return None
        start = self.addresses[i]
        j = bisect.bisect_right(self.addresses, start)
        if j >= len(self.addresses):
            return None
        size = self.addresses[j] - start
        if size >= MAX_SYMBOL_BYTES:
            return None
        return self.names[i], start, size


def kallsyms_problem(session) -> Optional[str]:
    """Why the kallsyms tables VMCOREINFO names cannot be loaded, or None when they look sane.

    Read through kmemdbg's own walker before drgn's loader is asked, so a
    looping or garbage table (drgn's walker does not stop at loops) or an
    impossible ``kallsyms_num_syms`` never makes the loader read for ever.
    """
    num_va = session.info.symbol("kallsyms_num_syms")
    if num_va is None:
        return "vmcoreinfo has no SYMBOL(kallsyms_num_syms) (kernel before 6.0?)"
    try:
        count = int.from_bytes(session.read(num_va, 4), "little")
        for name in ("kallsyms_names", "kallsyms_token_table", "kallsyms_token_index"):
            va = session.info.symbol(name)
            if va is None:
                return f"vmcoreinfo has no SYMBOL({name})"
            session.read(va, 8)
    except KmemdbgError as err:
        return f"kallsyms tables unreadable: {str(err).splitlines()[0]}"
    if not 0 < count <= MAX_SYMBOLS:
        return f"kallsyms_num_syms reads {count}: not a symbol count (1..{MAX_SYMBOLS})"
    return None


class KallsymsSymbols:
    """The symbol-table interface :class:`~kmemdbg.kernel.Kernel` expects, over :class:`Kallsyms`.

    Loads the tables on first use through ``read`` (kernel virtual reads);
    a load failure is kept in ``error`` and every lookup then answers None.
    """

    source = "kallsyms tables in guest memory"

    def __init__(self, info: VmcoreInfo, read: ReadVirt, source: Optional[str] = None,
                 notes: Optional[List[str]] = None) -> None:
        self._info, self._read = info, read
        self._table: Optional[Kallsyms] = None
        self.error: Optional[str] = None
        if source is not None:
            self.source = source
        self._notes = notes       # where a load failure is said (a kernel's notes), if given

    @property
    def table(self) -> Optional[Kallsyms]:
        if self._table is None and self.error is None:
            try:
                self._table = Kallsyms(self._info, self._read)
            except KmemdbgError as err:
                self.error = f"no symbols: {err}"
                if self._notes is not None:
                    self._notes.append(self.error)
        return self._table

    def address(self, name: str) -> Optional[int]:
        """Virtual address of symbol ``name``, or None."""
        table = self.table
        return None if table is None else table.address(name)

    def name_of(self, va: int) -> Optional[str]:
        """``name+0xoff/0xsize`` for the symbol holding virtual ``va``, or None."""
        table = self.table
        hit = None if table is None else table.lookup(va)
        if hit is None:
            return None
        name, start, size = hit
        return f"{name}+{va - start:#x}/{size:#x}"     # both >= 0: "0x..."


__all__ = ["Kallsyms", "KallsymsSymbols", "KallsymsError", "kallsyms_problem"]
