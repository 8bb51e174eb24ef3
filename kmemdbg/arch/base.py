"""The data that describes a paging format, read by the one generic walker.

A :class:`PagingFormat` is a table: the levels (name, index shift, index
width, whether a leaf may sit there), how to tell a valid entry from an
invalid one, a table entry from a leaf, which entry bits carry the output
address, and which bits are reserved per level.  The architecture modules
(:mod:`kmemdbg.arch.x86_64`, :mod:`kmemdbg.arch.arm64`) only *fill in* these
tables and supply small decode functions for flags, permissions and
non-present entries.

Integers: ``shift``/``bits`` are bit positions and widths in a *virtual*
address; masks apply to a raw 64-bit entry; every ``*_pa`` is physical.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, Tuple

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Level:
    """One translation level.

    ``shift`` is the lowest VA bit of this level's index, ``bits`` the index
    width.  A leaf at this level maps ``1 << shift`` bytes.  ``leaf_ok``
    says whether a leaf (huge page, block) is architecturally allowed here;
    the last level is always a leaf.
    """

    name: str
    shift: int
    bits: int
    leaf_ok: bool

    @property
    def entries(self) -> int:
        return 1 << self.bits

    @property
    def leaf_size(self) -> int:
        """Bytes of virtual (and physical) memory one leaf here maps."""
        return 1 << self.shift


@dataclass(frozen=True)
class AddressField:
    """Entry bits ``mask`` that land at physical bit positions shifted by ``shift``.

    ``shift`` is added to the bit position (negative shifts move bits down).
    The physical address held by an entry is the OR of all its fields.
    """

    mask: int
    shift: int = 0

    def extract(self, raw: int) -> int:
        bits = raw & self.mask
        return bits << self.shift if self.shift >= 0 else bits >> -self.shift


@dataclass(frozen=True)
class Permissions:
    """Effective access rights of a leaf after combining every level.

    ``kernel_*`` are the rights of privileged code (ring 0 / EL1), ``user_*``
    those of unprivileged code (ring 3 / EL0).
    """

    kernel_read: bool
    kernel_write: bool
    kernel_exec: bool
    user_read: bool
    user_write: bool
    user_exec: bool

    def short(self) -> str:
        """``"RWX/---"``-style summary: kernel rights, then user rights."""
        def rwx(r: bool, w: bool, x: bool) -> str:
            return ("R" if r else "-") + ("W" if w else "-") + ("X" if x else "-")
        return rwx(self.kernel_read, self.kernel_write, self.kernel_exec) + "/" + \
            rwx(self.user_read, self.user_write, self.user_exec)


# Reasons a walk can stop without a translation.  They are part of the JSON
# contract: ``fault.reason`` is always one of these strings.
NOT_PRESENT = "not-present"
PROT_NONE = "prot-none"
SWAP = "swap"
RESERVED = "reserved-bits"
NON_CANONICAL = "non-canonical"
TABLE_UNREADABLE = "table-unreadable"
TABLE_LOOP = "table-loop"
ROOT_MISALIGNED = "root-misaligned"
#: Whole-tree sweeps only (never a walk's fault): a table shared at the same level is
#: reached again after the sweep's budget for repeating shared tables is spent.
TABLE_FAN_OUT = "table-fan-out"
FAULT_REASONS = (NOT_PRESENT, PROT_NONE, SWAP, RESERVED, NON_CANONICAL,
                 TABLE_UNREADABLE, TABLE_LOOP, ROOT_MISALIGNED)


#: What :meth:`PagingFormat.decode` says an entry is.
ENTRY_INVALID = 0     # the valid bit(s) clear: a fault whose reason ``invalid()`` gives
ENTRY_TABLE = 1       # points at the next level's table
ENTRY_LEAF = 2        # maps memory (page, huge page, block)
ENTRY_RESERVED = 3    # valid but a reserved encoding: the walk faults with RESERVED


@dataclass(frozen=True)
class InvalidEntry:
    """What a non-present entry holds: ``reason`` (one of the fault reasons) and a detail line."""

    reason: str
    detail: str = ""


def _address_reader(fields: Tuple[AddressField, ...]) -> Callable[[int], int]:
    """``raw -> physical address`` for these fields, as one expression (walks call it per entry)."""
    def part(f: AddressField) -> Callable[[int], int]:
        m, s = f.mask, f.shift
        if s == 0:
            return lambda raw: raw & m
        return (lambda raw: (raw & m) << s) if s > 0 else (lambda raw: (raw & m) >> -s)
    if len(fields) == 1:
        return part(fields[0])
    if len(fields) == 2:
        a, b = part(fields[0]), part(fields[1])
        return lambda raw: a(raw) | b(raw)
    parts = tuple(part(f) for f in fields)

    def reader(raw: int) -> int:
        pa = 0
        for p in parts:
            pa |= p(raw)
        return pa
    return reader


@dataclass(frozen=True)
class PagingFormat:
    """A complete description of one paging mode.

    ``va_bits`` is the number of VA bits the walk translates.  An address is
    in range when the bits from ``uniform_from`` upward are all zeros or all
    ones (x86-64: sign extension from bit ``va_bits - 1``; arm64: the TTBR0
    or TTBR1 half, ``uniform_from = va_bits``).

    ``valid_mask``: an entry with none of these bits set is invalid.
    ``leaf_mask``/``leaf_value``: at a non-last level, an entry whose masked
    bits equal ``leaf_value`` is a leaf (x86 PS=1; arm64 bits[1:0]=01).
    ``page_mask``/``page_value``: what the last level's entries must satisfy
    to be a leaf (arm64 bits[1:0]=11); anything else there is reserved.
    ``address``: the fields carrying the output address of tables and leaves.
    ``reserved_table[i]``/``reserved_leaf[i]``: bits that must be zero in a
    table entry / a leaf at level ``i``.
    """

    name: str
    arch: str
    page_shift: int
    va_bits: int
    uniform_from: int
    levels: Tuple[Level, ...]
    valid_mask: int
    leaf_mask: int
    leaf_value: int
    page_mask: int
    page_value: int
    address: Tuple[AddressField, ...]
    reserved_table: Tuple[int, ...]
    reserved_leaf: Tuple[int, ...]
    flags: Callable[[int, int, bool], Tuple[str, ...]] = field(compare=False, repr=False)
    invalid: Callable[[int, int, int], InvalidEntry] = field(compare=False, repr=False)
    permissions: Callable[[Sequence[int], int], Permissions] = field(compare=False, repr=False)
    params: Tuple[Tuple[str, object], ...] = ()
    #: The entry bits ``flags()`` reads (walkers memoise flag names on ``raw & flag_bits``).
    flag_bits: int = MASK64
    #: The entry bits ``permissions()`` reads, at every level (memoised the same way).
    permission_bits: int = MASK64

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def table_bytes(self) -> int:
        """Bytes of a full table page (the granule)."""
        return 1 << self.page_shift

    def table_size(self, level: int) -> int:
        """Bytes of a table at ``level``: ``8 << bits`` (a short top table is smaller
        than a page; arm64 LPA2 user PGDs of 16 entries come from a slab)."""
        return 8 << self.levels[level].bits

    @property
    def root_align(self) -> int:
        """Alignment the root table's physical address needs (its size, at least 64 bytes)."""
        return max(64, self.table_size(0))

    def param(self, key: str, default: object = None) -> object:
        for k, v in self.params:
            if k == key:
                return v
        return default

    def in_range(self, va: int) -> bool:
        """True when ``va`` (virtual) is canonical / inside a translated half."""
        top = (va & MASK64) >> self.uniform_from
        return top == 0 or top == (MASK64 >> self.uniform_from)

    def output_address(self, raw: int) -> int:
        """Physical address bits held by ``raw`` (not yet aligned to a leaf size).

        (Each format replaces this with one expression of its fields at
        construction; this loop is the definition.)"""
        pa = 0
        for f in self.address:
            pa |= f.extract(raw)
        return pa

    def index(self, va: int, level: int) -> int:
        lv = self.levels[level]
        return (va >> lv.shift) & ((1 << lv.bits) - 1)

    # -- the one entry decoder (scalar and whole-table), from the masks above --------
    def __post_init__(self) -> None:
        last = len(self.levels) - 1
        masks = tuple((i == last, self.page_mask if i == last else self.leaf_mask,
                       self.page_value if i == last else self.leaf_value,
                       lv.leaf_ok, self.reserved_leaf[i], self.reserved_table[i])
                      for i, lv in enumerate(self.levels))
        object.__setattr__(self, "_masks", masks)
        object.__setattr__(self, "output_address", _address_reader(self.address))

    def _decode_masks(self) -> Tuple[Tuple[bool, int, int, bool, int, int], ...]:
        """Per level: (last, type mask, leaf value, leaf allowed, reserved-if-leaf, reserved-if-table).

        At the last level the type test is ``page_mask``/``page_value`` and a
        mismatch is reserved; above it ``leaf_mask``/``leaf_value`` tells a
        leaf from a table and a leaf is reserved where ``leaf_ok`` is False.
        """
        return self._masks  # type: ignore[attr-defined]

    def decode(self, raw: int, level: int) -> int:
        """What the 64-bit entry ``raw`` at level index ``level`` is: an ``ENTRY_*`` kind."""
        if not raw & self.valid_mask:
            return ENTRY_INVALID
        last, tmask, tvalue, leaf_ok, res_leaf, res_table = self._masks[level]  # type: ignore[attr-defined]
        if last:
            if (raw & tmask) != tvalue:
                return ENTRY_RESERVED
            return ENTRY_RESERVED if raw & res_leaf else ENTRY_LEAF
        if (raw & tmask) == tvalue:
            return ENTRY_LEAF if leaf_ok and not raw & res_leaf else ENTRY_RESERVED
        return ENTRY_RESERVED if raw & res_table else ENTRY_TABLE

    def reserved_reason(self, raw: int, level: int) -> str:
        """Why :meth:`decode` called ``raw`` reserved, as a sentence."""
        last, tmask, tvalue, leaf_ok, res_leaf, res_table = self._decode_masks()[level]
        name = self.levels[level].name
        leaf = (raw & tmask) == tvalue
        if last and not leaf:
            return "descriptor type is reserved at the last level"
        if leaf and not last and not leaf_ok:
            return f"leaf (huge page/block) not allowed at {name}"
        return f"reserved bits 0x{raw & (res_leaf if leaf else res_table):x} set"

    def decode_table(self, entries, level: int):
        """:meth:`decode` of a whole table at once: ``entries`` a numpy uint64 array.

        Returns boolean arrays ``(valid, leaf, table, reserved)`` (``leaf`` and
        ``table`` exclude reserved entries), from the same masks.
        """
        import numpy as np

        last, tmask, tvalue, leaf_ok, res_leaf, res_table = self._decode_masks()[level]
        valid = (entries & np.uint64(self.valid_mask)) != 0
        typed = (entries & np.uint64(tmask)) == np.uint64(tvalue)
        if last:
            leaf = valid & typed & ((entries & np.uint64(res_leaf)) == 0)
            table = np.zeros_like(valid)
        else:
            leaf = valid & typed & ((entries & np.uint64(res_leaf)) == 0) if leaf_ok \
                else np.zeros_like(valid)
            table = valid & ~typed & ((entries & np.uint64(res_table)) == 0)
        return valid, leaf, table, valid & ~leaf & ~table

    def level_named(self, name: str) -> int:
        for i, lv in enumerate(self.levels):
            if lv.name == name:
                return i
        raise KeyError(name)


def bits(lo: int, hi: int) -> int:
    """Mask of bits ``lo`` to ``hi`` inclusive."""
    if hi < lo:
        return 0
    return ((1 << (hi - lo + 1)) - 1) << lo


def split_levels(names: Sequence[str], page_shift: int, va_bits: int,
                 leaf_ok: Callable[[int, int], bool]) -> Tuple[Level, ...]:
    """Levels for a radix tree of ``page_shift``-sized tables of 8-byte entries.

    The last level indexes bits ``[page_shift, page_shift + k)`` with
    ``k = page_shift - 3``; each level above takes the next ``k`` bits and the
    top level whatever remains up to ``va_bits``.  ``names`` lists the level
    names top first and must have exactly as many entries as levels.
    ``leaf_ok(position_from_bottom, shift)`` says where leaves are allowed.
    """
    per = page_shift - 3
    count = -(-(va_bits - page_shift) // per)
    if len(names) != count:
        raise ValueError(f"{len(names)} names for {count} levels")
    out = []
    for pos in range(count - 1, -1, -1):
        shift = page_shift + pos * per
        width = min(per, va_bits - shift)
        out.append(Level(names[count - 1 - pos], shift, width, pos == 0 or leaf_ok(pos, shift)))
    return tuple(out)
