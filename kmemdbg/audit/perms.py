"""Permission rules: ``wx``, ``exec-alias``, ``text-rw``, ``user-kernel``.

Each rule reads the effective permissions of every run of leaves from the
shared sweep (the rights of all levels combined, as the MMU applies them),
like the kernel's own ``CONFIG_DEBUG_WX`` check (``ptdump_check_wx``) but
on a dump and with owners named.

Addresses: ``start``/``end`` virtual, ``pa`` physical.
"""
from __future__ import annotations

import bisect
from typing import Iterable, List, Tuple

from ..arch import arch_named
from .context import AuditContext, Piece
from .findings import Finding

#: Regions where the kernel never maps code (arm64 maps them with PXN:
#: NO_EXEC_MAPPINGS for the linear map, PAGE_KERNEL for the rest).
_NO_EXEC_REGIONS = frozenset({"linear", "vmemmap", "fixmap", "pci-io", "kasan-shadow", "percpu"})
#: vmap callers whose areas hold code (module loader, execmem, BPF JIT, kprobes).
_CODE_CALLERS = ("module", "execmem", "bpf", "kprobe", "alloc_insn_page", "text_poke", "ftrace",
                 "paging_init", "declare_kernel_vmas", "map_kernel")


def _kernel_half(ctx: AuditContext) -> Iterable[Piece]:
    for p in ctx.pieces:
        if p.region.kind != "user":
            yield p


def _range_text(p: Piece) -> str:
    return f"0x{p.start:016x}-0x{p.end:016x}"


