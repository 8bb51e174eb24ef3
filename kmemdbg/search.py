"""``search``: where a value is stored in kernel memory, each hit with its owner (crash's ``search``).

Three scopes, all read physically by chunks of CHUNK bytes (the memory
used does not grow with the dump):

``kernel`` (the default)
    every kind of kernel memory that can hold a stored value, each physical
    frame once: the plan of the audit's misuse scanner
    (:func:`kmemdbg.audit.memkinds.plan`: image data and bss, module data,
    per-cpu areas, vmalloc'd memory and stacks, slab pages, page-allocator
    pages).  Kernel text, read-only data, page tables and user pages are not
    in it: ask for them with ``start``/``end``.
``virtual``
    every mapped byte of kernel virtual ``[start, end)``, from the audit's one
    sweep of the kernel tables (:class:`kmemdbg.audit.context.AuditContext`).
    Each physical byte is searched once, at its first address in the range
    (ESPFIX maps one stack page 65536 times; the KASAN shadow one zero page
    for terabytes), and ``notes`` say how many bytes were such aliases.
``physical``
    physical ``[start, end)`` (default all RAM) inside the RAM ranges.

A word matches when ``word & mask == value & mask``; words are ``width``
bytes (2, 4 or 8), little-endian, aligned to their width.  The first
``limit`` hits are kept and ``truncated`` says whether there were more
(the search stops at the first hit past the limit).

Addresses: ``va`` virtual, ``pa`` physical; sizes in bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .annotate import MEMORY, WordOwner, owner_of_va
from .errors import AddressError, KmemdbgError

KERNEL, VIRTUAL, PHYSICAL = "kernel", "virtual", "physical"
#: Bytes read from the memory source at a time.
CHUNK = 1 << 20
#: Hits kept by default, and at most.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1 << 16
_DTYPES = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_PERCPU_SYM = re.compile(r"\((?P<sym>[^+()\s]+)\+0x(?P<off>[0-9a-f]+)(?:/0x[0-9a-f]+)?\)$")


@dataclass(frozen=True)
class SearchHit:
    """A stored word equal to the value under the mask: where it is (``va``, None when the
    word has no known virtual address; ``pa``), the ``value`` stored, the kind of ``memory``
    (a memkinds kind, the region kind, or ``ram`` in the physical scope) and the ``owner``
    of the word's location.  A physical hit's ``va`` is the kernel mapping whose owner is
    known (a module or vmalloc mapping of the frame), else the frame's linear-map address."""

    va: Optional[int]
    pa: int
    value: int
    memory: str
    owner: Optional[WordOwner]


@dataclass(frozen=True)
class SearchResult:
    """The hits of one search (see the module doc) and how much was searched.

    ``start``/``end`` bound the scope (virtual or physical; None for the
    kernel scope); ``scanned_bytes`` were read, ``unreadable_bytes`` could not
    be; ``missing`` says what the scope should have covered and could not.
    """

    value: int
    mask: int
    width: int
    scope: str
    start: Optional[int]
    end: Optional[int]
    limit: int
    hits: Tuple[SearchHit, ...]
    truncated: bool
    scanned_bytes: int
    unreadable_bytes: int
    missing: Tuple[str, ...]
    notes: Tuple[str, ...]


@dataclass(frozen=True)
class _Run:
    pa: int
    va: Optional[int]
    size: int
    memory: str
    span: object = None          # the memkinds Span, in the kernel scope


class _Scanner:
    def __init__(self, kernel, value: int, mask: int, width: int, limit: int) -> None:
        self.k = kernel
        self.width = width
        self.dtype = _DTYPES[width]
        self.mask = self.dtype(mask)
        self.want = self.dtype(value & mask)
        self.limit = limit
        self.found: List[Tuple[_Run, int, int]] = []     # (run, pa, word value)
        self.truncated = False
        self.scanned = 0
        self.unreadable = 0
        self.page = kernel.tables.format.page_size

    def _pieces(self, pa: int, size: int) -> List[Tuple[int, bytes]]:
        """The readable parts of physical ``[pa, pa + size)`` as (pa, bytes), page by page
        when the whole cannot be read (unreadable pages are counted, never matched)."""
        mem = self.k.memory
        try:
            data = mem.read(pa, size)
            self.scanned += size
            return [(pa, data)]
        except KmemdbgError:
            pass
        out: List[Tuple[int, bytearray]] = []
        cur = pa
        while cur < pa + size:
            n = min(self.page - cur % self.page, pa + size - cur)
            try:
                data = mem.read(cur, n)
            except KmemdbgError:
                self.unreadable += n
            else:
                self.scanned += n
                if out and out[-1][0] + len(out[-1][1]) == cur:
                    out[-1][1].extend(data)
                else:
                    out.append((cur, bytearray(data)))
            cur += n
        return [(a, bytes(b)) for a, b in out]

    def scan(self, run: _Run) -> None:
        pos = 0
        while pos < run.size and not self.truncated:
            n = min(CHUNK, run.size - pos)
            for pa, data in self._pieces(run.pa + pos, n):
                self._match(run, pa, data)
                if self.truncated:
                    return
            pos += n

    def _match(self, run: _Run, pa: int, data: bytes) -> None:
        lead = (-pa) % self.width
        body = data[lead:len(data) - (len(data) - lead) % self.width]
        words = np.frombuffer(body, dtype=self.dtype)
        for i in np.flatnonzero((words & self.mask) == self.want).tolist():
            if len(self.found) == self.limit:
                self.truncated = True
                return
            self.found.append((run, pa + lead + self.width * i, int(words[i])))


