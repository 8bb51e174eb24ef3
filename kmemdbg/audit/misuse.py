"""``virt-to-phys-misuse``: a dump-time ``CONFIG_DEBUG_VIRTUAL``.

``virt_to_phys()`` of a vmalloc, vmap, module or stack address returns
arithmetic garbage without a warning on production kernels, and so does
``virt_to_page()`` (a ``struct page *`` for a frame that is not the
buffer's; :func:`kmemdbg.virt_to_phys.kernel_virt_to_page`).  Such values
are stored where drivers keep physical addresses and pages: descriptors,
DMA rings, ``struct scatterlist`` (``sg_init_one()``/``sg_set_buf()`` call
``virt_to_page()``), per-cpu state, stacks.

For every mapped page ``x`` of the non-linear regions (vmalloc, vmap,
module: vmapped stacks included) the rule computes what each form gives on
this kernel, with the kernel's own arithmetic and branch:

- ``virt_to_phys``: ``__pa(x)``; a stored word matches when its page-aligned
  part equals it (any byte offset into the page);
- ``virt_to_page``: the ``struct page *`` value; a word matches exactly;
- ``sg_page_link``: the same pointer with scatterlist flag bits (``SG_CHAIN``
  0x1, ``SG_END`` 0x2) in its low two bits, as ``sg_assign_page()`` stores it.

It then reads every kind of kernel memory once (:mod:`.memkinds`) and
weighs each match by evidence that does not depend on where KASLR put
things:

- strong: the containing field's BTF type is ``phys_addr_t``/``dma_addr_t``/
  ``resource_size_t`` (or a ``struct page *`` for the page forms); a pointer
  into the same allocation is stored within ``NEIGHBOURS`` words (a driver
  keeps the buffer beside the address it computed from it);
- supporting: the value cannot be a real physical address or struct page
  (beyond the end of RAM, in a hole, an unmapped part of vmemmap); it
  equals the form of an allocation's first byte; scatterlist shape (offset
  below a page, a non-zero length) next to a page link;
- against: BTF says the field is a pointer or a virtual-address field
  (``vm_area_struct.vm_start``...); the value is a mapped user address of a
  task; the value is the page's true frame (a correct value).

high: strong evidence and nothing against; medium: supporting evidence that
the value is impossible as a physical address plus the allocation-start or
scatterlist evidence, nothing against; anything else is a number that only
happens to be equal: an ``info`` finding (the first ``MAX_INFO``; the rest
are counted in the statistics).  Memory that could not be scanned is a
``medium`` finding of kind ``incomplete``.

Addresses: ``va`` virtual, ``pa`` physical; words are 8 bytes, little-endian.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import KmemdbgError
from ..virt_to_phys import PageArray, kernel_pa, kernel_virt_to_page
from .context import AuditContext
from .field_types import PHYS, POINTER, VIRTUAL, FieldType, FieldTyper
from .findings import Finding
from .memkinds import KINDS, Plan, Span, plan

#: Regions whose pages __pa() gets wrong.
_NON_LINEAR = frozenset({"vmalloc", "module"})
#: How many words either side of a candidate are examined for evidence.
NEIGHBOURS = 4
#: Bytes read from the memory source at a time.
CHUNK = 1 << 20
#: info findings kept in full; the rest are counted.
MAX_INFO = 32
MASK64 = (1 << 64) - 1
RULE = "virt-to-phys-misuse"
PA_FORM, PAGE_FORM, SG_FORM = "virt_to_phys", "virt_to_page", "sg_page_link"


@dataclass(frozen=True)
class Source:
    """A non-linear page ``va`` (virtual, page-aligned), its true frame ``true_pa``, the
    owner's first byte ``alloc_va`` (vmap area or module range; None unknown) and name."""

    va: int
    true_pa: int
    alloc_va: Optional[int]
    alloc_end: Optional[int]
    owner: str


