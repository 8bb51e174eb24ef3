"""Integrity rules: ``linear-integrity`` and ``vmalloc-integrity``.

``linear-integrity``: every leaf of the linear map must map exactly the
physical address ``__pa()`` arithmetic gives for it.  Holes (unmapped
stretches), split huge pages (small leaves where the linear map otherwise
uses large ones) and set_memory permission changes (runs whose rights differ
from the linear map's usual ones) are reported as such, at info severity;
anything else is a finding.

``vmalloc-integrity``: every page of every vmap area is mapped, its guard
page is not, and the frames the walk finds agree with the area's recorded
pages (``vm_struct.pages``) where the dump has them.  Physically contiguous
versus scattered areas are counted.

Addresses: ``start``/``end`` virtual, ``pa`` physical; sizes in bytes.
"""
from __future__ import annotations

from collections import Counter
from typing import List, Optional, Tuple

from .context import AuditContext, Piece
from .findings import Finding

#: Holes and splits closer than this (bytes) are reported as one finding.
CLUSTER_BYTES = 2 << 20
#: Linear-map mismatches reported one by one; the rest are counted in one more finding.
MAX_MISMATCHES = 256
#: A vmap area larger than this is not a real allocation (corrupt vmap_area or vm_struct).
MAX_AREA_BYTES = 1 << 36
#: Pages of vmap areas walked in one audit; areas past it are counted, not walked.
MAX_AREA_PAGES = 1 << 20


def _linear_pieces(ctx: AuditContext) -> List[Piece]:
    return [p for p in ctx.pieces if p.region.kind == "linear"]


def rule_linear_integrity(ctx: AuditContext) -> List[Finding]:
    pieces = _linear_pieces(ctx)
    out: List[Finding] = []
    if not pieces:
        raise LookupError("no linear-map leaves found (no linear region in the layout, or it is unmapped)")
    # the usual rights of the linear map: those covering the most bytes
    by_perm: Counter = Counter()
    for p in pieces:
        by_perm[ctx.permissions(p).short()] += p.end - p.start
    usual = by_perm.most_common(1)[0][0]
    biggest = max(ctx.leaf_size(p) for p in pieces)
    holes: List[Tuple[int, int]] = []
    splits: List[Tuple[int, int, set]] = []
    changes: List[Tuple[int, int, str, Optional[int]]] = []
    prev: Optional[Piece] = None
    extra = extra_bytes = 0
    for p in pieces:
        want = ctx.arith_pa(p.start)
        perms = ctx.permissions(p).short()
        if (p.period or want is None or want != p.pa) and len(out) >= MAX_MISMATCHES:
            extra += 1
            extra_bytes += p.end - p.start
        elif p.period or want is None or want != p.pa:
            what = "repeats one frame" if p.period else f"maps pa 0x{p.pa:x}"
            out.append(Finding("linear-integrity", "high", "mismatch", p.start, p.end, p.pa,
                               ctx.owner(p.start),
                               f"linear map 0x{p.start:016x}-0x{p.end:016x} {what} but __pa() gives "
                               + (f"0x{want:x}" if want is not None else "nothing")
                               + ": a linear-map entry points elsewhere",
                               (("level", ctx.level_name(p)), ("expected_pa", None if want is None else f"0x{want:x}"),
                                ("walk_pa", f"0x{p.pa:x}"), ("permissions", perms))))
        if prev is not None and prev.end < p.start:
            holes.append((prev.end, p.start))
        if ctx.leaf_size(p) < biggest:
            lo = p.start - p.start % biggest
            hi = p.end + (-p.end) % biggest
            sizes = {ctx.level_name(p)}
            if splits and splits[-1][1] >= lo:
                splits[-1] = (splits[-1][0], max(splits[-1][1], hi), splits[-1][2] | sizes)
            else:
                splits.append((lo, hi, sizes))
        if perms != usual:
            if changes and changes[-1][1] == p.start and changes[-1][2] == perms:
                changes[-1] = (changes[-1][0], p.end, perms, changes[-1][3])
            else:
                changes.append((p.start, p.end, perms, p.pa))
        prev = p
    if extra:
        out.append(Finding("linear-integrity", "high", "mismatch", None, None, None, None,
                           f"{extra} more linear-map runs ({extra_bytes} bytes) map other frames than "
                           f"__pa() gives; only the first {MAX_MISMATCHES} are listed",
                           (("runs", extra), ("bytes", extra_bytes))))
    for lo, hi in _cluster(holes):
        n = sum(1 for a, b in holes if lo <= a and b <= hi)
        size = sum(b - a for a, b in holes if lo <= a and b <= hi)
        pa = ctx.arith_pa(lo)
        out.append(Finding("linear-integrity", "info", "hole", lo, hi, pa, None,
                           f"linear map hole{'s' if n > 1 else ''} in 0x{lo:016x}-0x{hi:016x}: {n} unmapped "
                           f"stretch{'es' if n > 1 else ''} of {size} bytes in all (physical memory the "
                           "kernel does not map: a gap in RAM, a KFENCE guard or set_memory_np)",
                           (("holes", n), ("bytes", size))))
    for lo, hi, sizes in splits:
        out.append(Finding("linear-integrity", "info", "split", lo, hi, ctx.arith_pa(lo), None,
                           f"linear map 0x{lo:016x}-0x{hi:016x} uses {'/'.join(sorted(sizes))} leaves where "
                           f"{_size(biggest)} leaves are used elsewhere: a split huge page",
                           (("leaf_levels", tuple(sorted(sizes))), ("largest_leaf", biggest))))
    if len(changes) > MAX_MISMATCHES:
        rest = changes[MAX_MISMATCHES:]
        changes = changes[:MAX_MISMATCHES]
        out.append(Finding("linear-integrity", "info", "set-memory", rest[0][0], rest[-1][1], None, None,
                           f"{len(rest)} more linear-map runs in 0x{rest[0][0]:016x}-0x{rest[-1][1]:016x} "
                           f"have other rights than the linear map's usual {usual}; only the first "
                           f"{MAX_MISMATCHES} are listed", (("runs", len(rest)), ("usual", usual))))
    for lo, hi, perms, pa in changes:
        out.append(Finding("linear-integrity", "info", "set-memory", lo, hi, pa, None,
                           f"linear map 0x{lo:016x}-0x{hi:016x} is {perms} where the linear map is {usual}: "
                           "a set_memory_*() permission change (for example the read-only alias of "
                           "kernel or module text)", (("permissions", perms), ("usual", usual))))
    return out


