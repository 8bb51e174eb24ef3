"""Audits of a kernel's page tables and of what its memory says about them.

    >>> report = kmemdbg.audit.run_audit(k, ["wx", "linear-integrity"])
    >>> [f.kind for f in report.at_least("low")]
    []

Rules (see each module): ``wx``, ``exec-alias``, ``text-rw``, ``user-kernel``
(:mod:`.perms`); ``linear-integrity``, ``vmalloc-integrity``
(:mod:`.integrity`); ``virt-to-phys-misuse`` (:mod:`.misuse`); ``addresses``
(:mod:`.addresses`).  Every rule but ``addresses`` reads the one shared
sweep of the kernel tables, so an audit reads each table page at most once.
A rule that cannot run adds a one-line error and the others go on.
Problems of the tables themselves (loops, tables in holes or beyond a
truncated dump, reserved bits) are findings of the pseudo-rule
``page-tables``, reported whenever the sweep runs.
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Sequence

from ..arch.base import TABLE_LOOP
from ..errors import KmemdbgError
from .addresses import parse_line, rule_addresses
from .context import Area, AuditContext
from .findings import SEVERITIES, AuditReport, Finding, severity_rank
from .integrity import rule_linear_integrity, rule_vmalloc_integrity
from .misuse import rule_virt_to_phys_misuse
from .perms import rule_exec_alias, rule_text_rw, rule_user_kernel, rule_wx

RULES = {
    "wx": rule_wx,
    "exec-alias": rule_exec_alias,
    "text-rw": rule_text_rw,
    "user-kernel": rule_user_kernel,
    "linear-integrity": rule_linear_integrity,
    "vmalloc-integrity": rule_vmalloc_integrity,
    "virt-to-phys-misuse": rule_virt_to_phys_misuse,
    "addresses": None,
}
RULE_NAMES = tuple(RULES)
#: What runs when no rule is named (``addresses`` needs an input list).
DEFAULT_RULES = tuple(r for r in RULE_NAMES if r != "addresses")


class UnknownRuleError(KmemdbgError):
    """A rule name that does not exist."""


def check_rules(names: Optional[Sequence[str]]) -> List[str]:
    """The rules to run, in the order given; raises UnknownRuleError listing the valid ones."""
    if not names:
        return list(DEFAULT_RULES)
    bad = [n for n in names if n not in RULES]
    if bad:
        raise UnknownRuleError(f"unknown rule {', '.join(repr(b) for b in bad)}; valid rules: "
                               + ", ".join(RULE_NAMES))
    out: List[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def _sweep_findings(ctx: AuditContext) -> List[Finding]:
    out = []
    for f in ctx.sweep.faults:
        sev = "high" if f.reason == TABLE_LOOP else "medium"
        what = {"table-loop": "a page-table loop", "table-unreadable": "a table that cannot be read",
                "reserved-bits": "an entry with reserved bits set"}.get(f.reason, f.reason)
        out.append(Finding("page-tables", sev, f.reason, f.start, f.end, f.table_pa, None,
                           f"{what} at {f.level} (table pa 0x{f.table_pa:x}) covering 0x{f.start:016x}-"
                           f"0x{f.end:016x}: {f.detail}; nothing under it was audited",
                           (("level", f.level), ("table_pa", f"0x{f.table_pa:x}"),
                            ("raw", None if f.raw is None else f"0x{f.raw:x}"))))
    return out


def run_audit(kernel, rules: Optional[Sequence[str]] = None, *, addresses: Optional[Iterable[str]] = None,
              context: Optional[AuditContext] = None,
              progress: Optional[Callable[[str, float, float], None]] = None) -> AuditReport:
    """Run ``rules`` (default: all but ``addresses``) on ``kernel``.

    ``addresses`` is the input of the ``addresses`` rule (lines); giving it
    adds that rule when no rule list is given.  ``context`` supplies a
    prepared :class:`AuditContext` (e.g. with records for a model kernel).
    Raises UnknownRuleError before running anything; every other problem
    becomes a finding or an entry of ``report.errors``.
    """
    names = check_rules(rules)
    if addresses is not None and not rules:
        names.append("addresses")
    try:
        ctx = context or AuditContext(kernel, progress=progress)
    except KmemdbgError as err:
        # no layout (a guess refused, a value rejected): no rule can run
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        return AuditReport(tuple(names), errors=[(name, why) for name in names])
    if progress is not None and ctx.progress is None:
        ctx.progress = progress
    before = kernel.walker.cache.reads
    report = AuditReport(tuple(names))
    swept = False
    for i, name in enumerate(names):
        if progress is not None:
            progress(f"rule {name}", i, len(names))
        try:
            if name == "addresses":
                if addresses is None:
                    report.errors.append(("addresses", "the addresses rule needs --addresses FILE or -"))
                    continue
                report.findings += rule_addresses(kernel, addresses, report.errors)
                continue
            if not swept:
                ctx.pieces
                report.findings += _sweep_findings(ctx)
                swept = True
            report.findings += RULES[name](ctx)
        except (KmemdbgError, LookupError, ValueError) as err:
            report.errors.append((name, str(err).splitlines()[0] if str(err) else type(err).__name__))
    report.table_reads = kernel.walker.cache.reads - before
    return report


__all__ = ["run_audit", "check_rules", "RULES", "RULE_NAMES", "DEFAULT_RULES", "SEVERITIES",
           "severity_rank", "Finding", "AuditReport", "AuditContext", "Area", "UnknownRuleError",
           "parse_line"]
