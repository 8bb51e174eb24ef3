"""``virt-to-phys-misuse``: a dump-time ``CONFIG_DEBUG_VIRTUAL``.

``virt_to_phys()`` of a vmalloc, vmap, module or stack address returns
arithmetic garbage without a warning on production kernels.  Such values are
stored where drivers keep physical addresses (descriptors, DMA rings, global
state).  This rule computes, for every mapped page ``x`` of the non-linear
regions (vmalloc/vmap/module, which includes vmalloc'd stacks), the value
``__pa(x)`` would give, and searches kernel memory for it:

- the kernel image's ``.data``/``.bss`` and every module's data range;
- every slab page (struct page type from VMCOREINFO: ``PAGE_SLAB_MAPCOUNT_VALUE``
  in ``page._mapcount`` or the ``PG_slab`` flag), found by reading the
  struct page array, tail pages included through ``compound_head``.

A word matches when its page-aligned part equals ``__pa(x)`` of a page and
it is not the page's true frame.  A value inside RAM is a valid physical
address of something else, so it is only reported when the pointer it came
from is stored next to it.  Candidates are ranked by evidence: beyond the end
of RAM, equal to ``__pa()`` of an area's first byte, the source pointer
stored next to it, a valid physical address in a neighbouring field.

Addresses: ``va`` virtual, ``pa`` physical; words are 8 bytes, little-endian.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..errors import KmemdbgError
from .context import AuditContext
from .findings import Finding

#: Regions whose pages __pa() gets wrong.
_NON_LINEAR = frozenset({"vmalloc", "module"})
#: How many words either side of a candidate are examined for evidence.
NEIGHBOURS = 4
#: Read granule for static data and the struct page array (bytes).
CHUNK = 1 << 20


class _Bogus:
    """Sorted page-aligned ``__pa(x)`` values of every mapped non-linear page ``x``."""

    def __init__(self, ctx: AuditContext) -> None:
        page = ctx.page_size
        keys: List[int] = []
        vas: List[int] = []
        true: List[int] = []
        for p in ctx.pieces:
            if p.region.kind not in _NON_LINEAR:
                continue
            first = ctx.arith_pa(p.start)
            if first is None:
                continue
            # __pa() is one subtraction within a region branch: step it page by page
            for off in range(0, p.end - p.start, page):
                keys.append((first + off) & ~(page - 1) & ((1 << 64) - 1))
                vas.append(p.start + off)
                true.append(p.pa_at(p.start + off) & ~(page - 1))
        order = np.argsort(np.array(keys, dtype=np.uint64), kind="stable")
        self.keys = np.array(keys, dtype=np.uint64)[order]
        self.vas = [vas[i] for i in order.tolist()]
        self.true = [true[i] for i in order.tolist()]

    def __len__(self) -> int:
        return len(self.vas)

    def lookup(self, value: int) -> Optional[Tuple[int, int]]:
        """(page va, true page pa) whose __pa() page is ``value``'s, or None."""
        i = int(np.searchsorted(self.keys, np.uint64(value)))
        if i < len(self.vas) and int(self.keys[i]) == value:
            return self.vas[i], self.true[i]
        return None


def _scan(words: np.ndarray, bogus: _Bogus, page: int) -> np.ndarray:
    """Indices of words whose page-aligned value is a bogus __pa() page."""
    aligned = words & np.uint64(~(page - 1) & ((1 << 64) - 1))
    hit = np.isin(aligned, bogus.keys, assume_unique=False)
    return np.flatnonzero(hit & (words != 0))