def search(kernel, value: int, mask: Optional[int] = None, width: int = 8, start: Optional[int] = None,
           end: Optional[int] = None, physical: bool = False, limit: int = DEFAULT_LIMIT) -> SearchResult:
    """Where ``value`` (under ``mask``) is stored; see the module doc for the scopes.

    ``start``/``end`` (end exclusive) make the scope virtual, or bound the
    physical one.  Raises AddressError for a bad width, mask, range or limit.
    """
    from .audit.context import AuditContext

    if width not in _DTYPES:
        raise AddressError(f"width {width}: give 2, 4 or 8 bytes")
    top = (1 << (8 * width)) - 1
    mask = top if mask is None else mask
    if value > top or mask > top:
        raise AddressError(f"0x{max(value, mask):x} does not fit in {width} bytes")
    if not 1 <= limit <= MAX_LIMIT:
        raise AddressError(f"limit {limit}: give 1 to {MAX_LIMIT} hits")
    if (start is None) != (end is None) and not physical:
        raise AddressError("give both --start and --end (or neither)")
    if start is not None and end is not None and end <= start:
        raise AddressError(f"end 0x{end:x} is not above start 0x{start:x}")
    ctx = AuditContext(kernel)
    scanner = _Scanner(kernel, value, mask, width, limit)
    missing: List[str] = []
    notes: List[str] = []
    if physical:
        scope = PHYSICAL
        lo, hi = start or 0, end if end is not None else 1 << 64
        ram = ctx.ram()
        if not ram:
            raise KmemdbgError("no RAM map: neither the source nor the kernel's iomem_resource gives one")
        for a, b in ram:
            a, b = max(a, lo), min(b, hi)
            if a < b and not scanner.truncated:
                scanner.scan(_Run(a, None, b - a, "ram"))
    elif start is not None:
        from .audit.memkinds import Claimed

        scope = VIRTUAL
        pieces = ctx.pieces_in(start, end)
        covered = sum(min(end, p.end) - max(start, p.start) for p in pieces)
        seen = Claimed(1)             # physical bytes searched so far: aliases are searched once
        aliased = 0
        for p in pieces:
            if scanner.truncated:
                break
            a, b = max(start, p.start), min(end, p.end)
            if p.period and b - a > p.period:
                notes.append(f"0x{p.start:x}-0x{p.end:x} maps the same {p.period} bytes again every "
                             f"0x{p.period:x} bytes: searched once, at 0x{a:x}")
                b = a + p.period
            pa = p.pa_at(a)
            cut = pa
            for lo, hi in seen.overlaps(pa, pa + (b - a)):
                if lo > cut:
                    scanner.scan(_Run(cut, a + (cut - pa), lo - cut, p.region.kind))
                aliased += hi - lo
                cut = max(cut, hi)
            if cut < pa + (b - a) and not scanner.truncated:
                scanner.scan(_Run(cut, a + (cut - pa), pa + (b - a) - cut, p.region.kind))
            seen.add(pa, pa + (b - a))
        if aliased:
            notes.append(f"{aliased} bytes alias frames searched once, at their first address")
        if covered < end - start:
            notes.append(f"{end - start - covered} bytes of the range are not mapped in the kernel tables")
    else:
        from .audit.memkinds import plan

        scope = KERNEL
        scan_plan = plan(ctx)
        for kind, why in scan_plan.missing.items():
            missing += [f"{kind}: {w}" for w in why]
        for span in scan_plan.spans:
            if scanner.truncated:
                break
            scanner.scan(_Run(span.pa, span.va, span.size, span.kind, span))
    hits = tuple(_hit(kernel, ctx, run, pa, word) for run, pa, word in scanner.found)
    if scanner.unreadable:
        missing.append(f"{scanner.unreadable} bytes could not be read from the source")
    return SearchResult(value, mask, width, scope, start if scope != KERNEL else None,
                        end if scope != KERNEL else None, limit, hits, scanner.truncated, scanner.scanned,
                        scanner.unreadable, tuple(missing), tuple(notes))


def _hit(kernel, ctx, run: _Run, pa: int, word: int) -> SearchHit:
    va = None if run.va is None else run.va + (pa - run.pa)
    if va is None and run.span is None:
        va = ctx.linear_va(pa)
        if va is not None and ctx.pa_of(va) != pa:
            va = None             # the linear map does not map this frame (highmem-less holes)
    owner = None
    span = run.span
    if span is None or span.kind in ("image", "module", "vmalloc", "slab"):
        owner = owner_of_va(kernel, va) if va is not None else None
    if owner is None and run.va is None and span is None:
        # a physical hit: a frame the linear map owns nothing in may be a module's or a
        # vmalloc area's, mapped elsewhere (the inverted sweep, built once, says where)
        for m in kernel.phys_to_virts(pa):
            got = owner_of_va(kernel, m.va) if m.region.kind != "linear" else None
            if got is not None:
                va, owner = m.va, got
                break
    if owner is None and span is not None:
        owner = _memory_owner(ctx, span, pa, va)
    return SearchHit(va, pa, word, run.memory, owner)


def _memory_owner(ctx, span, pa: int, va: Optional[int]) -> WordOwner:
    """The scanner's own name for a word of ``span`` (a stack, a per-cpu variable, a page)."""
    from .audit.misuse import owner_of

    text = owner_of(ctx, span, pa, va)
    symbol, offset = None, None
    m = _PERCPU_SYM.search(text)
    if m is not None:
        symbol, offset = m.group("sym"), int(m.group("off"), 16)
    elif va is not None and span.base_va is not None:
        offset = va - span.base_va
    elif span.kind == "page":
        offset = pa % ctx.page_size
    return WordOwner(MEMORY, span.label, symbol, offset, None, text)


__all__ = ["search", "SearchResult", "SearchHit", "KERNEL", "VIRTUAL", "PHYSICAL", "DEFAULT_LIMIT",
           "MAX_LIMIT", "CHUNK"]