class _Forms:
    """Sorted form values of every non-linear source page, for vectorised matching."""

    def __init__(self, ctx: AuditContext) -> None:
        page = ctx.page_size
        layout = ctx.layout
        pages = ctx.vmemmap()
        vmemmap, entry = pages.vmemmap_va, pages.entry_bytes
        start = ctx.kernel.info.number("VMEMMAP_START")
        self.pages = PageArray(vmemmap, start, entry, ctx.format.page_shift) if vmemmap is not None else None
        self.sources: List[Source] = []
        pa_keys: List[int] = []
        pg_keys: List[int] = []
        self.branches: Dict[str, str] = {}
        owners = _AllocIndex(ctx)
        for p in ctx.pieces:
            if p.region.kind not in _NON_LINEAR:
                continue
            first = kernel_pa(layout, p.start)
            if first.pa is None:
                continue
            self.branches.setdefault(p.region.kind, first.branch)
            for off in range(0, p.end - p.start, page):
                va = p.start + off
                a_start, a_end, name = owners.of(va)
                self.sources.append(Source(va, p.pa_at(va) & ~(page - 1), a_start, a_end, name))
                pa_keys.append(((first.pa + off) & ~(page - 1)) & MASK64)
                if self.pages is not None:
                    got = kernel_virt_to_page(layout, va, self.pages).pa
                    pg_keys.append(MASK64 if got is None else got)
        self.pa_keys = np.array(pa_keys, dtype=np.uint64)
        self.pa_order = np.argsort(self.pa_keys, kind="stable")
        self.pa_sorted = self.pa_keys[self.pa_order]
        self.pg_keys = np.array(pg_keys, dtype=np.uint64)
        self.pg_order = np.argsort(self.pg_keys, kind="stable")
        self.pg_sorted = self.pg_keys[self.pg_order]
        self.page_mask = np.uint64(~(page - 1) & MASK64)

    def __len__(self) -> int:
        return len(self.sources)

    def match(self, words: np.ndarray) -> List[Tuple[int, str, int]]:
        """(word index, form, source index) of every word equal to some form value."""
        out: List[Tuple[int, str, int]] = []
        for keys, order, masked, form in ((self.pa_sorted, self.pa_order, words & self.page_mask, PA_FORM),
                                          (self.pg_sorted, self.pg_order, words & np.uint64(~3 & MASK64),
                                           PAGE_FORM)):
            if not keys.size:
                continue
            cand = np.flatnonzero((masked >= keys[0]) & (masked <= keys[-1]) & (words != 0))
            if not cand.size:
                continue
            pos = np.searchsorted(keys, masked[cand])
            pos = np.minimum(pos, keys.size - 1)
            hit = keys[pos] == masked[cand]
            for i, j in zip(cand[hit].tolist(), pos[hit].tolist()):
                f = form if form == PA_FORM or int(words[i]) & 3 == 0 else SG_FORM
                out.append((i, f, int(order[j])))
        return out


class _AllocIndex:
    """The allocation (module range or vmap area) holding a non-linear virtual address."""

    def __init__(self, ctx: AuditContext) -> None:
        rows = [(o.start, o.end, o.label) for o in ctx.module_owners()]
        try:
            rows += [(a.start, a.end, f"vmap area {a.name}") for a in ctx.areas()]
        except KmemdbgError:
            pass
        rows.sort()
        self.rows = rows
        self.starts = [r[0] for r in rows]

    def of(self, va: int) -> Tuple[Optional[int], Optional[int], str]:
        i = bisect.bisect_right(self.starts, va) - 1
        # module ranges nest inside their vmap area: look a few rows back, not all of them
        for j in range(i, max(-1, i - 8), -1):
            if va < self.rows[j][1]:
                return self.rows[j]
        return None, None, "a vmalloc/module page with no known owner"