def _size(n: int) -> str:
    for unit, name in ((1 << 30, "1G"), (1 << 21, "2M"), (1 << 20, "1M")):
        if n == unit:
            return name
    return f"{n // 1024}K"


def _cluster(spans: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    out: List[Tuple[int, int]] = []
    for a, b in spans:
        if out and a - out[-1][1] < CLUSTER_BYTES:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def rule_vmalloc_integrity(ctx: AuditContext) -> List[Finding]:
    areas = ctx.areas()
    page = ctx.page_size
    out: List[Finding] = []
    checked = pages_checked = contiguous = scattered = compared = 0
    init = ctx.sections().get("init")
    budget = MAX_AREA_PAGES
    corrupt: List[str] = []
    skipped = 0
    for a in areas:
        if "ioremap" in a.flags and a.mapped_end <= a.start:
            continue
        if not (a.start < a.end and a.start <= a.mapped_end <= a.end and a.end - a.start <= MAX_AREA_BYTES
                and a.start % page == 0):
            # a corrupt vmap_area or vm_struct: report it, never walk it
            corrupt.append(f"0x{a.start:x}-0x{a.end:x} (mapped to 0x{a.mapped_end:x}, {a.name})")
            continue
        npages = (a.mapped_end - a.start) // page
        if npages > budget:
            skipped += 1
            continue
        budget -= npages
        checked += 1
        frames: List[Optional[int]] = []
        for va in range(a.start, a.mapped_end, page):
            frames.append(ctx.pa_of(va))
        pages_checked += len(frames)
        missing = [a.start + i * page for i, f in enumerate(frames) if f is None]
        if missing and a.name.startswith("pcpu_get_vm_areas"):
            # percpu chunks are populated page by page on demand (mm/percpu-vm.c)
            out.append(Finding("vmalloc-integrity", "info", "sparse-percpu", a.start, a.end, None,
                               f"vmap {a.name}",
                               f"percpu chunk area 0x{a.start:016x}-0x{a.end:016x}: {len(frames) - len(missing)} "
                               f"of {len(frames)} pages populated (percpu maps its pages on demand)",
                               (("missing_pages", len(missing)),)))
        elif missing and len(missing) == len(frames) and (
                (init is not None and init[0] <= a.start and a.mapped_end <= init[1])
                or (init is None and a.name.startswith("paging_init"))):
            # arm64 declares the image segments as vm areas (paging_init) and keeps the init
            # segment's area after free_initmem() has unmapped it
            out.append(Finding("vmalloc-integrity", "info", "freed-init", a.start, a.end, None,
                               f"vmap {a.name}",
                               f"vm area 0x{a.start:016x}-0x{a.end:016x} of the kernel's init segment is "
                               "unmapped: the init memory was freed after boot", (("pages", len(frames)),)))
        elif missing:
            out.append(Finding("vmalloc-integrity", "medium", "unmapped-page", missing[0], missing[-1] + page,
                               None, f"vmap {a.name}",
                               f"{len(missing)} of {len(frames)} pages of the vmap area 0x{a.start:016x}-"
                               f"0x{a.end:016x} ({a.name}) are not mapped, first at 0x{missing[0]:016x}",
                               (("missing_pages", len(missing)), ("first", f"0x{missing[0]:x}"),
                                ("flags", a.flags))))
        if a.mapped_end < a.end:
            guard = ctx.pa_of(a.mapped_end)
            if guard is not None:
                out.append(Finding("vmalloc-integrity", "medium", "guard-mapped", a.mapped_end,
                                   a.mapped_end + page, guard, f"vmap {a.name}",
                                   f"the guard page 0x{a.mapped_end:016x} of vmap area 0x{a.start:016x} "
                                   f"({a.name}) is mapped (to pa 0x{guard:x})", (("flags", a.flags),)))
        present = [f for f in frames if f is not None]
        if len(present) > 1:
            runs = 1 + sum(1 for x, y in zip(present, present[1:]) if y != x + page)
            if runs == 1:
                contiguous += 1
            else:
                scattered += 1
        if a.pages is not None and "vmalloc" in a.flags:
            compared += 1
            bad = []
            for i, pfn in enumerate(a.pages[:len(frames)]):
                f = frames[i]
                if f is not None and pfn * page != f - f % page:
                    bad.append((a.start + i * page, pfn, f))
            if bad:
                va, pfn, f = bad[0]
                out.append(Finding("vmalloc-integrity", "high", "pages-disagree", va, va + page, f,
                                   f"vmap {a.name}",
                                   f"{len(bad)} pages of vmap area 0x{a.start:016x} ({a.name}) map other "
                                   f"frames than vm_struct.pages records: 0x{va:016x} maps pa 0x{f:x}, "
                                   f"the area records pfn 0x{pfn:x}", (("pages", len(bad)),)))
    if corrupt:
        out.append(Finding("vmalloc-integrity", "medium", "corrupt-area", None, None, None, None,
                           f"{len(corrupt)} vmap areas have impossible bounds and were not walked "
                           f"(first {corrupt[0]}): the vmap area list is corrupt",
                           (("areas", len(corrupt)), ("first", corrupt[0]))))
    if skipped:
        out.append(Finding("vmalloc-integrity", "info", "not-checked", None, None, None, None,
                           f"{skipped} vmap areas were not walked: the audit walks at most "
                           f"{MAX_AREA_PAGES} pages of vmap areas", (("areas", skipped),)))
    out.append(Finding("vmalloc-integrity", "info", "statistics", None, None, None, None,
                       f"{checked} vmap areas, {pages_checked} pages checked; {contiguous} physically "
                       f"contiguous, {scattered} scattered (of those with two pages or more); "
                       f"{compared} compared with their recorded pages",
                       (("areas", checked), ("pages", pages_checked), ("contiguous", contiguous),
                        ("scattered", scattered), ("compared_with_pages_array", compared))))
    return out


__all__ = ["rule_linear_integrity", "rule_vmalloc_integrity"]
