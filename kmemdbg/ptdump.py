"""A page-table dump from any source, like the kernel's ``mm/ptdump.c``.

:class:`LeafSweep` visits the kernel tables one whole table page at a time
(never one address at a time) and turns every table page into *runs*: maximal
stretches of consecutive leaves of the same level whose attribute bits and
inherited table attributes are equal and whose physical addresses follow one
rule.  Runs of neighbouring table pages are joined as the kernel's
``note_page()`` joins ranges.  Each table page is read once per sweep through
the kernel's :class:`~kmemdbg.memory.TableCache`; a table page met again at
the same level (the KASAN early shadow maps one PTE table thousands of times)
is decoded once and its runs are reused, and a table met again at another
level is a loop, reported as a :class:`~kmemdbg.walk.Fault` and not descended.

:func:`ptdump` turns runs into :class:`PtRange` values with decoded flags,
effective permissions, the layout region and the owner where known.

Addresses: ``start``/``end``/``va`` are kernel virtual addresses (``end``
exclusive); ``pa`` and ``table_pa`` physical; sizes in bytes.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .arch import arch_named
from .arch.base import MASK64, TABLE_FAN_OUT, TABLE_LOOP, PagingFormat, Permissions
from .memory import TableCache
from .tables import MAX_RESERVED_PER_TABLE, reserved_fault
from .tree import READ, Descend, fold, walk_range
from .walk import Fault

Progress = Callable[[str, float, float], None]

#: Runs a sweep repeats from shared tables it has already decoded (the ESPFIX area of
#: x86-64 repeats between 32768 and 65536) before a shared table met again becomes a fault range.
MAX_SHARED_RUNS = 1 << 17

# A run is a plain tuple, for speed over millions of leaves:
#   (start, end, pa, period, level, attr, tkey)
# ``start``/``end`` are VA *bits* (not sign-extended) while sweeping and
# virtual addresses once returned; ``pa`` is the physical address of
# ``start``; ``period`` is 0 when pa(va) = pa + (va - start) (linear) and the
# leaf size when every leaf maps the same frame (pa(va) = pa + (va - start) %
# period); ``attr`` the leaf's attribute bits; ``tkey`` an id for the
# attribute bits of the table entries above it (see LeafSweep.table_raws).
Run = Tuple[int, int, int, int, int, int, int]
START, END, PA, PERIOD, LEVEL, ATTR, TKEY = range(7)


# The sweep's faults are the one :class:`kmemdbg.walk.Fault` (``start``/``end`` the virtual
# range hidden, ``level`` the level name).


class LeafSweep:
    """Runs of leaves of the tree rooted at physical ``root_pa`` in format ``fmt``.

    ``cache`` is the table cache of the snapshot (share the kernel walker's,
    so a page already read for a walk is not read again).  ``high`` selects
    the arm64 TTBR1 half.  The sweep is a visitor of the one tree walk
    (:func:`kmemdbg.tree.walk_range`): its ``page`` hook decodes a whole table
    page with numpy and folds each subtree into runs.
    """

    def __init__(self, fmt: PagingFormat, cache: TableCache, root_pa: int, high: bool = True,
                 max_shared_runs: int = MAX_SHARED_RUNS) -> None:
        self.format = fmt
        self.max_shared_runs = max_shared_runs
        self._shared_left = max_shared_runs
        self.cache = cache
        self.root_pa = root_pa
        self.high = high
        self.arch = arch_named(fmt.arch)
        self.faults: List[Fault] = []
        self._tkeys: Dict[Tuple[int, ...], int] = {(): 0}
        self._tkey_list: List[Tuple[int, ...]] = [()]
        self._memo: Dict[Tuple[int, int, int], Tuple[int, List[Run]]] = {}
        self._level_of: Dict[int, int] = {}
        self.tables_decoded = 0
        self._perms: Dict[Tuple[int, int, int], Permissions] = {}
        n = len(fmt.levels)
        single = [f for f in fmt.address if f.shift == 0]
        others = 0
        for f in fmt.address:
            if f.shift != 0:
                others |= f.mask
        # bits that record use, not attributes: ranges are not split on them
        self._use = self.arch.ptdump_use_bits
        self._attr = []
        self._pa_mask = []
        for lv in fmt.levels:
            keep = 0
            for f in single:
                keep |= f.mask & ~(lv.leaf_size - 1)
            self._pa_mask.append(keep)
            # attribute bits: everything that is not an output-address bit of a leaf here
            self._attr.append(MASK64 & ~(keep | others) & ~self._use)
        self._others = [(f.mask, f.shift) for f in fmt.address if f.shift != 0]
        self._table_attr = MASK64 & ~(sum(f.mask for f in fmt.address))
        self._n = n

    # -- results ---------------------------------------------------------------
    @property
    def tables(self) -> Dict[int, int]:
        """Physical address -> level index of every table page the sweep has visited."""
        return self._level_of

    def table_raws(self, tkey: int) -> Tuple[int, ...]:
        """Attribute bits of the table entries above a run, root first."""
        return self._tkey_list[tkey]

    def permissions(self, run: Run) -> Permissions:
        """Effective permissions of a run's leaves (attributes of every level combined).

        They depend only on the attributes, so each combination is worked out once.
        """
        key = (run[TKEY], run[ATTR], run[LEVEL])
        got = self._perms.get(key)
        if got is None:
            got = self._perms[key] = self.format.permissions(self._tkey_list[run[TKEY]] + (run[ATTR],),
                                                             run[LEVEL])
        return got

    def va_of(self, bits_value: int) -> int:
        """Virtual address of table-index bits ``bits_value`` (sign extension or the half)."""
        return self.arch.va_of(self.format, bits_value, self.high)

    def default_range(self) -> Tuple[int, int]:
        """The kernel half as ``[start, end)`` virtual addresses."""
        return self.arch.kernel_range(self.format, self.high)

    def runs(self, va_start: Optional[int] = None, va_end: Optional[int] = None,
             progress: Optional[Progress] = None) -> List[Run]:
        """Runs covering virtual ``[va_start, va_end)`` (default: the kernel half), by VA.

        Returned runs carry virtual addresses, clipped to the range.  Faults
        met on the way are appended to :attr:`faults`.
        """
        lo, hi = self.default_range()
        va_start = lo if va_start is None else max(va_start, lo)
        va_end = hi if va_end is None else min(va_end, hi)
        if va_start >= va_end:
            return []
        fmt = self.format
        vbits_mask = (1 << fmt.va_bits) - 1
        b_lo, b_hi = va_start & vbits_mask, ((va_end - 1) & vbits_mask) + 1
        if self.root_pa % fmt.root_align:  # a short user root (arm64 LPA2 PGD) is smaller than a page
            self.faults.append(Fault(fmt.levels[0].name, "root-misaligned", "the root table is not aligned",
                                     self.root_pa, depth=0, start=va_start, end=va_end))
            return []
        self._progress = progress
        self._done = 0.0
        self._total = 0.0
        self._b_lo, self._b_hi = b_lo, b_hi
        out = fold(walk_range(fmt, self.cache, self.root_pa, self, self._level_of, 0))
        result = []
        half = 1 << (fmt.va_bits - 1) if self.arch.root_hole_index(fmt) >= 0 else None
        for r in out:
            s, e = max(r[START], b_lo), min(r[END], b_hi)
            if s >= e:
                continue
            pa = r[PA] + ((s - r[START]) % r[PERIOD] if r[PERIOD] else s - r[START])
            if half is not None and s < half < e:  # never happens: the root split keeps halves apart
                raise AssertionError("run crosses the canonical hole")
            vs = self.va_of(s)
            result.append((vs, vs + (e - s), pa, r[PERIOD], r[LEVEL], r[ATTR], r[TKEY]))
        if progress is not None:
            progress("page tables", self._total, self._total)
        return result

    # -- the sweep -------------------------------------------------------------
    def _tkey(self, parent: int, raw: int) -> int:
        key = self._tkey_list[parent] + (raw & self._table_attr,)
        got = self._tkeys.get(key)
        if got is None:
            got = self._tkeys[key] = len(self._tkey_list)
            self._tkey_list.append(key)
        return got

    def _fault(self, i: int, base: int, table_pa: int, reason: str, detail: str,
               raw: Optional[int] = None, span: Optional[int] = None) -> None:
        lv = self.format.levels[i]
        if span is None:
            span = lv.leaf_size << lv.bits
        start = self.va_of(base)
        self.faults.append(Fault(lv.name, reason, detail, table_pa, raw=raw, depth=i, start=start,
                                 end=start + span))

    # -- the visitor of the one tree walk (kmemdbg.tree.walk_range): it folds each
    # subtree into its runs; ``base`` is table-index bits, ``tkey`` the table attributes above
    def fault(self, table_pa: int, i: int, base: int, reason: str, tkey: int,
              other_level: Optional[int], detail: str):
        """A loop or an unreadable table: recorded in :attr:`faults`, no runs."""
        yield from ()
        if reason == TABLE_LOOP:
            detail = f"table pa 0x{table_pa:x} is also used at {self.format.levels[other_level].name}"
        self._fault(i, base, table_pa, reason, detail)
        return []

    def again(self, table_pa: int, i: int, base: int, tkey: int):
        """A shared table met again: its memoised runs moved to ``base``, or READ."""
        yield from ()
        lv = self.format.levels[i]
        if not (self._b_lo <= base and base + (lv.leaf_size << lv.bits) <= self._b_hi):
            return READ     # only a table the range covers whole has memoised runs
        got = self._memo.get((table_pa, i, tkey))
        if got is None:
            return READ
        old_base, runs = got
        delta = base - old_base
        if not delta:
            return runs
        if len(runs) > self._shared_left:
            # tables that fan out: count what the shared table holds, do not repeat it
            self._shared_left = 0
            self._fault(i, base, table_pa, TABLE_FAN_OUT,
                        f"table pa 0x{table_pa:x} at {lv.name} is reached again here; its "
                        f"{len(runs)} ranges are counted, not repeated (more than "
                        f"{self.max_shared_runs} ranges from shared tables)")
            return []
        self._shared_left -= len(runs)
        return [(r[0] + delta, r[1] + delta) + r[2:] for r in runs]

    def page(self, table_pa: int, i: int, base: int, table: memoryview, tkey: int, descend: Descend):
        """Decode a whole table page at once and merge its leaf runs with its children's."""
        fmt = self.format
        lv = fmt.levels[i]
        span = lv.leaf_size
        full_span = span << lv.bits
        b_lo, b_hi = self._b_lo, self._b_hi
        covered = b_lo <= base and base + full_span <= b_hi
        key = (table_pa, i, tkey)
        self.tables_decoded += 1
        nent = 1 << lv.bits
        e = np.frombuffer(table, dtype=np.uint64, count=nent)
        valid = (e & np.uint64(fmt.valid_mask)) != 0
        if not valid.any():
            if covered:
                self._memo[key] = (base, [])
            return []
        _, good_leaf, is_table, bad = fmt.decode_table(e, i)
        if bad.any():
            for idx in np.flatnonzero(bad)[:MAX_RESERVED_PER_TABLE].tolist():
                va = self.va_of(base + (idx << lv.shift))
                self.faults.append(reserved_fault(fmt, i, va, table_pa, idx, int(e[idx])))
        # restrict to the entries the range needs
        first = 0 if b_lo <= base else (b_lo - base) >> lv.shift
        stop = nent if base + full_span <= b_hi else min(nent, -(-(b_hi - base) // span))
        leaf_runs = self._leaf_runs(e, good_leaf, i, base, tkey, first, stop)
        tables = np.flatnonzero(is_table[first:stop]).tolist()
        out: List[Run] = []
        if not tables:
            out = leaf_runs
        else:
            li = 0
            half_idx = self.arch.root_hole_index(fmt) if i == 0 else -1
            child_tkey_cache: Dict[int, int] = {}
            if i == 0:
                self._total = float(len(tables))
            for t in tables:
                idx = t + first
                cbase = base + (idx << lv.shift)
                while li < len(leaf_runs) and leaf_runs[li][START] < cbase:
                    _push(out, leaf_runs[li])
                    li += 1
                raw = int(e[idx])
                tattr = raw & self._table_attr
                ck = child_tkey_cache.get(tattr)
                if ck is None:
                    ck = child_tkey_cache[tattr] = self._tkey(tkey, raw)
                child = yield from descend(fmt.output_address(raw), i + 1, cbase, ck)
                if idx == half_idx:
                    out.extend(child)      # the canonical hole: never join across it
                else:
                    for r in child:
                        _push(out, r)
                if self._progress is not None and i <= 1:
                    self._tick(i, len(tables))
            while li < len(leaf_runs):
                _push(out, leaf_runs[li])
                li += 1
        if covered:
            self._memo[key] = (base, out)
        return out

    def _tick(self, level: int, siblings: int) -> None:
        # progress in root entries: a root entry is done, or 1/siblings of one
        if level == 0:
            self._done = float(int(self._done + 0.999999))
        else:
            self._done += 1.0 / siblings
        self._progress("page tables", min(self._done, self._total), self._total)

    def _leaf_runs(self, e, good_leaf, i: int, base: int, tkey: int, first: int, stop: int) -> List[Run]:
        li = np.flatnonzero(good_leaf[first:stop])
        if not li.size:
            return []
        li = li + first
        lv = self.format.levels[i]
        span = lv.leaf_size
        ent = e[li]
        pa = ent & np.uint64(self._pa_mask[i])
        for mask, shift in self._others:
            part = ent & np.uint64(mask)
            pa |= (part << np.uint64(shift)) if shift > 0 else (part >> np.uint64(-shift))
        attr = ent & np.uint64(self._attr[i])
        n = li.size
        if n == 1:
            s = base + (int(li[0]) << lv.shift)
            return [(s, s + span, int(pa[0]), 0, i, int(attr[0]), tkey)]
        adjacent = np.diff(li) == 1
        same_attr = attr[1:] == attr[:-1]
        d = pa[1:] - pa[:-1]
        lin = d == np.uint64(span)
        rep = d == 0
        cont = adjacent & same_attr & (lin | rep)
        kind = np.where(lin, 1, 2)
        brk = np.empty(n, dtype=bool)
        brk[0] = True
        brk[1:] = ~cont
        if n > 2:
            brk[2:] |= cont[:-1] & cont[1:] & (kind[1:] != kind[:-1])
        starts = np.flatnonzero(brk)
        ends = np.append(starts[1:], n) - 1
        s_idx = li[starts].tolist()
        e_idx = li[ends].tolist()
        pas = pa[starts].tolist()
        attrs = attr[starts].tolist()
        # a run of two or more leaves is periodic when its first step repeats the frame
        nxt = np.minimum(starts + 1, n - 1)
        periodic = ((pa[nxt] == pa[starts]) & (ends > starts)).tolist()
        shift = lv.shift
        out = []
        for a, b, p, at, per in zip(s_idx, e_idx, pas, attrs, periodic):
            out.append((base + (a << shift), base + ((b + 1) << shift), p, span if per else 0, i, at, tkey))
        return out


def _push(out: List[Run], r: Run) -> None:
    """Append run ``r``, joining it to the last run when they continue each other."""
    if out:
        p = out[-1]
        if p[END] == r[START] and p[LEVEL] == r[LEVEL] and p[ATTR] == r[ATTR] and p[TKEY] == r[TKEY] \
                and p[PERIOD] >= 0 and r[PERIOD] >= 0:
            plen = p[END] - p[START]
            if not p[PERIOD] and not r[PERIOD] and r[PA] == p[PA] + plen:
                out[-1] = (p[START], r[END], p[PA], 0) + p[4:]
                return
            # a linear run of n bytes also repeats with period n
            pp = p[PERIOD] or plen
            rp = r[PERIOD] or (r[END] - r[START])
            if pp == rp and p[PA] == r[PA] and plen % pp == 0:
                out[-1] = (p[START], r[END], p[PA], pp) + p[4:]
                return
    out.append(r)


def join_ignoring_pa(runs: Iterable[Run]) -> List[Run]:
    """Join neighbouring runs of equal level and attributes whatever their frames.

    A join that no arithmetic rule describes keeps the physical address of
    its first byte and gets period -1 ("mixed": the kernel's ptdump text view).
    """
    out: List[Run] = []
    for r in runs:
        if out:
            p = out[-1]
            if p[END] == r[START] and p[LEVEL] == r[LEVEL] and p[ATTR] == r[ATTR] and p[TKEY] == r[TKEY]:
                tmp = [p]
                _push(tmp, r)
                out[-1] = tmp[0] if len(tmp) == 1 else (p[START], r[END], p[PA], -1) + p[4:]
                continue
        out.append(r)
    return out


@dataclass(frozen=True)
class PtRange:
    """One range of a page-table dump.

    ``[start, end)`` is virtual; ``pa`` is the physical address of ``start``.
    ``pa_rule`` says how the rest follows: ``"linear"`` (pa of ``va`` is
    ``pa + (va - start)``), ``"repeat"`` (every leaf maps the same
    ``page_size`` bytes at ``pa``, as the KASAN early shadow does) or
    ``"mixed"`` (text view only: frames not contiguous); for "repeat",
    ``pa_period`` is the length in bytes after which frames repeat (0
    otherwise).  ``page_size`` is
    the leaf size in bytes, ``level`` its level name, ``flags`` the decoded
    leaf bits without use bits (accessed/dirty), ``table_flags`` the attribute
    bits of the table entries above it that restrict access, ``permissions``
    the effective rights, ``region`` the layout region, ``owner`` what owns
    the range (vmap area caller, module section, image section) or None, as
    one line of text, and ``owner_record`` the owner index's record of it
    (:class:`kmemdbg.linux.owners.Owner`).  ``stride`` is 0 for a range
    mapped throughout; a range of ``stride`` bytes (JSON view only) maps one
    leaf of ``page_size`` bytes at ``start``, ``start + stride``, ...
    (``pa_rule`` "repeat": each maps the same frame, as the ESPFIX area does)
    and nothing between them.
    """

    start: int
    end: int
    pa: int
    pa_rule: str
    page_size: int
    level: str
    flags: Tuple[str, ...]
    table_flags: Tuple[str, ...]
    permissions: Permissions
    region: object
    owner: Optional[str]
    pa_period: int = 0
    owner_record: Optional[object] = None
    stride: int = 0

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def pages(self) -> int:
        """Leaves in the range (mapped pages of ``page_size`` bytes)."""
        if self.stride:
            return (self.size - self.page_size) // self.stride + 1
        return self.size // self.page_size


@dataclass(frozen=True)
class PtFault:
    """A stretch of a page-table dump that the tables do not describe: a fault range.

    ``[start, end)`` is virtual; ``reason`` is table-unreadable, table-loop,
    reserved-bits, table-fan-out or root-misaligned; ``level`` the level of
    the table at fault, ``table_pa`` its physical address, ``raw`` the entry
    at fault where there is one, ``count`` how many faults were joined into
    this range (neighbours of one reason and level), ``region`` the layout
    region of ``start``.
    """

    start: int
    end: int
    level: str
    reason: str
    detail: str
    table_pa: int
    raw: Optional[int]
    region: object
    count: int = 1

    @property
    def size(self) -> int:
        return self.end - self.start


def fault_ranges(faults: Sequence[Fault], layout, start: Optional[int] = None,
                 end: Optional[int] = None) -> List[PtFault]:
    """The sweep's faults as VA-ordered ranges clipped to ``[start, end)``; neighbouring
    faults of one reason and level are joined (their count kept)."""
    out: List[PtFault] = []
    lo, hi = start if start is not None else 0, end if end is not None else 1 << 64
    for f in sorted(faults, key=lambda f: (f.start, f.end)):
        s, e = max(f.start, lo), min(f.end, hi)
        if s >= e:
            continue
        if out and out[-1].end >= s and out[-1].reason == f.reason and out[-1].level == f.level:
            p = out[-1]
            out[-1] = PtFault(p.start, max(p.end, e), p.level, p.reason, p.detail, p.table_pa, p.raw,
                              p.region, p.count + 1)
            continue
        out.append(PtFault(s, e, f.level, f.reason, f.detail, f.table_pa, f.raw, layout.region_of(s)))
    return out


def table_flag_names(fmt: PagingFormat, raws: Sequence[int]) -> Tuple[str, ...]:
    """Restrictions the table entries above a leaf impose, as flag names
    (the architecture's ``ptdump_table_flags``)."""
    return arch_named(fmt.arch).table_flag_names(raws)


class Owners:
    """Names what owns kernel virtual addresses: the kernel's one owner index
    (:class:`kmemdbg.linux.owners.OwnerIndex`: image sections, modules, vmap areas).

    ``owner(va)`` returns ``(name, end)``: the owner's label and the virtual
    end (exclusive) of its range, or ``(None, end of the gap)``.
    """

    def __init__(self, kernel) -> None:
        self.index = kernel.owners

    @property
    def errors(self) -> List[str]:
        """Sources that could not be read, as ``what: reason`` lines."""
        return [str(u) for u in self.index.unavailable]

    def owner(self, va: int) -> Tuple[Optional[str], int]:
        got, end = self.index.owner(va)
        return (got.label if got is not None else None), end

    def record(self, va: int) -> Tuple[Optional[object], int]:
        """``(Owner or None, end)``: :meth:`owner` with the index's record instead of its label."""
        return self.index.owner(va)


#: Region kinds with no owner lookups (one owner: the kernel's own map).
_NO_OWNER = frozenset({"linear", "vmemmap", "kasan-shadow", "user", "non-canonical"})


def split_by_regions(runs: List[Run], layout) -> List[Tuple[Run, object]]:
    """Cut runs at region boundaries of ``layout``; each piece with its region."""
    points = sorted({r.start for r in layout.regions} | {r.end for r in layout.regions})
    out = []
    for r in runs:
        s, e = r[START], r[END]
        i = bisect.bisect_right(points, s)
        while s < e:
            cut = points[i] if i < len(points) and points[i] < e else e
            piece = _slice(r, s, cut)
            out.append((piece, layout.region_of(s)))
            s = cut
            i += 1
    return out


def _slice(r: Run, s: int, e: int) -> Run:
    if s == r[START] and e == r[END]:
        return r
    per = r[PERIOD]
    if per > 0:
        pa = r[PA] + (s - r[START]) % per
    elif per == 0:
        pa = r[PA] + (s - r[START])
    else:
        pa = r[PA] if s == r[START] else -1
    return (s, e, pa, per) + r[4:]


def check_range(sweep: "LeafSweep", start: Optional[int], end: Optional[int]) -> None:
    """Refuse a range that holds nothing these tables could map: reversed or empty, or outside
    the half they translate (``sweep.default_range()``).  Raises AddressError."""
    from .errors import AddressError

    if start is not None and end is not None and start >= end:
        raise AddressError(f"empty range: the start 0x{start:x} is not below the end 0x{end:x} "
                           "(the end is exclusive)")
    lo, hi = sweep.default_range()
    if (start is not None and start >= hi) or (end is not None and end <= lo):
        raise AddressError(f"the range {'' if start is None else f'0x{start:x}'}-"
                           f"{'' if end is None else f'0x{end:x}'} is outside the kernel half "
                           f"0x{lo:x}-0x{(hi - 1) & MASK64:x} that these tables translate")


#: Leaves at a constant stride that :func:`join_strided` makes one range (fewer stay apart).
MIN_STRIDED = 3


def _same_but_place(a: PtRange, b: PtRange) -> bool:
    return (a.pa == b.pa and a.level == b.level and a.page_size == b.page_size and a.flags == b.flags
            and a.table_flags == b.table_flags and a.permissions == b.permissions and a.region == b.region
            and a.owner == b.owner and a.pa_rule == b.pa_rule)


def join_strided(ranges: List[PtRange]) -> List[PtRange]:
    """Join single leaves that map the same frame with equal attributes at a constant stride
    (the ESPFIX area: one page every 64 KiB, 65536 times) into one range with ``stride`` set
    and ``pa_rule`` "repeat"; at least MIN_STRIDED leaves, else they stay as they are."""
    out: List[PtRange] = []
    i, n = 0, len(ranges)
    while i < n:
        r = ranges[i]
        j = i + 1
        if isinstance(r, PtRange) and r.size == r.page_size and r.stride == 0 and j < n:
            step = ranges[j].start - r.start
            while (j < n and isinstance(ranges[j], PtRange) and ranges[j].size == r.page_size
                   and ranges[j].stride == 0
                   and ranges[j].start - ranges[j - 1].start == step and step > r.page_size
                   and _same_but_place(r, ranges[j])):
                j += 1
        if j - i >= MIN_STRIDED:
            last = ranges[j - 1]
            out.append(PtRange(r.start, last.end, r.pa, "repeat", r.page_size, r.level, r.flags, r.table_flags,
                               r.permissions, r.region, r.owner, r.page_size, r.owner_record, step))
            i = j
        else:
            out.append(r)
            i += 1
    return out


def ptdump(kernel, start: Optional[int] = None, end: Optional[int] = None, *,
           split_pa: bool = False, owners: bool = True, progress: Optional[Progress] = None,
           sweep: Optional[LeafSweep] = None, faults: bool = False) -> List[PtRange]:
    """The page-table dump of ``kernel`` over virtual ``[start, end)`` (default: the kernel half).

    Neighbouring leaves of the same level, attributes and region are merged
    into one :class:`PtRange`.  With ``split_pa`` a range is also cut where
    its physical addresses stop following one rule, so that ``pa_rule`` is
    never ``"mixed"`` (the JSON view).  ``owners=False`` skips the module and
    vmap-area lookups.  Reads each table page at most once (through the
    kernel's table cache); ``progress(what, done, total)`` is called as the
    sweep advances.  With ``faults`` the tables' faults come in the same list
    as :class:`PtFault` ranges, in VA order (the sweep's own ``faults`` list
    has them either way).
    """
    fmt = kernel.tables.format
    sw = sweep or LeafSweep(fmt, kernel.walker.cache, kernel.tables.root_pa)
    check_range(sw, start, end)
    # flag names of the bits that record use (the arch's ptdump_use_bits): not printed
    use_flags = sw.arch.ptdump_use_flags
    runs = sw.runs(start, end, progress)
    if not split_pa:
        runs = join_ignoring_pa(runs)
    own = Owners(kernel) if owners else None
    out: List[PtRange] = []
    names: Dict[Tuple[int, int, int], Tuple[Tuple[str, ...], Tuple[str, ...], Permissions]] = {}
    for piece, region in split_by_regions(runs, kernel.layout):
        pieces = [(piece, None)]
        if own is not None and region.kind not in _NO_OWNER:
            pieces = []
            s = piece[START]
            while s < piece[END]:
                rec, stop = own.record(s)
                cut = min(stop, piece[END]) if stop > s else piece[END]
                pieces.append((_slice(piece, s, cut), rec))
                s = cut
        for p, rec in pieces:
            key = (p[LEVEL], p[ATTR], p[TKEY])
            got = names.get(key)
            if got is None:
                leaf_raw = p[ATTR] | sw.arch.ptdump_leaf_bits
                flags = tuple(f for f in fmt.flags(leaf_raw, p[LEVEL], True) if f not in use_flags)
                got = names[key] = (flags, table_flag_names(fmt, sw.table_raws(p[TKEY])),
                                    sw.permissions(p))
            rule = "linear" if p[PERIOD] == 0 else "repeat" if p[PERIOD] > 0 else "mixed"
            out.append(PtRange(p[START], p[END], p[PA], rule, fmt.levels[p[LEVEL]].leaf_size,
                               fmt.levels[p[LEVEL]].name, got[0], got[1], got[2], region,
                               rec.label if rec is not None else None, max(p[PERIOD], 0), rec))
    if faults and sw.faults:
        out += fault_ranges(sw.faults, kernel.layout, start, end)
        out.sort(key=lambda r: (r.start, isinstance(r, PtFault)))
    return out


__all__ = ["LeafSweep", "Fault", "PtRange", "PtFault", "fault_ranges", "Owners", "ptdump", "join_strided",
           "join_ignoring_pa", "MAX_SHARED_RUNS",
           "split_by_regions", "table_flag_names"]