class _Judge:
    """Evidence for one match, and the finding it makes."""

    def __init__(self, ctx: AuditContext, forms: _Forms) -> None:
        self.ctx, self.forms = ctx, forms
        self.page = ctx.page_size
        self.ram = ctx.ram()
        self.ram_starts = [s for s, _ in self.ram]
        self.ram_end = ctx.ram_end()
        objs = ctx.kernel.objects()
        self.typer = FieldTyper(objs.btf) if objs is not None else None
        self._user: Optional[List[Tuple[int, int, str, object]]] = None
        self.slabs = ctx.kernel.slabs()

    # -- facts -------------------------------------------------------------------------
    def in_ram(self, pa: int) -> bool:
        i = bisect.bisect_right(self.ram_starts, pa) - 1
        return i >= 0 and pa < self.ram[i][1]

    def impossible_pa(self, value: int) -> Optional[str]:
        if self.ram_end is not None and value >= self.ram_end:
            return f"beyond the end of RAM (0x{self.ram_end:x}): it cannot be a physical address of memory"
        if self.ram and not self.in_ram(value):
            return "in no RAM range (a hole): it cannot be a physical address of memory"
        return None

    def impossible_page(self, ptr: int) -> Optional[str]:
        pages = self.forms.pages
        if pages is None:
            return None
        if ptr < pages.vmemmap_va or (ptr - pages.vmemmap_va) % pages.entry_bytes:
            return "not a struct page of the struct page array"
        pfn = (ptr - pages.vmemmap_va) // pages.entry_bytes
        pa = pfn << pages.page_shift
        why = self.impossible_pa(pa)
        if why is not None:
            return f"the struct page of pfn 0x{pfn:x}, {why.split(':')[0]}: no such struct page exists"
        if self.ctx.pa_of(ptr) is None:
            return f"the struct page of pfn 0x{pfn:x}, which vmemmap does not map"
        return None

    def user_mapping(self, value: int) -> Optional[str]:
        """'mapped at user address 0x... of pid N (comm)' when ``value`` is a user address in use."""
        region = self.ctx.layout.region_of(value)
        if region.kind != "user":
            return None
        if self._user is None:
            self._user = []
            try:
                seen = set()
                for task in self.ctx.kernel.tasks():
                    mm = task.mm_va
                    if mm and mm not in seen and len(seen) < 256:
                        seen.add(mm)
                        try:
                            self._user.append((task.pid, mm, task.comm, self.ctx.kernel.user_walker(mm=mm)))
                        except KmemdbgError:
                            continue
            except KmemdbgError:
                pass
        for pid, _mm, comm, walker in self._user:
            if walker.walk(value - value % self.page).pa is not None:
                return f"a mapped user address of pid {pid} ({comm})"
        return None

    def neighbour_pointer(self, words: np.ndarray, idx: int, src: Source) -> Optional[int]:
        lo, hi = max(0, idx - NEIGHBOURS), min(len(words), idx + NEIGHBOURS + 1)
        a, b = (src.alloc_va, src.alloc_end) if src.alloc_va is not None else (src.va, src.va + self.page)
        for w in words[lo:hi].tolist():
            if a <= w < b:
                return w
        return None

    def sg_shape(self, words: np.ndarray, idx: int) -> bool:
        if idx + 1 >= len(words):
            return False
        nxt = int(words[idx + 1])
        offset, length = nxt & 0xFFFFFFFF, nxt >> 32
        return offset < self.page and 0 < length <= 1 << 30

    def field_type(self, span: Span, word_pa: int, word_va: Optional[int]) -> Optional[FieldType]:
        if self.typer is None:
            return None
        if span.kind == "percpu" and span.label.startswith("per-cpu area of cpu") and word_va is not None \
                and span.base_va is not None:
            return self.typer.field_of_percpu(word_va - span.base_va)
        if span.kind != "slab" or span.head_pa is None:
            return None
        cache, size = self.slabs.cache_of(span.head_pa)
        if not size:
            return None
        return self.typer.field_at(cache, size, (word_pa - span.head_pa) % size)

    # -- the verdict ---------------------------------------------------------------------
    def judge(self, words: np.ndarray, idx: int, form: str, src: Source, span: Span,
              word_pa: int, word_va: Optional[int]) -> Optional[Finding]:
        value = int(words[idx])
        page = self.page
        if form == PA_FORM:
            if value - value % page == src.true_pa:
                return None                      # the true frame: a correct value
            source_va = src.va + value % page
        else:
            source_va = src.va
            pages = self.forms.pages
            true_ptr = pages.vmemmap_va + (src.true_pa >> pages.page_shift) * pages.entry_bytes
            if value & ~3 == true_ptr & MASK64:
                return None                      # the right struct page
        strong: List[str] = []
        support: List[str] = []
        against: List[str] = []
        ftype = self.field_type(span, word_pa, word_va)
        if ftype is not None:
            if form == PA_FORM and ftype.category == PHYS:
                strong.append(f"it is {ftype.describe()}: a physical-address field")
            elif form != PA_FORM and ftype.category == POINTER and ftype.pointee == "page":
                strong.append(f"it is {ftype.describe()}: a struct page pointer field")
            elif form == SG_FORM and ftype.path.endswith("page_link"):
                strong.append(f"it is {ftype.describe()}: a scatterlist page link")
            elif ftype.category in (POINTER, VIRTUAL):
                against.append(f"it is {ftype.describe()}, not a physical address")
        near = self.neighbour_pointer(words, idx, src)
        if near is not None:
            strong.append(f"a pointer into the same allocation (0x{near:x}) is stored next to it")
        if form == PA_FORM:
            why = self.impossible_pa(value)
            points = why or self.ctx.kernel.describe_pa(value).detail
            if why:
                support.append("it cannot be a physical address of RAM")
            if src.alloc_va is not None and source_va == src.alloc_va:
                support.append(f"it equals __pa() of the first byte of {src.owner}")
            if not strong or ftype is None:
                user = self.user_mapping(value)
                if user:
                    against.append(f"it is also {user}")
        else:
            why = self.impossible_page(value & ~3)
            points = why or "a struct page that exists (of another frame)"
            if why:
                support.append("no struct page exists there")
            if form == SG_FORM and self.sg_shape(words, idx):
                support.append("the next word has the shape of a scatterlist's offset and length")
            if src.alloc_va is not None and source_va == src.alloc_va:
                support.append(f"it is the struct page pointer of the first page of {src.owner}")
        impossible = why is not None
        if not strong and self.ctx.pa_of(value & ~3 & MASK64) is not None:
            # a page-aligned kernel address that is mapped: far likelier a pointer (an
            # address marker, a vmap area start) than arithmetic that happened to land there
            against.append("it is also a mapped kernel virtual address")
        if strong and not against:
            sev = "high"
        elif not against and impossible and len(support) >= 2 and form != PAGE_FORM:
            # a bare struct page pointer has no shape of its own: on arm64 virt_to_page() of a
            # vmalloc address lands among ordinary kernel addresses (region bounds, markers)
            sev = "medium"
        else:
            sev = "info"
        return self._finding(sev, form, value, source_va, src, span, word_pa, word_va, points,
                             strong, support, against)

    def _finding(self, sev, form, value, source_va, src, span, word_pa, word_va, points,
                 strong, support, against) -> Finding:
        page = self.page
        layout = self.ctx.layout
        arith = kernel_pa(layout, source_va)
        if form == PA_FORM:
            what = f"__pa(0x{source_va:016x}) by the {arith.branch}"
            true = f"pa 0x{src.true_pa + value % page:x}"
        else:
            what = (f"virt_to_page(0x{source_va:016x})" + (f" with scatterlist flags 0x{value & 3:x}"
                                                           if value & 3 else ""))
            true = f"pa 0x{src.true_pa:x} (its struct page is 0x{self._true_ptr(src):x})"
        owner = owner_of(self.ctx, span, word_pa, word_va)
        where = f"0x{word_va:016x}" if word_va is not None else f"pa 0x{word_pa:x}"
        region = layout.region_of(source_va).kind
        reasons = strong + support
        text = (f"{form}: the word at {where} ({owner}, {span.kind} memory) holds 0x{value:x} = {what}, "
                f"applied to a {region} address of {src.owner}; that page is really at {true}; "
                f"0x{value:x} is {points}")
        if reasons:
            text += "; evidence: " + "; ".join(reasons)
        if against:
            text += "; against: " + "; ".join(against)
        if sev == "info":
            text += "; kept at info: the value is only numerically equal"
        end = None if word_va is None else word_va + 8
        return Finding(RULE, sev, "bogus-pa" if form == PA_FORM else "bogus-page", word_va, end, word_pa, owner,
                       text,
                       (("form", form), ("memory_kind", span.kind), ("value", f"0x{value:x}"),
                        ("source_va", f"0x{source_va:x}"), ("source_region", layout.region_of(source_va)),
                        ("branch", arith.branch if form == PA_FORM else _page_branch(layout, source_va, self.forms)),
                        ("true_pa", f"0x{src.true_pa + (value % page if form == PA_FORM else 0):x}"),
                        ("points_at", points), ("word_pa", f"0x{word_pa:x}"),
                        ("reasons", tuple(reasons)), ("against", tuple(against)),
                        ("debug_virtual", arith.debug_virtual)))

    def _true_ptr(self, src: Source) -> int:
        pages = self.forms.pages
        return pages.vmemmap_va + (src.true_pa >> pages.page_shift) * pages.entry_bytes



