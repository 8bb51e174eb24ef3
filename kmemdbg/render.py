"""Rendering results for people (aligned text, 80 columns) and pipelines (JSON).

The library never prints; commands call these functions.  Addresses render
as ``0x%016x`` in text and as lowercase ``"0x..."`` strings in JSON.
"""
from __future__ import annotations

import re
import textwrap
from typing import Any, Dict, List, Optional

from .walk import Walk


def hexa(value: Optional[int]) -> Optional[str]:
    """JSON form of an address: lowercase ``"0x..."`` or None."""
    return None if value is None else f"0x{value:x}"


def addr(value: Optional[int]) -> str:
    """Text form of an address: ``0x%016x`` (or ``-``)."""
    return "-" if value is None else f"0x{value:016x}"


def size_text(size: Optional[int]) -> str:
    if size is None:
        return "-"
    for unit, name in ((1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{name}"
    return f"{size}B"


def permissions_json(perm) -> Optional[Dict[str, Any]]:
    """Effective rights as ``{"kernel": {"r", "w", "x"}, "user": {"r", "w", "x"}}`` (booleans), or None."""
    if perm is None:
        return None
    return {"kernel": {"r": perm.kernel_read, "w": perm.kernel_write, "x": perm.kernel_exec},
            "user": {"r": perm.user_read, "w": perm.user_write, "x": perm.user_exec}}


def argument_error_json(err) -> Dict[str, Any]:
    """An argument that could not be answered, in its place: ``{"argument", "error"}``."""
    return {"argument": err.argument, "error": f"kmemdbg: {err.message}"}


def _ps_parts(text: Optional[str]):
    """(symbol, offset, module) of a ``%pS``-style ``name+0xoff[/0xsize] [module]``, or Nones."""
    from .annotate import parse_ps

    return parse_ps(text or "") or (None, None, None)


def owner_json(owner, va: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """An owner as ``{"kind", "name", "symbol", "offset", "module", "text"}``, from whichever
    record holds it: an owner index entry (:class:`kmemdbg.linux.owners.Owner`; ``offset`` is
    that of virtual ``va`` from the owner's start), a structured owner (``rd``'s), or only its
    text (an audit finding's), whose kind is then read from the words it starts with."""
    if owner is None:
        return None
    if hasattr(owner, "label") and hasattr(owner, "section"):
        off = None if va is None else va - owner.start
        if owner.kind == "module":
            return {"kind": "module", "name": owner.name, "symbol": None, "offset": off,
                    "module": owner.name, "text": owner.label, "section": owner.section}
        if owner.kind == "vmap-area":
            _sym, _off, mod = _ps_parts(owner.name)
            return {"kind": "vmap-area", "name": owner.name, "symbol": None, "offset": off,
                    "module": mod, "text": owner.label}
        return {"kind": owner.kind, "name": owner.name, "symbol": None, "offset": off, "module": None,
                "text": owner.label}
    if hasattr(owner, "text") and hasattr(owner, "symbol"):
        return {"kind": owner.kind, "name": owner.name, "symbol": owner.symbol, "offset": owner.offset,
                "module": owner.module, "text": owner.text}
    text = str(owner)
    head, off = text, None
    tail = re.search(r"\+0x([0-9a-f]+)$", text)
    if tail is not None and not re.search(r"/0x[0-9a-f]+$", text):  # a %pS name+0xoff/0xsize keeps its own
        head, off = text[:tail.start()], int(tail.group(1), 16)
    words = head.split()
    sym, sym_off, mod = _ps_parts(text)
    if sym is not None and re.fullmatch(r"(0x)?[0-9a-f]+", sym):
        sym = None  # an address printed for want of a symbol
    if text.startswith("kernel ") and len(words) == 2:
        return {"kind": "image-section", "name": words[1], "symbol": None, "offset": off, "module": None,
                "text": text}
    if text.startswith("module ") and len(words) >= 2:
        return {"kind": "module", "name": words[1], "symbol": None, "offset": off, "module": words[1],
                "text": text, "section": words[2] if len(words) > 2 else None}
    if text.startswith("vmap "):
        name = head[5:].split(" [")[0]
        return {"kind": "vmap-area", "name": name, "symbol": None, "offset": off,
                "module": _ps_parts(name)[2], "text": text}
    if text.startswith("slab cache ") and len(words) >= 3:
        return {"kind": "slab-object", "name": words[2], "symbol": None, "offset": off, "module": None,
                "text": text}
    if sym is not None:
        return {"kind": "module" if mod else "symbol", "name": mod or sym, "symbol": sym, "offset": sym_off,
                "module": mod, "text": text}
    return {"kind": "memory", "name": head, "symbol": None, "offset": off, "module": None, "text": text}


def walk_json(walk: Walk) -> Dict[str, Any]:
    """The ``vtop`` object of the JSON contract, without region/allocation."""
    return {
        "va": hexa(walk.va),
        "pa": hexa(walk.pa),
        "page_size": walk.page_size,
        "steps": [
            {"level": s.level, "table": hexa(s.table_pa), "index": s.index,
             "entry": hexa(s.entry_pa), "raw": hexa(s.raw), "flags": list(s.flags)}
            for s in walk.steps
        ],
        "fault": None if walk.fault is None else {
            "level": walk.fault.level, "reason": walk.fault.reason, "detail": walk.fault.detail},
        "permissions": permissions_json(walk.permissions),
    }


def walk_text(walk: Walk, title: str = "") -> List[str]:
    """Lines describing a walk: a verdict line, then one line per level."""
    lines = []
    head = f"{addr(walk.va)}"
    if walk.fault is None:
        head += f" -> pa {addr(walk.pa)}  ({size_text(walk.page_size)} page, {walk.permissions.short()})"
    else:
        head += f" -> NOT MAPPED: {walk.fault.reason}"
        if walk.fault.level:
            head += f" at {walk.fault.level}"
    if title:
        lines.append(title)
    lines.append(head)
    if walk.fault is not None and walk.fault.detail:
        lines.append(f"  {walk.fault.detail}")
    for s in walk.steps:
        lines.append(f"  {s.level:<4} table {addr(s.table_pa)} [{s.index:4}] = {addr(s.raw)}")
        if s.flags:
            lines.append(f"{'':7}{s.kind}: {' '.join(s.flags)}")
        else:
            lines.append(f"{'':7}{s.kind}")
    return lines


# -- product objects ---------------------------------------------------------

def region_json(region) -> Dict[str, Any]:
    return {"kind": region.kind, "name": region.name, "start": hexa(region.start),
            "end": hexa(region.end), "source": region.source}


def allocation_json(alloc) -> Optional[Dict[str, Any]]:
    if alloc is None:
        return None
    return {"kind": alloc.kind, "name": alloc.name, "start": hexa(alloc.start), "end": hexa(alloc.end),
            "caller": alloc.caller, "flags": list(alloc.flags), "detail": alloc.detail}


def classify_json(cls) -> Dict[str, Any]:
    return {"va": hexa(cls.va), "region": region_json(cls.region),
            "allocation": allocation_json(cls.allocation)}


def vtop_json(walk: Walk, cls, page=None) -> Dict[str, Any]:
    """The ``vtop`` object of the JSON contract (``page``: the frame's PageInfo, or None)."""
    from .render_page import page_json

    out = walk_json(walk)
    return {"va": out["va"], "region": region_json(cls.region),
            "allocation": allocation_json(cls.allocation), "pa": out["pa"],
            "page_size": out["page_size"], "steps": out["steps"],
            "fault": None if walk.fault is None else {"level": walk.fault.level, "reason": walk.fault.reason},
            "permissions": out["permissions"],
            "page": None if page is None else page_json(page, with_mappings=False)}


def check_json(check) -> Dict[str, Any]:
    """The ``check`` object of the JSON contract."""
    return {"va": hexa(check.va), "linear_pa": hexa(check.linear_pa), "walk_pa": hexa(check.walk_pa),
            "claimed_pa": hexa(check.claimed_pa), "verdict": check.verdict,
            "region": region_json(check.region), "explanation": check.explanation,
            "branch": check.branch, "debug_virtual": check.debug_virtual,
            "pages": [{"va": hexa(v), "pa": hexa(p)} for v, p in check.true_pages],
            "bogus_pa_holds": check.bogus}


def mapping_json(m) -> Dict[str, Any]:
    return {"va": hexa(m.va), "pa": hexa(m.pa), "page_size": m.page_size, "level": m.level,
            "region": region_json(m.region), "allocation": allocation_json(m.allocation)}


def layout_json(layout) -> Dict[str, Any]:
    return {"arch": layout.arch,
            "regions": [region_json(r) for r in sorted(layout.regions, key=lambda r: r.start)],
            "values": {k: {"value": hexa(v & ((1 << 64) - 1)) if v >= 0 else f"-0x{-v:x}",
                           "source": layout.value_source(k)} for k, v in layout.values},
            "disagreements": [d.message() for d in layout.disagreements],
            "missing": list(layout.missing)}


def region_line(region) -> str:
    return f"{region.kind} {addr(region.start)}-{addr(region.end)} ({region.name})"


def wrap(text: str, indent: str = "  ", more: str = "    ") -> List[str]:
    return textwrap.wrap(text, 78, initial_indent=indent, subsequent_indent=more,
                         break_on_hyphens=False) or [indent]


def allocation_lines(alloc, indent: str = "  ") -> List[str]:
    if alloc is None:
        return []
    lines = wrap(f"{alloc.kind} {alloc.name} {addr(alloc.start)}-{addr(alloc.end)}", indent)
    extra = []
    if alloc.caller:
        extra.append(f"caller {alloc.caller}")
    if alloc.flags:
        extra.append("[" + " ".join(alloc.flags) + "]")
    if alloc.detail:
        extra.append(alloc.detail)
    if extra:
        lines += wrap(" ".join(extra), indent + "  ", indent + "  ")
    return lines


def allocation_line(alloc) -> str:
    return " ".join(l.strip() for l in allocation_lines(alloc)) if alloc is not None else "allocation: unknown"


def classify_text(cls) -> List[str]:
    lines = [addr(cls.va)]
    lines += wrap(f"region: {region_line(cls.region)}")
    lines += wrap(f"bounds: {cls.region.source}")
    if cls.region.note:
        lines += wrap(f"note: {cls.region.note}")
    lines += allocation_lines(cls.allocation)
    return lines


def vtop_text(walk: Walk, cls, page=None) -> List[str]:
    from .render_page import page_line

    lines = wrap(f"region: {region_line(cls.region)}", "")
    lines += allocation_lines(cls.allocation)
    return lines + walk_text(walk) + (wrap(f"PAGE: {page_line(page)}", "  ", "    ") if page is not None else [])


def check_text(check) -> List[str]:
    lines = [f"{addr(check.va)}  {check.verdict.upper()}"]
    lines += wrap(f"region: {region_line(check.region)}")
    lines += [f"  __pa() arithmetic: {addr(check.linear_pa)}"]
    if check.branch:
        lines += wrap(check.branch, "    ", "    ")
    lines += [f"  page-table walk:   {addr(check.walk_pa)}"]
    if check.claimed_pa is not None:
        lines.append(f"  claimed:           {addr(check.claimed_pa)}")
    if check.debug_virtual:
        lines += wrap(f"CONFIG_DEBUG_VIRTUAL: {check.debug_virtual}")
    lines += wrap(check.explanation, "  ", "  ")
    for v, p in check.true_pages:
        lines.append(f"    page {addr(v)} -> {addr(p)}")
    return lines


def layout_text(layout) -> List[str]:
    lines = [f"{'kind':<14} {'start':<18} {'end':<18} name"]
    for r in sorted(layout.regions, key=lambda r: (r.start, r.end)):
        lines += wrap(f"{r.kind:<14} {addr(r.start)} {addr(r.end)} {r.name}", "", " " * 15)
        lines += wrap(r.source, " " * 15, " " * 17)
    for k, v in layout.values:
        shown = f"0x{v & ((1 << 64) - 1):x}" if v >= 0 else f"-0x{-v:x}"
        lines += wrap(f"{k} = {shown}  ({layout.value_source(k)})", "", "  ")
    for d in layout.disagreements:
        lines += wrap(f"DISAGREEMENT: {d.message()}", "", "  ")
    for m in layout.missing:
        lines += wrap(f"missing: {m}", "", "  ")
    return lines


# -- ptdump and audit ----------------------------------------------------------

#: Like the kernel's x86 address_markers max_lines: the ESPFIX area repeats one
#: page 65536 times, so only its first lines are printed.
PTDUMP_MAX_LINES = {"espfix": 16}


def ptrange_json(r) -> Dict[str, Any]:
    """The ``ptdump`` object of the JSON contract.

    ``pa`` is the physical address of ``start``; with ``pa_rule`` "linear"
    the physical address of ``va`` is ``pa + (va - start)``; with "repeat"
    it is ``pa + (va - start) % pa_period`` (the same frames mapped again
    and again, as the KASAN early shadow and the ESPFIX area do).  ``stride``
    is 0, or for leaves mapped one every ``stride`` bytes (ESPFIX) the distance
    between them: only the ``page_size`` bytes at ``start + k * stride`` are
    mapped.  ``fault`` is
    null, or for a stretch the tables do not describe (a :class:`PtFault`)
    ``{"reason", "detail", "table_pa", "raw", "count"}`` with ``pa`` null.
    """
    if getattr(r, "reason", None) is not None:
        return {"start": hexa(r.start), "end": hexa(r.end), "pa": None, "page_size": None,
                "level": r.level, "flags": [], "table_flags": [], "permissions": None, "pa_rule": None,
                "pa_period": 0, "stride": 0, "region": region_json(r.region), "owner": None,
                "fault": {"reason": r.reason, "detail": r.detail, "table_pa": hexa(r.table_pa),
                          "raw": hexa(r.raw), "count": r.count}}
    record = getattr(r, "owner_record", None)
    return {"start": hexa(r.start), "end": hexa(r.end), "pa": hexa(r.pa), "page_size": r.page_size,
            "level": r.level, "flags": list(r.flags), "table_flags": list(r.table_flags),
            "permissions": permissions_json(r.permissions), "pa_rule": r.pa_rule, "pa_period": r.pa_period,
            "stride": r.stride, "region": region_json(r.region), "owner": owner_json(record if record is not None else r.owner,
                                                                 r.start),
            "fault": None}


def fault_line(f) -> str:
    """One text line for a fault range of a ptdump."""
    more = f" (x{f.count})" if f.count > 1 else ""
    return (f"{addr(f.start)}-{addr(f.end)} {human_size(f.size):>5} {f.level:<3} fault: {f.reason}{more} "
            f"(table pa 0x{f.table_pa:x}): {f.detail}")


def ptdump_faults_line(faults) -> str:
    """One sentence summing up the fault ranges of a ptdump or an audit's sweep."""
    kinds: Dict[str, int] = {}
    for f in faults:
        kinds[f.reason] = kinds.get(f.reason, 0) + getattr(f, "count", 1)
    first = faults[0]
    what = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return (f"the page tables have faults ({what}), first at {addr(first.start)} ({first.level}, "
            f"table pa 0x{first.table_pa:x}): what is under them is not shown")


def human_size(size: Optional[int]) -> str:
    """A size in bytes in at most 5 characters: ``4K``, ``608K``, ``1.4M``, ``16M``, ``512G``."""
    if size is None:
        return "-"
    for unit, name in ((1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if size >= unit:
            whole, rest = divmod(size, unit)
            if rest == 0 or whole >= 100:
                return f"{whole}{name}" if rest == 0 else f"{round(size / unit)}{name}"
            return f"{size / unit:.1f}{name}".replace(".0" + name, name)
    return f"{size}B"


#: Width of the text views of ptdump by default.
TEXT_COLUMNS = 80


def _ptrange_line(r, wide: bool) -> List[str]:
    pa = f"pa 0x{r.pa:x}" + ("" if r.pa_rule == "linear" else f" ({r.pa_rule})")
    head = f"{addr(r.start)}-{addr(r.end)} {human_size(r.size):>5} {r.level:<3} {r.permissions.short()}"
    flags = " ".join(r.flags) + (" [" + " ".join(r.table_flags) + "]" if r.table_flags else "")
    core = f"{head} {flags} {pa}"
    line = core + (f"  {r.owner}" if r.owner else "")
    if wide or len(line) <= TEXT_COLUMNS:
        return [line]
    if len(core) <= TEXT_COLUMNS:
        first, rest = core, r.owner or ""
    else:
        first, rest = f"{head} {pa}", flags + (f"  {r.owner}" if r.owner else "")
    return [first] + textwrap.wrap(rest, TEXT_COLUMNS, initial_indent=" " * 6, subsequent_indent=" " * 8,
                                   break_on_hyphens=False)


def ptdump_text(ranges, wide: bool = False, all_ranges: bool = False) -> List[str]:
    """Kernel-ptdump-like lines with ``---[ region ]---`` markers, within TEXT_COLUMNS unless
    ``wide`` (a range's flags or owner go on an indented line after it); regions the kernel's
    ptdump summarises (PTDUMP_MAX_LINES) print their first ranges and a count unless ``all_ranges``."""
    lines: List[str] = []
    marker = None
    shown = skipped = 0

    def summary() -> None:
        if skipped:
            lines.append(f"... {skipped} ranges skipped (--all shows them) ...")
    for r in ranges:
        name = f"{r.region.kind}: {r.region.name}"
        if name != marker:
            summary()
            lines.append(f"---[ {name} ]---")
            marker, shown, skipped = name, 0, 0
        if getattr(r, "reason", None) is not None:
            line = fault_line(r)
            lines += [line] if wide or len(line) <= TEXT_COLUMNS else textwrap.wrap(
                line, TEXT_COLUMNS, subsequent_indent=" " * 6, break_on_hyphens=False)
            continue
        limit = None if all_ranges else PTDUMP_MAX_LINES.get(r.region.kind)
        if limit is not None and shown >= limit:
            skipped += 1
            continue
        shown += 1
        lines += _ptrange_line(r, wide)
    summary()
    return lines


def _evidence_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_evidence_json(v) for v in value]
    if hasattr(value, "kind") and hasattr(value, "start_source"):  # a layout Region
        return region_json(value)
    return value


def finding_json(f) -> Dict[str, Any]:
    """One audit finding: rule, severity, kind, start, end, pa, owner, explanation, evidence
    (its values as given, a layout region as the region object)."""
    return {"rule": f.rule, "severity": f.severity, "kind": f.kind, "start": hexa(f.start),
            "end": hexa(f.end), "pa": hexa(f.pa), "owner": owner_json(f.owner), "explanation": f.explanation,
            "evidence": {k: _evidence_json(v) for k, v in f.evidence}}


def audit_text(report) -> List[str]:
    """Findings grouped by rule, worst first, then the rules that could not run."""
    lines: List[str] = []
    order = {"high": 0, "medium": 1, "low": 2, "info": 3}
    for rule in ("page-tables",) + tuple(report.rules):
        found = sorted((f for f in report.findings if f.rule == rule), key=lambda f: order[f.severity])
        if not found and rule == "page-tables":
            continue
        counts = {}
        for f in found:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda x: order[x[0]]))
        lines.append(f"== {rule}: {summary or 'nothing found'}")
        for f in found:
            where = f"{addr(f.start)}-{addr(f.end)}" if f.start is not None else ""
            lines += wrap(f"{f.severity.upper():<6} {f.kind} {where}".rstrip(), "", "  ")
            lines += wrap(f.explanation, "  ", "  ")
    for rule, msg in report.errors:
        lines += wrap(f"ERROR {rule}: {msg}", "", "  ")
    return lines


# -- whole command results (the types are in kmemdbg.commands.calls) ---------

def layout_report_json(result) -> Dict[str, Any]:
    """``layout --json``: the layout, with missing symbols and guessed bounds under "missing"."""
    obj = layout_json(result.layout)
    obj["missing"] += [m for m in result.notes if m.startswith("no symbols")]
    obj["missing"] += [f"guessed: {q}" for q in result.layout.guessed]
    return obj


def layout_report_text(result) -> List[str]:
    """``layout``: the source and root table, where they came from, the regions, the notes."""
    lines = wrap(f"{result.description}: {result.format_name}, root table pa 0x{result.root_pa:x}", "", "  ")
    lines += wrap(f"({result.evidence})") + layout_text(result.layout)
    for m in result.notes:
        lines += wrap(f"note: {m}", "", "  ")
    return lines


def ptov_json(entry) -> Dict[str, Any]:
    """One ``ptov`` pa (``entry.pa``) and its kernel mappings (``entry.mappings``)."""
    return {"pa": hexa(entry.pa), "mappings": [mapping_json(m) for m in entry.mappings]}


def ptov_text(entry) -> List[str]:
    """One ``ptov`` pa: a count line, then each mapping va with its level, size, region, owner."""
    block = [f"pa {addr(entry.pa)}: {len(entry.mappings)} kernel mapping(s)"]
    for m in entry.mappings:
        block.append(f"  {addr(m.va)}  {m.level:<4} {size_text(m.page_size):>4}  "
                     f"{m.region.kind} ({m.region.name})")
        block += allocation_lines(m.allocation, "      ")
    return block


def ptov_faults_line(faults, first_level: str) -> str:
    """What a ``ptov`` over faulty tables leaves out; ``first_level`` names the level of the first."""
    f = faults[0]
    return (f"the page tables have {len(faults)} fault(s), first {f.reason} at "
            f"{first_level} for 0x{f.va:016x} (table pa "
            f"0x{f.table_pa:x}): mappings under them are not listed")


def slice_json(report) -> Dict[str, Any]:
    """A :class:`~kmemdbg.slice.SliceReport` (sizes in bytes, counts in pages)."""
    return {"path": report.path, "size_bytes": report.size_bytes, "table_pages": report.table_pages,
            "kallsyms_pages": report.kallsyms_pages, "extra_pages": report.extra_pages,
            "unreadable": list(report.unreadable)}


def slice_text(report) -> str:
    return (f"{report.path}: {report.size_bytes} bytes: {report.table_pages} page-table pages, "
            f"{report.kallsyms_pages} kallsyms pages, {report.extra_pages} other pages")


def audit_error_lines(errors) -> List[str]:
    """At most one line per distinct failure of (rule, message) pairs: rules that failed alike
    are named together, and repeated errors of one rule (bad input lines) are counted, not listed."""
    by_rule: Dict[str, List[str]] = {}
    for rule, msg in errors:
        by_rule.setdefault(rule, []).append(msg)
    by_msg: Dict[str, List[str]] = {}
    for rule, msgs in by_rule.items():
        text = msgs[0] + (f" (and {len(msgs) - 1} more)" if len(msgs) > 1 else "")
        by_msg.setdefault(text, []).append(rule)
    return [f"kmemdbg: {', '.join(rules)}: {msg}" for msg, rules in by_msg.items()]


def demo_json(report) -> List[Dict[str, Any]]:
    """``demo --json``: one item per case (title, vtop, check)."""
    return [{"title": c.title, "vtop": vtop_json(c.walk, c.classification), "check": check_json(c.check)}
            for c in report.cases]


def demo_text(report) -> List[str]:
    """``demo``: the sample's kernel and regions, then each case's walk and verdict."""
    lines = [
        "kmemdbg demo on a slice of a real Debian kernel dump:",
        f"  {report.release[:76]}",
        f"paging: {report.format_name}; root table at pa 0x{report.root_pa:x}",
    ]
    lines += wrap(f"({report.evidence})")
    lines.append("")
    for reg in report.regions:
        lines.append(f"  {reg.kind:<13} {addr(reg.start)}-{addr(reg.end)}")
        lines += wrap(reg.source, "    ", "      ")
    for c in report.cases:
        lines += ["", "=" * 78] + wrap(c.title, "", "") + ["-" * 78]
        lines += vtop_text(c.walk, c.classification)
        lines.append("")
        lines += check_text(c.check)
    return lines