def _slab_pages(ctx: AuditContext) -> Iterator[Tuple[int, int]]:
    """(pa of a slab page, pa of its head page) for every slab page in RAM."""
    info = ctx.kernel.info
    vmemmap, size = ctx.vmemmap()
    if vmemmap is None:
        ctx.notes.append("slab pages not scanned: no vmemmap base")
        return
    mapcount = info.text("OFFSET(page._mapcount)")
    head_off = int(info.text("OFFSET(page.compound_head)") or 8)
    slab_value = info.number("PAGE_SLAB_MAPCOUNT_VALUE")
    pg_slab = info.number("PG_slab")
    if (mapcount is None or slab_value is None) and pg_slab is None:
        ctx.notes.append("slab pages not scanned: VMCOREINFO has neither PAGE_SLAB_MAPCOUNT_VALUE nor PG_slab")
        return
    mc_off = int(mapcount) if mapcount and mapcount.isdigit() else None
    page = ctx.page_size
    per_chunk = max(1, CHUNK // size)
    for lo, hi in ctx.ram():
        pfn, end_pfn = -(-lo // page), hi // page
        while pfn < end_pfn:
            n = min(per_chunk, end_pfn - pfn)
            try:
                raw = ctx.kernel.read(vmemmap + pfn * size, n * size)
            except KmemdbgError:
                # the struct pages of this chunk are not in the dump: go page of vmemmap by page
                raw = _read_present(ctx, vmemmap + pfn * size, n * size)
            arr = np.frombuffer(raw, dtype=np.uint8).reshape(n, size)
            flags = arr[:, 0:8].copy().view(np.uint64).ravel()
            slab = np.zeros(n, dtype=bool)
            if mc_off is not None and slab_value is not None:
                ptype = arr[:, mc_off:mc_off + 4].copy().view(np.uint32).ravel()
                value = slab_value & 0xFFFFFFFF
                if value & 0x00FFFFFF == 0:
                    slab |= (ptype >> np.uint32(24)) == np.uint32(value >> 24)
                else:
                    cleared = np.uint32(~value & 0xFFFFFFFF)
                    slab |= ((ptype & np.uint32(0xF0000000)) == np.uint32(0xF0000000)) & ((ptype & cleared) == 0)
            if pg_slab is not None:
                slab |= ((flags >> np.uint64(pg_slab)) & np.uint64(1)) == 1
            heads = arr[:, head_off:head_off + 8].copy().view(np.uint64).ravel()
            for i in np.flatnonzero(slab).tolist():
                yield (pfn + i) * page, (pfn + i) * page
            # tail pages: compound_head = head's struct page address | 1
            tails = np.flatnonzero((heads & np.uint64(1)) == 1)
            if tails.size:
                head_va = heads[tails] - np.uint64(1)
                head_pfn = (head_va - np.uint64(vmemmap)) // np.uint64(size)
                for i, hp in zip(tails.tolist(), head_pfn.tolist()):
                    if pfn <= hp < pfn + n and slab[hp - pfn]:
                        yield (pfn + i) * page, hp * page
                    elif not (pfn <= hp < pfn + n) and _is_slab_pfn(ctx, hp, vmemmap, size, mc_off,
                                                                      slab_value, pg_slab):
                        yield (pfn + i) * page, hp * page
            pfn += n


def _is_slab_pfn(ctx, pfn, vmemmap, size, mc_off, slab_value, pg_slab) -> bool:
    return ctx.kernel.slabs().is_slab_pfn(pfn)


def _read_present(ctx: AuditContext, va: int, size: int) -> bytes:
    out = bytearray()
    page = ctx.page_size
    for cur in range(va, va + size, page):
        n = min(page, va + size - cur)
        try:
            out += ctx.kernel.read(cur, n)
        except KmemdbgError:
            out += bytes(n)
    return bytes(out)


class _SlabNames:
    """Slab cache name and object size of a slab page (kmemdbg.slab.Slabs)."""

    def __init__(self, ctx: AuditContext) -> None:
        self.slabs = ctx.kernel.slabs()

    def of(self, head_pa: int) -> Tuple[Optional[str], Optional[int]]:
        """(cache name, object size in bytes) of the slab whose head page is at ``head_pa``."""
        return self.slabs.cache_of(head_pa)


def _off_beyond_size(text: str) -> bool:
    try:
        off, size = text.split("+", 1)[1].split(" ", 1)[0].split("/")
        return int(off, 16) >= int(size, 16)
    except (IndexError, ValueError):
        return True


def _owner_static(ctx: AuditContext, va: int, label: str) -> str:
    if label.startswith("module "):
        objs = ctx.kernel.objects()
        try:
            where = objs.describe_address(va) if objs is not None else None
        except Exception:  # noqa: BLE001
            where = None
        # a module symbol that ends before va names the wrong thing: fall back to the range
        if where and ("/0x-" in where or _off_beyond_size(where)):
            where = None
        return where or label
    where = ctx.kernel.symbols.name_of(va)
    return where or label


def _evidence(ctx: AuditContext, bogus: _Bogus, words: np.ndarray, idx: int, value: int,
              src_va: int, true_pa: int, ram_end: Optional[int], ram) -> Tuple[int, List[str], bool]:
    """(score, reasons, structural): ``structural`` is True when something beyond the value's
    size ties it to an allocation (area start, page alignment, neighbouring fields)."""
    page = ctx.page_size
    score = 0
    why: List[str] = []
    structural = False
    if ram_end is not None and value >= ram_end:
        score += 2
        why.append(f"beyond the end of RAM (0x{ram_end:x}): it cannot be a real physical address")
    x = src_va + value % page
    areas = [a for a in (ctx._areas or []) if a.start <= x < a.end]
    if areas and areas[0].start == x:
        score += 2
        structural = True
        why.append(f"equals __pa() of the first byte of vmap area 0x{areas[0].start:x} ({areas[0].name})")
    elif value % page == 0:
        score += 1
        structural = True
        why.append("page-aligned, as __pa() of an allocation's start is")
    lo, hi = max(0, idx - NEIGHBOURS), min(len(words), idx + NEIGHBOURS + 1)
    near = [int(w) for w in words[lo:hi].tolist()]
    area = areas[0] if areas else None
    if any(w == x or (area is not None and area.start <= w < area.end) for w in near):
        score += 2
        structural = True
        why.append(f"the pointer it was computed from (0x{x:x}) is stored next to it")
    elif any(w != value and w and any(s <= w < e for s, e in ram) and w % 8 == 0 and w < (1 << 52)
             for w in near):
        score += 1
        why.append("a valid physical address is stored in a neighbouring field")
    return score, why, structural


def rule_virt_to_phys_misuse(ctx: AuditContext) -> List[Finding]:
    bogus = _Bogus(ctx)
    page = ctx.page_size
    if not len(bogus):
        raise LookupError("no mapped vmalloc/module pages: nothing for __pa() to get wrong")
    try:
        ctx.areas()
    except KmemdbgError:
        pass
    ram = ctx.ram()
    ram_end = ctx.ram_end()
    names = _SlabNames(ctx)
    out: List[Finding] = []
    scanned = 0

    def consider(words: np.ndarray, base_va: Optional[int], base_pa: Optional[int], owner_of) -> None:
        for idx in _scan(words, bogus, page).tolist():
            value = int(words[idx])
            hit = bogus.lookup(value & ~(page - 1))
            if hit is None:
                continue
            src_va, true_pa = hit
            if value - value % page == true_pa:
                continue                # the true frame of that page: a correct value
            in_ram = any(s <= value < e for s, e in ram)
            score, why, structural = _evidence(ctx, bogus, words, idx, value, src_va, true_pa, ram_end, ram)
            if not structural:
                continue                # a number that happens to equal __pa() of some page
            if in_ram and not any("pointer it was computed from" in w for w in why):
                continue                # a valid physical address of something else
            sev = "high" if score >= 4 else "medium" if score >= 3 else "low"
            word_va = None if base_va is None else base_va + 8 * idx
            word_pa = None if base_pa is None else base_pa + 8 * idx
            x = src_va + value % page
            owner = owner_of(idx, word_va, word_pa)
            where = f"0x{word_va:016x}" if word_va is not None else f"pa 0x{word_pa:x}"
            out.append(Finding(
                "virt-to-phys-misuse", sev, "bogus-pa", word_va, None if word_va is None else word_va + 8,
                word_pa, owner,
                f"the word at {where} ({owner}) holds 0x{value:x} = __pa(0x{x:016x}), the linear-map "
                f"arithmetic applied to a {ctx.layout.region_of(x).kind} address; that page is really at "
                f"pa 0x{true_pa:x}" + ("; " + "; ".join(why) if why else ""),
                (("value", f"0x{value:x}"), ("source_va", f"0x{x:x}"), ("true_pa", f"0x{true_pa + value % page:x}"),
                 ("score", score), ("reasons", tuple(why)), ("word_pa", None if word_pa is None else f"0x{word_pa:x}"))))

    statics = ctx.static_data()
    for s, e, label in statics:
        for cur in range(s - s % 8, e, CHUNK):
            n = min(CHUNK, e - cur)
            data = _read_present(ctx, cur, n - n % 8)
            words = np.frombuffer(data, dtype=np.uint64)
            scanned += len(data)
            consider(words, cur, None, lambda idx, va, pa, label=label: _owner_static(ctx, va, label))
    slab_bytes = 0
    batch: List[Tuple[int, int]] = []

    def flush() -> None:
        nonlocal slab_bytes
        blobs, kept = [], []
        for pa, head in batch:
            try:
                blobs.append(ctx.kernel.memory.read(pa, page))
                kept.append((pa, head))
            except KmemdbgError:
                continue
        batch.clear()
        if not blobs:
            return
        slab_bytes += page * len(blobs)
        allw = np.frombuffer(b"".join(blobs), dtype=np.uint64)
        per = page // 8
        for j in sorted({i // per for i in _scan(allw, bogus, page).tolist()}):
            pa, head = kept[j]
            words = allw[j * per:(j + 1) * per]

            def slab_owner(idx, va, wpa, head=head, pa=pa):
                name, objsize = names.of(head)
                off = pa - head + idx * 8
                head_va = ctx.linear_va(head)
                text = f"slab cache {name}" if name else "a slab page"
                if objsize and head_va is not None:
                    obj = head_va + off - off % objsize
                    return f"{text} object 0x{obj:x}+0x{off % objsize:x}"
                return f"{text} at pa 0x{pa:x}+0x{idx * 8:x}"
            consider(words, ctx.linear_va(pa), pa, slab_owner)

    for pa, head in _slab_pages(ctx):
        batch.append((pa, head))
        if len(batch) >= 512:
            flush()
    flush()
    scanned += slab_bytes
    if not statics and not slab_bytes:
        raise LookupError("nothing to scan: no static data ranges (no symbols, no module list) and no slab pages")
    out.sort(key=lambda f: (-["info", "low", "medium", "high"].index(f.severity), f.start or 0))
    out.append(Finding("virt-to-phys-misuse", "info", "statistics", None, None, None, None,
                       f"scanned {scanned} bytes ({slab_bytes} of slab pages, {len(statics)} static data ranges) "
                       f"for __pa() of {len(bogus)} vmalloc/module pages",
                       (("bytes", scanned), ("slab_bytes", slab_bytes), ("static_ranges", len(statics)),
                        ("pages", len(bogus)))))
    return out


__all__ = ["rule_virt_to_phys_misuse"]