def _page_branch(layout, va: int, forms: _Forms) -> str:
    got = kernel_virt_to_page(layout, va, forms.pages)
    return got.branch


def owner_of(ctx: AuditContext, span: Span, word_pa: int, word_va: Optional[int]) -> str:
    """What owns the word: a symbol, module symbol, per-cpu variable, slab object, vmap area, page."""
    k = ctx.kernel
    if span.kind == "slab" and span.head_pa is not None:
        name, objsize = k.slabs().cache_of(span.head_pa)
        off = word_pa - span.head_pa
        head_va = ctx.linear_va(span.head_pa)
        text = f"slab cache {name}" if name else "a slab page"
        if objsize and head_va is not None:
            obj = head_va + off - off % objsize
            return f"{text} object 0x{obj:x}+0x{off % objsize:x}"
        return f"{text} at pa 0x{word_pa:x}"
    if span.kind == "page":
        return f"a page-allocator page (pfn 0x{word_pa // ctx.page_size:x})+0x{word_pa % ctx.page_size:x}"
    if word_va is None:
        return span.label
    if span.kind == "image":
        return k.symbols.name_of(word_va) or span.label
    if span.kind == "module":
        objs = k.objects()
        try:
            where = objs.describe_address(word_va) if objs is not None else None
        except KmemdbgError:  # the module's symbol table may be missing (slices)
            where = None
        if where and ("/0x-" in where or _off_beyond_size(where)):
            where = None
        return where or f"{span.label}+0x{word_va - (span.base_va or word_va):x}"
    if span.kind == "percpu" and span.label.startswith("per-cpu area of cpu"):
        base = span.base_va or word_va
        start = k.symbols.address("__per_cpu_start") or 0
        sym = k.symbols.name_of(start + (word_va - base))
        return f"{span.label}+0x{word_va - base:x}" + (f" ({sym})" if sym else "")
    return f"{span.label}+0x{word_va - (span.base_va or word_va):x}"


