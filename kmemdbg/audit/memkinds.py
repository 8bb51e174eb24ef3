"""Every kind of kernel memory that can hold a stored value, each physical page once.

The misuse scan reads words from these kinds, in this order of precedence
(a frame claimed by an earlier kind is not scanned again by a later one):

``image``
    the kernel image's ``.data``, ``.data..ro_after_init`` and ``.bss``
    (symbols ``_sdata``/``_edata``, ``__start_ro_after_init``/
    ``__end_ro_after_init``, ``__bss_start``/``__bss_stop``).
``module``
    every module's data, bss and ro_after_init ranges (its text and rodata
    cannot be written after load).
``percpu``
    every CPU's unit of the first per-cpu chunk: ``__per_cpu_start +
    __per_cpu_offset[cpu]`` for ``pcpu_unit_size`` bytes (static variables,
    the reserved module area and the first chunk's dynamic area); further
    chunks are vmalloc areas (``pcpu_get_vm_areas``) and count as per-cpu
    there.
``stack`` / ``vmalloc``
    every RAM frame mapped in the vmalloc and module regions that is not
    module code: vmalloc'd and vmapped buffers, vmapped task stacks.
``slab``
    every slab page (head and tail pages of compound slabs).
``page``
    every other page the page allocator handed out to the kernel, decided
    from its ``struct page``: reference count above 0, no page type (not
    buddy, page table, offline, guard, zsmalloc...), not ``PG_reserved``
    (memblock memory: the image, the struct page array, the first per-cpu
    chunk), not slab, and ``mapping`` NULL (not an anonymous or page-cache
    page).  Tail pages follow their head (``compound_head | 1``).

Units: ``pa`` physical, ``va`` virtual (both byte addresses); sizes in bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
import bisect
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import KmemdbgError
from ..linux.page import page_offset
from ..linux.percpu import nr_cpu_ids, per_cpu_offset, per_cpu_ptr
from ..linux.reader import read_uint
from ..linux.slab import SlabMarks, is_slab_page

KINDS = ("image", "module", "percpu", "stack", "vmalloc", "slab", "page")
#: Struct pages read per chunk of the struct page sweep.
PAGES_PER_CHUNK = 1 << 14


@dataclass(frozen=True)
class Span:
    """``size`` bytes of kind ``kind`` at physical ``pa`` (virtual ``va`` when known).

    ``label`` names the owner (``kernel .data``, ``module NAME data``,
    ``per-cpu area of cpu N``, the vmap area's caller, ``slab``, ``page``);
    ``head_pa`` is the slab's head page (slab spans only); ``base_va`` the
    virtual start of the owning range (image section, module range, vmap
    area, per-cpu unit) for offsets in owner names.
    """

    kind: str
    pa: int
    va: Optional[int]
    size: int
    label: str
    head_pa: Optional[int] = None
    base_va: Optional[int] = None


@dataclass
class Plan:
    """The spans to scan and what could not be covered, per kind (sentences)."""

    spans: List[Span]
    missing: Dict[str, List[str]]

    def bytes_of(self, kind: str) -> int:
        return sum(s.size for s in self.spans if s.kind == kind)


class Claimed:
    """Physical frames already claimed by a kind, as sorted disjoint ``[start, end)`` byte
    intervals (a set of 16M frame numbers would cost a gigabyte for 64 GiB)."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.starts: List[int] = []
        self.ends: List[int] = []

    def add(self, lo: int, hi: int) -> None:
        """Claim the frames of physical ``[lo, hi)`` (widened to frame bounds)."""
        lo, hi = lo - lo % self.page, -(-hi // self.page) * self.page
        i = bisect.bisect_left(self.ends, lo)          # first interval that ends at or after lo
        j = bisect.bisect_right(self.starts, hi)        # intervals starting at or before hi
        if i < j:
            lo, hi = min(lo, self.starts[i]), max(hi, self.ends[j - 1])
        self.starts[i:j] = [lo]
        self.ends[i:j] = [hi]

    def add_frames(self, frames) -> None:
        run_lo = run_hi = None
        for f in sorted(frames):
            if run_hi is not None and f <= run_hi:
                run_hi = max(run_hi, f + self.page)
                continue
            if run_lo is not None:
                self.add(run_lo, run_hi)
            run_lo, run_hi = f, f + self.page
        if run_lo is not None:
            self.add(run_lo, run_hi)

    def __contains__(self, pa: int) -> bool:
        i = bisect.bisect_right(self.starts, pa) - 1
        return i >= 0 and pa < self.ends[i]

    def overlaps(self, lo: int, hi: int) -> List[Tuple[int, int]]:
        """Claimed intervals meeting ``[lo, hi)``, clipped to it, in order."""
        i = bisect.bisect_right(self.ends, lo)
        out = []
        while i < len(self.starts) and self.starts[i] < hi:
            out.append((max(lo, self.starts[i]), min(hi, self.ends[i])))
            i += 1
        return out


class _Planner:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.k = ctx.kernel
        self.page = ctx.page_size
        self.seen = Claimed(self.page)
        self.spans: List[Span] = []
        self.missing: Dict[str, List[str]] = {k: [] for k in KINDS}

    def miss(self, kind: str, why: str) -> None:
        self.missing[kind].append(why)

    # -- virtually described ranges (image, module, per-cpu) --------------------------
    def virtual(self, kind: str, start: int, end: int, label: str) -> None:
        """Add virtual ``[start, end)`` through the kernel tables, leaving out frames already claimed."""
        covered = 0
        runs: List[List[int]] = []            # [va, pa, size] of physically contiguous stretches
        for p in self.ctx.pieces_in(start, end):
            lo, hi = max(start, p.start), min(end, p.end)
            covered += hi - lo
            if p.period:
                va = lo
                while va < hi:        # a repeating piece: frame by frame
                    nxt = min(hi, va - va % self.page + self.page)
                    runs.append([va, p.pa_at(va), nxt - va])
                    va = nxt
            elif runs and runs[-1][0] + runs[-1][2] == lo and runs[-1][1] + runs[-1][2] == p.pa_at(lo):
                runs[-1][2] += hi - lo    # pieces cut at a region bound inside a page (per-cpu)
            else:
                runs.append([lo, p.pa_at(lo), hi - lo])
        for va, pa, size in runs:
            self.run(kind, pa, va, size, label, start)
        if end - start > covered:
            self.miss(kind, f"{end - start - covered} bytes of {label} are not mapped in the kernel tables")

    def run(self, kind: str, pa: int, va: Optional[int], size: int, label: str, base_va: Optional[int],
            head_pa: Optional[int] = None) -> None:
        """Add physically contiguous ``[pa, pa + size)``, split around frames already claimed."""
        page = self.page
        first, end = pa - pa % page, -(-(pa + size) // page) * page
        cut = pa
        for lo, hi in self.seen.overlaps(first, end):
            if lo > cut:
                self._span(kind, cut, va, lo - cut, label, base_va, head_pa, pa)
            cut = max(cut, min(pa + size, hi))
        if cut < pa + size:
            self._span(kind, cut, va, pa + size - cut, label, base_va, head_pa, pa)
        self.seen.add(first, end)

    def _span(self, kind, start_pa, va0, size, label, base_va, head_pa, pa0) -> None:
        va = None if va0 is None else va0 + (start_pa - pa0)
        self._add(Span(kind, start_pa, va, size, label, head_pa, base_va))

    def _add(self, span: Span) -> None:
        if self.spans and _joins(self.spans[-1], span):
            last = self.spans[-1]
            self.spans[-1] = Span(last.kind, last.pa, last.va, last.size + span.size, last.label,
                                  last.head_pa, last.base_va)
        else:
            self.spans.append(span)

    def static(self) -> None:
        """Image and module data ranges (:meth:`AuditContext.static_data`)."""
        ranges = self.ctx.static_data()
        if not any(not label.startswith("module ") for _s, _e, label in ranges):
            self.miss("image", "no image data symbols (_sdata/_edata, __bss_start/__bss_stop)")
        if not any(label.startswith("module ") for _s, _e, label in ranges):
            why = "; ".join(n for n in self.ctx.notes if "module" in n) or \
                "no module list (no type information or symbols)"
            self.miss("module", why)
        for s, e, label in ranges:
            self.virtual("module" if label.startswith("module ") else "image", s, e, label)

    def percpu(self) -> None:
        k, sym = self.k, self.k.symbols.address
        offsets, start, nr = sym("__per_cpu_offset"), sym("__per_cpu_start"), sym("nr_cpu_ids")
        unit = sym("pcpu_unit_size")
        if None in (offsets, start, nr):
            self.miss("percpu", "no __per_cpu_offset/__per_cpu_start/nr_cpu_ids symbols")
            return
        try:
            count = nr_cpu_ids(k.read, nr)
            size = int.from_bytes(k.read(unit, 4), "little") if unit is not None else 0
        except KmemdbgError as err:
            self.miss("percpu", f"nr_cpu_ids/pcpu_unit_size unreadable: {_line(err)}")
            return
        if not size:
            end = sym("__per_cpu_end")
            size = (end - start) if end is not None and end > start else 0
            self.miss("percpu", "no pcpu_unit_size: only the static per-cpu variables were scanned")
        if not 0 < count <= 8192 or not 0 < size <= 1 << 30:
            self.miss("percpu", f"implausible nr_cpu_ids {count} or unit size {size}")
            return
        for cpu in range(count):
            try:
                off = per_cpu_offset(k.read, offsets, cpu)
            except KmemdbgError as err:
                self.miss("percpu", f"__per_cpu_offset[{cpu}] unreadable: {_line(err)}")
                continue
            base = per_cpu_ptr(start, off)
            self.virtual("percpu", base, base + size, f"per-cpu area of cpu {cpu}")

    # -- the vmalloc and module regions ------------------------------------------------
    def mapped(self, in_ram) -> None:
        ctx, page = self.ctx, self.page
        try:
            areas = sorted(ctx.areas(), key=lambda a: a.start)
        except KmemdbgError as err:
            areas = []
            self.miss("vmalloc", f"vmap areas unknown ({_line(err)}): pages are scanned without owners")
        starts = [a.start for a in areas]
        stacks = task_stacks(ctx)
        if not stacks:
            why = next((n for n in ctx.notes if n.startswith("task stacks unknown")), "no task has a stack")
            self.miss("stack", f"{why}: vmapped task stacks are scanned, but as vmalloc areas")
        modules = sorted((o.start, o.end) for o in ctx.module_owners())
        mstarts = [m[0] for m in modules]

        for p in ctx.pieces:
            if p.region.kind not in ("vmalloc", "module"):
                continue
            va = p.start
            while va < p.end:
                pa = p.pa_at(va)
                frame = pa - pa % page
                nxt = va - va % page + page
                i = bisect.bisect_right(mstarts, va) - 1
                if i >= 0 and va < modules[i][1]:
                    va = nxt        # module memory: its data ranges were planned already
                    continue
                if frame in self.seen or not in_ram(frame):
                    va = nxt
                    continue
                j = bisect.bisect_right(starts, va) - 1
                area = areas[j] if j >= 0 and va < areas[j].end else None
                if area is None:
                    kind, label, base = "vmalloc", "vmap (no vm_struct: vm_map_ram or a vmap block)", None
                elif area.purpose == "stack" or area.start in stacks:
                    task = stacks.get(area.start)
                    kind, base = "stack", area.start
                    label = f"stack of {task}" if task else f"stack ({area.name})"
                elif "pcpu_get_vm_areas" in area.name or "pcpu_create_chunk" in area.name:
                    kind, label, base = "percpu", f"per-cpu chunk ({area.name})", area.start
                else:
                    kind, label, base = "vmalloc", area.name, area.start
                self.run(kind, frame, va - va % page, page, label, base)
                va = nxt

    # -- the struct page sweep: slab and page-allocator pages ---------------------------
        if stacks and areas and not set(stacks) & {a.start for a in areas}:
            self.miss("stack", f"no task's stack pointer (of {len(stacks)}) starts a vmap area: "
                      "vmapped task stacks are scanned, but as vmalloc areas")

    def struct_pages(self, ram) -> None:
        for start_pfn, kinds, heads in page_kinds(self.ctx, ram, self.missing):
            page = self.page
            for i in np.flatnonzero(kinds).tolist():
                pfn = start_pfn + i
                frame = pfn * page
                if frame in self.seen:
                    continue
                kind = "slab" if kinds[i] == SLAB else "page"
                head = int(heads[i]) * page
                self.seen.add(frame, frame + page)
                self._add(Span(kind, frame, self.ctx.linear_va(frame), page, kind,
                               head if kind == "slab" else None))


def task_stacks(ctx) -> Dict[int, str]:
    """Virtual stack base (``task_struct.stack``) -> "pid N (comm)" for every task; {} without types."""
    memo = ctx.__dict__.get("_task_stacks")
    if memo is None:
        memo = {}
        objs = ctx.kernel.objects()
        try:
            off = objs.btf.offset("task_struct", "stack")
            for task in ctx.kernel.tasks():
                memo[read_uint(ctx.kernel.read, task.task_va + off, 8)] = f"pid {task.pid} ({task.comm})"
        except (KmemdbgError, AttributeError) as err:
            ctx.notes.append(f"task stacks unknown ({_line(err)})")
        ctx.__dict__["_task_stacks"] = memo
    return memo


def _joins(a: Span, b: Span) -> bool:
    return (a.kind == b.kind and a.label == b.label and a.head_pa == b.head_pa and a.pa + a.size == b.pa
            and (a.va is None) == (b.va is None) and (a.va is None or a.va + a.size == b.va)
            and a.base_va == b.base_va)


def _line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


SLAB, PAGE = 1, 2


def page_kinds(ctx, ram, missing: Dict[str, List[str]]) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """(first pfn, kind per frame (0 skip, SLAB, PAGE), head pfn per frame) for RAM, by chunks.

    Reads ``struct page`` through vmemmap with VMCOREINFO's offsets; the
    page-type encoding is told apart by ``PAGE_BUDDY_MAPCOUNT_VALUE`` (6.9+:
    the type in the top byte of ``_mapcount``; before: a cleared bit under
    0xf0000000).  ``PG_reserved`` comes from BTF's ``enum pageflags``.
    """
    k, info, page = ctx.kernel, ctx.kernel.info, ctx.page_size
    pages = ctx.vmemmap()
    vmemmap, size = pages.vmemmap_va, pages.entry_bytes
    if vmemmap is None:
        for kind in ("slab", "page"):
            missing[kind].append("no struct page array (vmemmap base unknown)")
        return
    off = {m: page_offset(info, m) for m in ("flags", "_refcount", "mapping", "_mapcount", "compound_head")}
    if off["flags"] is None:
        off["flags"] = 0
    if off["compound_head"] is None:
        off["compound_head"] = 8
    marks = SlabMarks.from_vmcoreinfo(info)
    buddy = info.number("PAGE_BUDDY_MAPCOUNT_VALUE")
    if not marks.known:
        missing["slab"].append("VMCOREINFO has neither PAGE_SLAB_MAPCOUNT_VALUE nor PG_slab")
    reserved = _pageflag(k, "PG_reserved")
    usable = off["_refcount"] is not None and off["mapping"] is not None and off["_mapcount"] is not None
    if not usable:
        missing["page"].append("VMCOREINFO lacks OFFSET(page._refcount/mapping/_mapcount)")
    if reserved is None:
        missing["page"].append("PG_reserved unknown (no BTF enum pageflags): memblock pages not told apart")
        usable = False
    top_byte = buddy is not None and buddy & 0x00FFFFFF == 0
    unread = 0
    for lo, hi in ram:
        pfn, end_pfn = -(-lo // page), hi // page
        while pfn < end_pfn:
            n = min(PAGES_PER_CHUNK, end_pfn - pfn)
            raw, present = _read_struct_pages(ctx, vmemmap + pfn * size, n, size)
            unread += n - int(present.sum())
            arr = np.frombuffer(raw, dtype=np.uint8).reshape(n, size)
            flags = _u64(arr, off["flags"])
            heads_raw = _u64(arr, off["compound_head"])
            tail = ((heads_raw & np.uint64(1)) == 1) & present
            head_pfn = np.arange(pfn, pfn + n, dtype=np.uint64)
            if tail.any():
                hv = heads_raw[tail] - np.uint64(1)
                ok = hv >= np.uint64(vmemmap)
                hp = np.where(ok, (hv - np.uint64(vmemmap)) // np.uint64(size), np.uint64(0))
                head_pfn[tail] = hp
            kinds = np.zeros(n, dtype=np.uint8)
            ptype = _u32(arr, off["_mapcount"]) if off["_mapcount"] is not None else None
            slab = is_slab_page(marks, flags, ptype) | np.zeros(n, dtype=bool)
            typed = np.zeros(n, dtype=bool)
            if ptype is not None:
                if top_byte:
                    typed = ((ptype >> np.uint32(24)) >= 0xF0) & ((ptype >> np.uint32(24)) != 0xFF)
                else:
                    typed = ((ptype & np.uint32(0xF0000000)) == np.uint32(0xF0000000)) & \
                        (ptype != np.uint32(0xFFFFFFFF))
            head_idx = head_pfn.astype(np.int64) - pfn
            inside = (head_idx >= 0) & (head_idx < n)
            idx = np.where(inside, head_idx, 0)
            # a tail takes its head's slab-ness (heads outside the chunk: looked up one by one)
            slab_h = np.where(inside, slab[idx], False)
            for i in np.flatnonzero(tail & ~inside).tolist():
                slab_h[i] = k.slabs().is_slab_pfn(int(head_pfn[i]))
            is_slab = np.where(tail, slab_h, slab) & present
            kinds[is_slab] = SLAB
            if usable:
                refc = _u32(arr, off["_refcount"]).view(np.int32)
                mapping = _u64(arr, off["mapping"])
                res = ((flags >> np.uint64(reserved)) & np.uint64(1)) == 1
                own = (refc > 0) & ~typed & ~res & (mapping == 0)
                # tails: the head's struct page decides (refcount and mapping live there)
                own_h = np.where(inside, own[idx], False)
                for i in np.flatnonzero(tail & ~inside).tolist():
                    own_h[i] = False
                plain = np.where(tail, own_h, own) & present & ~is_slab
                kinds[plain] = PAGE
            yield pfn, kinds, head_pfn
            pfn += n
    if unread:
        for kind in ("slab", "page"):
            missing[kind].append(f"the struct pages of {unread} frames are not in the dump")


def _read_struct_pages(ctx, va: int, n: int, size: int) -> Tuple[bytes, np.ndarray]:
    """``n`` struct pages at virtual ``va`` and which of them could be read.

    The parts of vmemmap the kernel tables map are read physically; the rest
    (holes, parts a dump left out) come back as 0xff bytes, marked not present."""
    end = va + n * size
    out = bytearray(b"\xff" * (n * size))
    present = np.zeros(n, dtype=bool)
    mem = ctx.kernel.memory
    for p in ctx.pieces_in(va, end):
        lo, hi = max(va, p.start), min(end, p.end)
        while lo < hi:
            step = hi - lo if not p.period else min(hi, lo - lo % p.period + p.period) - lo
            try:
                out[lo - va:lo - va + step] = mem.read(p.pa_at(lo), step)
            except KmemdbgError:
                lo += step
                continue
            first, last = -(-(lo - va) // size), (lo - va + step) // size
            present[first:last] = True
            lo += step
    return bytes(out), present


def _u64(arr: np.ndarray, off: int) -> np.ndarray:
    return arr[:, off:off + 8].copy().view(np.uint64).ravel()


def _u32(arr: np.ndarray, off: int) -> np.ndarray:
    return arr[:, off:off + 4].copy().view(np.uint32).ravel()


def _pageflag(kernel, name: str) -> Optional[int]:
    objs = kernel.objects()
    if objs is None:
        return None
    enum = objs.btf.find("pageflags", ("enum",))
    if enum is None:
        return None
    value = enum.enumerators.get(name)
    return value if value is not None and 0 <= value < 64 else None


def plan(ctx) -> Plan:
    """The spans of every kind (see the module doc), each frame once, in kind order."""
    p = _Planner(ctx)
    # page-table pages hold entries, not stored values (level2_ident_pgt sits in .data)
    ctx.pieces                      # the sweep, which records its table pages
    p.seen.add_frames(ctx.sweep.tables)
    ram = ctx.ram()
    starts = [s for s, _ in ram]

    def in_ram(pa: int) -> bool:
        i = bisect.bisect_right(starts, pa) - 1
        return i >= 0 and pa < ram[i][1]
    p.static()
    p.percpu()
    p.mapped(in_ram)
    if not ram:
        for kind in ("slab", "page"):
            p.miss(kind, "no RAM map (neither the source nor the kernel's iomem_resource gives one)")
    else:
        p.struct_pages(ram)
    return Plan(p.spans, p.missing)


__all__ = ["KINDS", "Span", "Plan", "plan", "page_kinds", "SLAB", "PAGE"]
