"""Point and batch translation of virtual addresses, and the one :class:`Fault` type.

:class:`Walker` reads a :class:`~kmemdbg.arch.base.PagingFormat` and a
physical memory source and translates virtual addresses.  Every walk returns
a frozen :class:`Walk`; a translation that cannot be made ends in a
:class:`Fault` value, never in an exception.

Walks over a VA range (table sweeps, ptdump, the audits, the inverted map)
are visitors of the one tree walk, :func:`kmemdbg.tree.walk_range`.  A
translation follows one path, not a range: :meth:`Walker.walk` (point) and
:meth:`Walker.translate_many` (batch, memoised per VA prefix) are its
specialised hot paths over the same decoder, the per-level masks of
:meth:`PagingFormat.decode`, inlined; they detect loops and unreadable
tables as the tree walk does.

Addresses: ``va`` is virtual; ``pa``, ``table_pa``, ``entry_pa`` and
``root_pa`` are physical.  Sizes are in bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from .arch.base import (ENTRY_INVALID, ENTRY_LEAF, ENTRY_RESERVED, MASK64, NON_CANONICAL, NOT_PRESENT,
                        RESERVED, ROOT_MISALIGNED, TABLE_LOOP, TABLE_UNREADABLE, PagingFormat, Permissions)
from .errors import PhysicalReadError
from .gcpause import collection_paused
from .memory import PhysicalMemory, TableCache, declared
from .walk_accel import accelerator

#: Entries each per-snapshot memo of a :class:`Walker` holds before it starts over.
MEMO_LIMIT = 1 << 18

TABLE = "table"
LEAF = "leaf"
INVALID = "invalid"


class Step(NamedTuple):
    """One level of a walk: the entry read at ``entry_pa`` in the table at ``table_pa``.

    An immutable typed record (a NamedTuple: walks build millions of them, and
    it is three times cheaper to create than a frozen dataclass).

    ``kind`` is ``"table"`` (points at the next table), ``"leaf"`` (maps
    memory) or ``"invalid"`` (stopped the walk).  ``flags`` are the decoded
    bit names of ``raw`` in bit order (plus the memory type of a leaf).
    """

    level: str
    table_pa: int
    index: int
    entry_pa: int
    raw: int
    kind: str
    flags: Tuple[str, ...]


@dataclass(frozen=True)
class Fault:
    """Why a walk or a sweep could not translate: ``reason`` (``arch.base.FAULT_REASONS``,
    or ``table-fan-out`` for sweeps) at the level named ``level`` (index ``depth``, 0 = root).

    The one fault type of point walks, batch walks, tree sweeps and the ptdump
    sweep.  ``entry_pa``/``raw``/``index`` identify the entry at fault when
    there is one; ``table_pa`` the table being read (physical).  Sweeps also
    give the virtual range ``[start, end)`` the fault hides (``va``/``size``
    are the same as a start and a length).  ``detail`` is a human sentence.
    """

    level: Optional[str]
    reason: str
    detail: str
    table_pa: Optional[int] = None
    entry_pa: Optional[int] = None
    raw: Optional[int] = None
    index: Optional[int] = None
    depth: Optional[int] = None
    start: Optional[int] = None
    end: Optional[int] = None

    @property
    def va(self) -> Optional[int]:
        """First virtual address of the range the fault hides (sweeps), else None."""
        return self.start

    @property
    def size(self) -> Optional[int]:
        """Bytes of virtual address space the fault hides (sweeps), else None."""
        return None if self.start is None or self.end is None else self.end - self.start

    def message(self, va: int) -> str:
        """One line: ``0x...: not mapped: PTE[292] = 0x0 (table at pa 0x103000): detail``."""
        where = ""
        if self.level is not None and self.index is not None and self.raw is not None:
            where = f": {self.level}[{self.index}] = 0x{self.raw:x}"
        elif self.level is not None:
            where = f": at {self.level}"
        table = f" (table at pa 0x{self.table_pa:x})" if self.table_pa is not None else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"0x{va:016x}: {self.reason}{where}{table}{detail}"


class Walk(NamedTuple):
    """The full record of translating ``va`` with format ``format_name``.

    ``pa`` is the physical address of ``va`` and ``page_size`` the size of
    the leaf that maps it, both None when ``fault`` is set.  An immutable
    typed record; a NamedTuple like :class:`Step` because a walk is the
    hot path of every per-address question (it is built in a third of the
    time of a frozen dataclass).
    """

    va: int
    format_name: str
    root_pa: int
    steps: Tuple[Step, ...]
    pa: Optional[int]
    page_size: Optional[int]
    permissions: Optional[Permissions]
    fault: Optional[Fault]

    @property
    def mapped(self) -> bool:
        return self.fault is None

    @property
    def leaf(self) -> Optional[Step]:
        return self.steps[-1] if self.fault is None and self.steps else None


@dataclass(frozen=True)
class BatchResult:
    """Translations of many addresses: parallel tuples indexed like ``vas``.

    ``pas[i]``/``page_sizes[i]`` are None where ``faults[i]`` holds
    ``(level name or None, reason)``.
    """

    vas: Tuple[int, ...]
    pas: Tuple[Optional[int], ...]
    page_sizes: Tuple[Optional[int], ...]
    faults: Tuple[Optional[Tuple[Optional[str], str]], ...]

    def __len__(self) -> int:
        return len(self.vas)


_HALF_BIT = {"both": None, "upper": 1, "lower": 0}


def _plan(fmt: PagingFormat):
    """What every walker of ``fmt`` precomputes, computed once per format and kept on it:
    (level count, per-level VA span, per-level (name, index shift, index mask, table bytes,
    leaf bytes), the batch memo's parameters, per-level (index, shift, mask) of the walk loop,
    the memo of flag names, the memo of permissions)."""
    plan = fmt.__dict__.get("_walk_plan")
    if plan is None:
        span = tuple(lv.shift + lv.bits for lv in fmt.levels)
        lvs = tuple((lv.name, lv.shift, (1 << lv.bits) - 1, fmt.table_size(i), lv.leaf_size)
                    for i, lv in enumerate(fmt.levels))
        last = fmt.levels[-1]
        batch = ([(i, s) for i, s in reversed(list(enumerate(span)))][:-1],
                 last.name, last.shift, (1 << last.bits) - 1, fmt.valid_mask, fmt.page_mask, fmt.page_value,
                 fmt.reserved_leaf[-1], last.leaf_size,
                 fmt.address[0].mask if len(fmt.address) == 1 and fmt.address[0].shift == 0 else 0)
        hot = tuple((i, lv.shift, (1 << lv.bits) - 1) for i, lv in enumerate(fmt.levels))
        # flag names by (raw & flag_bits, level, leaf) and permissions by the path's
        # raw & permission_bits: they depend on nothing else (tests/test_walk_memo.py)
        plan = (len(fmt.levels), span, lvs, batch, hot, {}, {})
        object.__setattr__(fmt, "_walk_plan", plan)   # a frozen dataclass: derived data only
    return plan


class Walker:
    """Translates virtual addresses through the tables rooted at physical ``root_pa``.

    One walker holds one :class:`TableCache`, so every walk through it
    shares table pages already read.  Pass ``cache`` to share it with other
    walkers of the same snapshot (for example kernel and user roots).

    On top of the table pages a walker keeps three per-snapshot memos, all
    dropped with the cache's tables (:attr:`TableCache.epoch`) and so when
    a live source moves on:

    - decoded entries, keyed by the entry's physical address and level: the
      :class:`Step` an entry gives and where it leads (next table or leaf
      frame), so a walk through cached tables decodes nothing twice;
    - path prefixes: for the VA range one last-level table covers, the steps
      above it (the same for every address there), so a walk under a table
      already reached looks up one entry;
    - the batch memo of :meth:`translate_one` / :meth:`translate_many`: per
      level, VA prefix -> last-level table, leaf frame or fault (a TLB
      whose entries are whole tables).

    Flag names and permissions, which depend only on entry bits, are kept
    per format and shared by its walkers.  Every memo is bounded
    (:data:`MEMO_LIMIT` entries each, then started over).
    """

    def __init__(self, fmt: PagingFormat, memory: PhysicalMemory, root_pa: int,
                 cache: Optional[TableCache] = None, half: str = "both") -> None:
        if half not in ("both", "upper", "lower"):
            raise ValueError(f"half must be both, upper or lower, not {half!r}")
        self.half = half
        self.format = fmt
        self.root_pa = root_pa
        self.cache = cache if cache is not None else TableCache(memory)
        self._nlev, self._span, self._lv, self._batch_params, self._hot, self._flags, self._perms = _plan(fmt)
        self._half_bit = _HALF_BIT[half]
        self._top_ones = MASK64 >> fmt.uniform_from
        self._root_misaligned = bool(root_pa % fmt.root_align)
        self.memory = memory

    @property
    def memory(self) -> PhysicalMemory:
        """The physical source walked (setting another one starts the memos over)."""
        return self._memory

    @memory.setter
    def memory(self, memory: PhysicalMemory) -> None:
        self._memory = memory
        src = declared(memory)
        self._zero_fill = bool(src.zero_fills_holes)
        self._live = bool(src.live)
        # the compiled walk of the plain case (kmemdbg.walk_accel), over this source's own
        # bytes; never for a live source
        self._accel_of = None if self._live else accelerator(self.format, src.physical_view(), self.root_pa,
                                                             self._half_bit)
        self._reset()

    def _reset(self) -> None:
        self._epoch_of = self.cache.epoch_of        # .epoch is cache.epoch, read without a call
        self._epoch = self.cache.epoch
        # a table the cache holds that the source does not (a test's patch) turns the compiled walk off
        accel = None if self.cache.replaced else self._accel_of
        self._accel = accel
        self._c_translate = accel.translate if accel is not None else None
        self._c_walk = accel.walk if accel is not None else None
        # batch memo: per level i, key va >> (shift_i + bits_i) -> node
        self._memo: List[Dict[int, tuple]] = [dict() for _ in self.format.levels]
        self._entries: Dict[int, Tuple[Step, int, int, int]] = {}
        # va >> (span of the last level) -> (steps, permission bits, table pa) above the last level
        self._prefixes: Dict[int, Tuple[Tuple[Step, ...], Tuple[int, ...], int]] = {}

    def _current(self) -> None:
        """Drop the memos when the cache dropped its tables (or a live source moved on)."""
        if self._live:
            self.cache.fresh()
        if self._epoch != self.cache.epoch:
            self._reset()

    # -- single walks -----------------------------------------------------
    def walk(self, va: int) -> Walk:
        """Translate ``va`` and record every level; never raises for bad tables."""
        if self._live or self._epoch != self._epoch_of.epoch:
            self._current()
        cw = self._c_walk
        if cw is not None:
            got = cw(va)
            if got is not None:
                return got
        fmt = self.format
        va &= MASK64
        top = va >> fmt.uniform_from
        if top and top != self._top_ones:          # fmt.in_range(va), inlined
            return self._done(va, (), None, None, None, Fault(
                None, NON_CANONICAL, f"outside the {fmt.va_bits}-bit translated ranges of {fmt.name}"))
        if self._half_bit is not None and va >> 63 != self._half_bit:
            # arm64: TTBR1 tables translate only the upper half, TTBR0 the lower
            return self._done(va, (), None, None, None, Fault(
                None, NOT_PRESENT, f"these tables translate only the {self.half} half "
                                   f"({'kernel' if self.half == 'upper' else 'user'} addresses)"))
        table_pa = self.root_pa
        if self._root_misaligned:
            return self._done(va, (), None, None, None, Fault(
                fmt.levels[0].name, ROOT_MISALIGNED,
                f"root table pa 0x{table_pa:x} is not {fmt.root_align}-byte aligned",
                table_pa=table_pa, depth=0))
        entries = self._entries
        prefixes = self._prefixes
        pkey = va >> self._span[-1]
        pre = prefixes.get(pkey)
        if pre is not None:
            # The path above the last level is the same for every va under one last-level
            # table: only the last entry is looked up (the slow path below stored it).
            psteps, praws, table_pa = pre
            last, shift, imask = self._hot[-1]
            key = (table_pa + ((va >> shift) & imask) * 8) << 3 | last
            hit = entries.get(key) or self._decode_kept(key, va, last, table_pa, list(psteps))
            if hit.__class__ is Walk:
                return hit  # type: ignore[return-value]
            step, out, size, pbits = hit  # type: ignore[misc]
            rkey = praws + (pbits,)
            perms = self._perms.get(rkey) or self._permissions_kept(rkey, last)
            return Walk(va, fmt.name, self.root_pa, psteps + (step,), out | (va & (size - 1)), size, perms, None)
        steps: List[Step] = []
        raws: List[int] = []
        seen: List[int] = []
        last_level = self._nlev - 1
        for i, shift, imask in self._hot:
            if table_pa in seen:
                return self._done(va, steps, None, None, None, Fault(
                    self._lv[i][0], TABLE_LOOP,
                    f"table pa 0x{table_pa:x} already used at level {self._lv[seen.index(table_pa)][0]}",
                    table_pa=table_pa, depth=i))
            seen.append(table_pa)
            if i == last_level:
                if len(prefixes) >= MEMO_LIMIT:
                    prefixes.clear()
                prefixes[pkey] = (tuple(steps), tuple(raws), table_pa)
            key = (table_pa + ((va >> shift) & imask) * 8) << 3 | i
            hit = entries.get(key) or self._decode_kept(key, va, i, table_pa, steps)
            if hit.__class__ is Walk:
                return hit  # type: ignore[return-value]
            step, out, size, pbits = hit  # type: ignore[misc]
            steps.append(step)
            raws.append(pbits)
            if size:
                rkey = tuple(raws)
                perms = self._perms.get(rkey) or self._permissions_kept(rkey, i)
                return Walk(va, fmt.name, self.root_pa, tuple(steps), out | (va & (size - 1)), size, perms, None)
            table_pa = out
        raise AssertionError("unreachable: the last level is always a leaf")  # pragma: no cover

    def _decode_kept(self, key: int, va: int, i: int, table_pa: int, steps: List[Step]):
        """:meth:`_decode`, remembering a table or leaf entry under ``key`` (faults are not kept)."""
        hit = self._decode(va, i, table_pa, steps)
        if hit.__class__ is not Walk:
            if len(self._entries) >= MEMO_LIMIT:
                self._entries.clear()
            self._entries[key] = hit  # type: ignore[assignment]
        return hit

    def _permissions_kept(self, rkey: Tuple[int, ...], level: int) -> Permissions:
        """The permissions of a path whose permission bits per level are ``rkey``, remembered."""
        if len(self._perms) >= MEMO_LIMIT:
            self._perms.clear()
        perms = self._perms[rkey] = self.format.permissions(rkey, level)
        return perms

    def _decode(self, va: int, i: int, table_pa: int, steps: List[Step]):
        """Read and decode the level-``i`` entry for ``va`` in the table at ``table_pa``.

        Returns ``(step, out, size, bits)`` for a table entry (``out`` the next
        table's pa, ``size`` 0) or a leaf (``out`` the frame's pa aligned to
        the leaf, ``size`` its bytes), else the faulting :class:`Walk`;
        ``bits`` is ``raw & fmt.permission_bits``, what the path's
        permissions are computed (and memoised) from.
        """
        fmt = self.format
        name, shift, imask, tsize, lsize = self._lv[i]
        try:
            table = self.cache.table(table_pa, tsize)
        except PhysicalReadError as err:
            return self._done(va, steps, None, None, None, Fault(
                name, TABLE_UNREADABLE, err.reason, table_pa=table_pa, depth=i))
        idx = (va >> shift) & imask
        raw = table[idx]
        entry_pa = table_pa + idx * 8
        kind = fmt.decode(raw, i)
        if kind == ENTRY_INVALID:
            inv = fmt.invalid(raw, i, va)
            detail = inv.detail
            if raw == 0 and self._zero_fill:
                detail += "; this source reads holes as zeros, so the table may be a hole"
            return self._done(va, steps + [Step(name, table_pa, idx, entry_pa, raw, INVALID, ())], None, None,
                              None, Fault(name, inv.reason, detail, table_pa, entry_pa, raw, idx, i))
        if kind == ENTRY_RESERVED:
            return self._done(va, steps + [Step(name, table_pa, idx, entry_pa, raw, INVALID, ())], None, None,
                              None, Fault(name, RESERVED, fmt.reserved_reason(raw, i), table_pa, entry_pa,
                                          raw, idx, i))
        leaf = kind == ENTRY_LEAF
        fkey = (raw & fmt.flag_bits) << 4 | i << 1 | leaf
        flags = self._flags.get(fkey)
        if flags is None:
            if len(self._flags) >= MEMO_LIMIT:
                self._flags.clear()
            flags = self._flags[fkey] = fmt.flags(raw, i, leaf)
        step = Step(name, table_pa, idx, entry_pa, raw, LEAF if leaf else TABLE, flags)
        single = self._batch_params[-1]
        out = (raw & single) if single else fmt.output_address(raw)
        pbits = raw & fmt.permission_bits
        return (step, out & ~(lsize - 1), lsize, pbits) if leaf else (step, out, 0, pbits)

    def _done(self, va, steps, pa, size, perms, fault) -> Walk:
        return Walk(va, self.format.name, self.root_pa, tuple(steps), pa, size, perms, fault)

    # -- batches ----------------------------------------------------------
    def translate_one(self, va: int) -> Tuple[Optional[int], Optional[int],
                                               Optional[Tuple[Optional[str], str]]]:
        """``(pa, page_size, None)`` of virtual ``va``, or ``(None, None, (level, reason))``.

        The answer :meth:`walk` gives, without the step record, through the
        batch memo: later addresses under a table already met cost one
        entry decode.  The fast path of :meth:`translate_many` and of
        virtual reads.
        """
        if self._live or self._epoch != self._epoch_of.epoch:
            self._current()
        ct = self._c_translate
        if ct is not None:
            got = ct(va)
            if got is not None:
                return got
        va &= MASK64
        hb = self._half_bit
        if hb is not None and va >> 63 != hb:
            return None, None, (None, NOT_PRESENT if self.format.in_range(va) else NON_CANONICAL)
        memo = self._memo
        order, lname, lshift, lmask, vmask, pmask, pvalue, res_last, page, single = self._batch_params
        for i, sp in order:
            node = memo[i].get(va >> sp)
            if node is not None:
                kind = node[0]
                if kind == "T":
                    raw = node[1][(va >> lshift) & lmask]
                    if raw & vmask:
                        if (raw & pmask) == pvalue and not raw & res_last:
                            out = (raw & single) if single else self.format.output_address(raw)
                            return (out & ~(page - 1)) | (va & (page - 1)), page, None
                    else:
                        return None, None, (lname, self.format.invalid(raw, self._nlev - 1, va).reason)
                elif kind == "L":
                    size = node[2]
                    return node[1] | (va & (size - 1)), size, None
                elif kind == "F" and self.format.in_range(va):
                    return None, None, node[1]
                break
        return self._batch_slow(va)

    def translate_many(self, vas: Iterable[int]) -> BatchResult:
        """Translate many virtual addresses, sharing table reads and upper levels.

        Returns the physical address and leaf size of each, or the level and
        reason of its fault, exactly as :meth:`walk` would give them
        (:meth:`translate_one` for each).
        """
        vas = tuple(v & MASK64 for v in vas)
        one = self.translate_one
        with collection_paused():
            if self._live or self._epoch != self._epoch_of.epoch:
                self._current()
            if self._accel is not None:
                # the compiled walk answers the plain case; the rest go through translate_one
                pas, sizes = self._accel.translate_many(vas)
                faults: List[Optional[Tuple[Optional[str], str]]] = [None] * len(vas)
                for i, pa in enumerate(pas):
                    if pa is None:
                        pas[i], sizes[i], faults[i] = one(vas[i])
                return BatchResult(vas, tuple(pas), tuple(sizes), tuple(faults))
            got = [one(va) for va in vas]
        return BatchResult(vas, tuple(g[0] for g in got), tuple(g[1] for g in got), tuple(g[2] for g in got))

    def read(self, va: int, size: int) -> Union[bytes, int, None]:
        """``size`` bytes at virtual ``va`` through the compiled walk and the source's view;
        for a read inside one mapped page the view does not hold, its physical address
        (the caller asks the source), or the source's PhysicalReadError raised where the
        view declares the source holds nothing there; None when that is not the plain
        case (the caller reads page by page)."""
        if self._live or self._epoch != self._epoch_of.epoch:
            self._current()
        accel = self._accel
        return accel.read(va, size) if accel is not None else None

    def _batch_slow(self, va: int):
        """Walk ``va`` fully and remember the tables and terminal entries it met."""
        walk = self.walk(va)
        memo, span = self._memo, self._span
        if sum(len(m) for m in memo) >= MEMO_LIMIT:
            for m in memo:
                m.clear()
        steps = walk.steps
        n = len(steps)
        last = self._nlev - 1
        if n == last + 1:
            # Only the last-level table is worth remembering: upper tables
            # are reached again only when the deeper memo misses anyway.
            table = self.cache.cached(steps[last].table_pa)
            if table is not None:
                memo[last].setdefault(va >> span[last], ("T", table))
        fault = walk.fault
        if fault is None:
            j = n - 1
            if j + 1 < self._nlev:
                size = walk.page_size
                memo[j + 1][va >> span[j + 1]] = ("L", walk.pa & ~(size - 1), size)
            return walk.pa, walk.page_size, None
        result = (fault.level, fault.reason)
        # An entry-level fault covers exactly the region of that entry; its
        # kind does not depend on the VA inside it except for swap entries,
        # which only occur at the last level (not memoised here).
        if fault.raw is not None and fault.reason != "swap" and n and n < self._nlev:
            memo[n][va >> span[n]] = ("F", result)
        return None, None, result

    def walks(self, vas: Sequence[int]) -> List[Walk]:
        """Full walk records for many addresses (sharing the table cache)."""
        return [self.walk(v) for v in vas]