def _off_beyond_size(text: str) -> bool:
    try:
        off, size = text.split("+", 1)[1].split(" ", 1)[0].split("/")
        return int(off, 16) >= int(size, 16)
    except (IndexError, ValueError):
        return True


def _read(ctx: AuditContext, pa: int, size: int) -> Tuple[bytes, int]:
    """``size`` bytes at physical ``pa``, unreadable pages as zeros; (data, unreadable bytes)."""
    mem = ctx.kernel.memory
    try:
        return mem.read(pa, size), 0
    except KmemdbgError:
        pass
    out, bad, page = bytearray(), 0, ctx.page_size
    cur = pa
    while cur < pa + size:
        n = min(page - cur % page, pa + size - cur)
        try:
            out += mem.read(cur, n)
        except KmemdbgError:
            out += bytes(n)
            bad += n
        cur += n
    return bytes(out), bad


def rule_virt_to_phys_misuse(ctx: AuditContext) -> List[Finding]:
    t0 = time.monotonic()
    forms = _Forms(ctx)
    if not len(forms):
        raise LookupError("no mapped vmalloc/module pages: nothing for __pa() to get wrong")
    scan = plan(ctx)
    judge = _Judge(ctx, forms)
    out: List[Finding] = []
    scanned: Dict[str, int] = {k: 0 for k in KINDS}
    unreadable: Dict[str, int] = {k: 0 for k in KINDS}
    infos = 0
    for span in scan.spans:
        pos = 0
        while pos < span.size:
            n = min(CHUNK, span.size - pos)
            pa = span.pa + pos
            lead = (-pa) % 8
            data, bad = _read(ctx, pa, n)
            unreadable[span.kind] += bad
            scanned[span.kind] += n - bad
            body = data[lead:len(data) - (len(data) - lead) % 8]
            words = np.frombuffer(body, dtype=np.uint64)
            for idx, form, si in forms.match(words):
                word_pa = pa + lead + 8 * idx
                word_va = None if span.va is None else span.va + (word_pa - span.pa)
                f = judge.judge(words, idx, form, forms.sources[si], span, word_pa, word_va)
                if f is None:
                    continue
                if f.severity == "info":
                    infos += 1
                    if infos > MAX_INFO:
                        continue
                out.append(f)
            pos += n
    out.sort(key=lambda f: (-["info", "low", "medium", "high"].index(f.severity), f.start or 0))
    gaps = _incomplete(scan, unreadable)
    out += gaps
    total = sum(scanned.values())
    if not total:
        raise LookupError("nothing to scan: " + "; ".join(w for ws in scan.missing.values() for w in ws))
    seconds = time.monotonic() - t0
    per_kind = ", ".join(f"{k} {scanned[k]}" for k in KINDS)
    out.append(Finding(RULE, "info", "statistics", None, None, None, None,
                       f"scanned {total} bytes ({per_kind}) for the virt_to_phys/virt_to_page forms of "
                       f"{len(forms)} vmalloc/module pages in {seconds:.1f} s; {infos} numerically equal "
                       f"values kept at info" + (f" ({infos - MAX_INFO} not listed)" if infos > MAX_INFO else "")
                       + ("; not fully scanned: " + "; ".join(f.explanation for f in gaps) if gaps else ""),
                       (("bytes", total),) + tuple((f"{k}_bytes", scanned[k]) for k in KINDS) +
                       (("pages", len(forms)), ("info_matches", infos), ("seconds", round(seconds, 3)),
                        ("branches", tuple(sorted(forms.branches.items()))),
                        ("not_scanned", tuple(f.evidence_dict()["memory_kind"] for f in gaps)))))
    return out


def _incomplete(scan: Plan, unreadable: Dict[str, int]) -> List[Finding]:
    out = []
    for kind in KINDS:
        why = list(scan.missing.get(kind, ()))
        if unreadable[kind]:
            why.append(f"{unreadable[kind]} bytes could not be read from the source")
        if why:
            out.append(Finding(RULE, "medium", "incomplete", None, None, None, None,
                               f"{kind} memory not fully scanned: " + "; ".join(why),
                               (("memory_kind", kind), ("reasons", tuple(why)))))
    return out


__all__ = ["rule_virt_to_phys_misuse", "owner_of", "NEIGHBOURS", "MAX_INFO"]