def _evidence(ctx: AuditContext, p: Piece, perms) -> Tuple[Tuple[str, object], ...]:
    return (("level", ctx.level_name(p)), ("permissions", perms.short()),
            ("region", p.region), ("pages", (p.end - p.start) // ctx.leaf_size(p)))


def rule_wx(ctx: AuditContext) -> List[Finding]:
    """Writable and executable kernel mappings; where the architecture maps data
    privileged-execute-never (arm64 PXN) also code where PXN is expected and
    user-executable kernel mappings."""
    out = []
    expects_pxn = arch_named(ctx.kernel.arch).expects_pxn
    for p in _kernel_half(ctx):
        perms = ctx.permissions(p)
        if perms.kernel_write and perms.kernel_exec:
            owner = ctx.owner(p.start)
            out.append(Finding("wx", "high", "w+x", p.start, p.end, p.pa, owner,
                               f"{_range_text(p)} is writable and executable by the kernel "
                               f"({perms.short()}, {p.region.kind})"
                               + (f", owned by {owner}" if owner else "")
                               + ": code can be written and run there", _evidence(ctx, p, perms)))
            continue
        if not expects_pxn:
            continue
        if perms.user_exec:
            out.append(Finding("wx", "high", "user-exec", p.start, p.end, p.pa, ctx.owner(p.start),
                               f"{_range_text(p)} in the kernel half is executable at EL0 (UXN clear)",
                               _evidence(ctx, p, perms)))
            continue
        if perms.kernel_exec:
            owner = ctx.owner(p.start)
            expected = p.region.kind not in _NO_EXEC_REGIONS
            if p.region.kind == "vmalloc":
                # code is expected only in areas the module loader / execmem / BPF made
                expected = owner is None or owner.startswith("module ") or \
                    any(c in owner for c in _CODE_CALLERS)
            if not expected and p.region.kind == "fixmap":
                # arm64 maps the KPTI trampoline text into the fixmap (FIX_ENTRY_TRAMP_TEXT*)
                out.append(Finding("wx", "info", "fixmap-text", p.start, p.end, p.pa, owner,
                                   f"{_range_text(p)} (fixmap) is kernel code: the KPTI entry trampoline "
                                   "is mapped there read-only and executable", _evidence(ctx, p, perms)))
            elif not expected:
                out.append(Finding("wx", "medium", "exec-without-pxn", p.start, p.end, p.pa, owner,
                                   f"{_range_text(p)} ({p.region.kind}) is executable at EL1 although "
                                   f"the kernel maps {p.region.kind} memory with PXN"
                                   + (f"; owned by {owner}" if owner else ""), _evidence(ctx, p, perms)))
    return out


def rule_user_kernel(ctx: AuditContext) -> List[Finding]:
    """User-accessible mappings in the kernel half."""
    out = []
    vsyscall = arch_named(ctx.kernel.arch).vsyscall_va
    for p in _kernel_half(ctx):
        perms = ctx.permissions(p)
        if not perms.user_read:
            continue
        if vsyscall is not None and p.start == vsyscall and p.end - p.start == 4096 \
                and not perms.user_write:
            out.append(Finding("user-kernel", "info", "vsyscall", p.start, p.end, p.pa, "vsyscall page",
                               "the legacy vsyscall page is user-readable by design (vsyscall=emulate)",
                               _evidence(ctx, p, perms)))
            continue
        sev = "high"
        out.append(Finding("user-kernel", sev, "user-accessible", p.start, p.end, p.pa, ctx.owner(p.start),
                           f"{_range_text(p)} ({p.region.kind}) in the kernel half is accessible from "
                           f"user mode ({perms.short()})", _evidence(ctx, p, perms)))
    return out


def _protected_ranges(ctx: AuditContext) -> List[Tuple[int, int, str]]:
    secs = ctx.sections()
    out = [(secs[n][0], secs[n][1], f"kernel .{n}") for n in ("text", "rodata") if n in secs]
    for o in ctx.module_owners():
        if o.section in ("text", "rodata"):
            out.append((o.start, o.end, o.label))
    return sorted(out)


def rule_text_rw(ctx: AuditContext) -> List[Finding]:
    """Kernel and module text or rodata mapped writable, at their own address or through an alias."""
    out = []
    ranges = _protected_ranges(ctx)
    if not ranges:
        raise LookupError("no kernel text/rodata bounds: the dump has no symbols and no module list")
    pa_ranges = []
    for s, e, name in ranges:
        for p in ctx.pieces_in(s, e):
            lo, hi = max(p.start, s), min(p.end, e)
            perms = ctx.permissions(p)
            if not p.period:
                pa_ranges.append((p.pa_at(lo), p.pa_at(lo) + (hi - lo), lo, name))
            if perms.kernel_write:
                out.append(Finding("text-rw", "high", "writable", lo, hi, p.pa_at(lo), name,
                                   f"{name} at 0x{lo:016x}-0x{hi:016x} is mapped writable ({perms.short()})",
                                   _evidence(ctx, p, perms)))
    pa_ranges.sort()
    starts = [r[0] for r in pa_ranges]
    for p in _kernel_half(ctx):
        perms = ctx.permissions(p)
        if not perms.kernel_write or p.period:
            continue
        for plo, phi, va, name in _overlaps(pa_ranges, starts, p.pa, p.pa_end):
            alias = p.start + (plo - p.pa)
            if p.start <= va < p.end:
                continue            # the section's own mapping, reported above
            out.append(Finding("text-rw", "high", "writable-alias", alias, alias + (phi - plo), plo, name,
                               f"{name} (pa 0x{plo:x}-0x{phi:x}) is writable through the alias "
                               f"0x{alias:016x} ({p.region.kind}, {perms.short()})",
                               _evidence(ctx, p, perms) + (("section_va", f"0x{va + (plo - plo):x}"),)))
    return out


def _overlaps(ranges, starts, lo: int, hi: int):
    """(overlap_lo, overlap_hi, va_of_range_start_at_overlap, name) of sorted ranges meeting [lo, hi)."""
    i = max(0, bisect.bisect_right(starts, lo) - 1)
    # ranges may be long: step back over any that still reach lo
    while i > 0 and ranges[i - 1][1] > lo:
        i -= 1
    while i < len(ranges) and ranges[i][0] < hi:
        s, e, va, name = ranges[i]
        if e > lo:
            olo, ohi = max(s, lo), min(e, hi)
            yield olo, ohi, va + (olo - s), name
        i += 1


def rule_exec_alias(ctx: AuditContext) -> List[Finding]:
    """Physical pages executable through one mapping and writable through another."""
    execs = []
    for p in _kernel_half(ctx):
        perms = ctx.permissions(p)
        if perms.kernel_exec:
            execs.append((p.pa, p.pa_end, p.start, ctx.owner(p.start) or p.region.kind))
    execs.sort()
    starts = [e[0] for e in execs]
    out = []
    for p in _kernel_half(ctx):
        perms = ctx.permissions(p)
        if not perms.kernel_write:
            continue
        for plo, phi, xva, name in _overlaps(execs, starts, p.pa, p.pa_end):
            if p.period:
                wva = p.start
            else:
                wva = p.start + (plo - p.pa)
            if wva == xva:
                continue            # one W+X mapping, the wx rule's business
            out.append(Finding("exec-alias", "high", "exec-alias", wva, wva + (phi - plo), plo,
                               ctx.owner(wva) or p.region.kind,
                               f"pa 0x{plo:x}-0x{phi:x} is executable at 0x{xva:016x} ({name}) and "
                               f"writable at 0x{wva:016x} ({p.region.kind}, {perms.short()})",
                               _evidence(ctx, p, perms) + (("exec_va", f"0x{xva:x}"),
                                                           ("exec_owner", name))))
    return out


__all__ = ["rule_wx", "rule_user_kernel", "rule_text_rw", "rule_exec_alias"]
