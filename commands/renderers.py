"""One renderer per command: a result of :mod:`kmemdbg.commands.calls` to an :class:`Output`.

Text comes from :mod:`kmemdbg.render`; JSON is a list of items (possibly a
lazy iterable, written item by item), which
:func:`kmemdbg.commands.execute.write_json` wraps in the ``kmemdbg/1``
envelope; each item is described by ``kmemdbg/schemas/COMMAND.json``.
Lines that say an answer is incomplete, and the error of an argument that
could not be answered (:func:`per_argument`), go to ``warnings`` (stderr)
and set the exit status.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Tuple

from .. import render
from ..schema import SCHEMA_VERSION
from . import calls


@dataclass(frozen=True)
class Output:
    """What a front end shows for one command: ``text`` (printed with a newline) or
    ``json_items`` (a JSON array), then ``warnings`` (one stderr line each), and the
    exit status (0 complete, 1 incomplete or a finding at --fail-on, 2 could not run)."""

    text: Optional[str] = None
    json_items: Optional[Iterable[Any]] = None
    warnings: Tuple[str, ...] = ()
    exit_status: int = 0


def _per_argument(inv: calls.Invocation, answers, to_json, to_text, **more) -> Output:
    """One item/block per argument; an :class:`~kmemdbg.commands.calls.ArgumentError` becomes
    the JSON item ``{"argument", "error"}`` in its place, or its one stderr line, and exit 1."""
    bad = [a for a in answers if isinstance(a, calls.ArgumentError)]
    if bad:
        lines = tuple(f"kmemdbg: {a.message}" for a in bad)
        more = dict(more, warnings=tuple(more.get("warnings", ())) + lines, exit_status=1)
    if inv.as_json:
        return Output(json_items=[render.argument_error_json(a) if isinstance(a, calls.ArgumentError)
                                  else to_json(a) for a in answers], **more)
    blocks = [to_text(a) for a in answers if not isinstance(a, calls.ArgumentError)]
    return Output(text="\n\n".join("\n".join(b) for b in blocks) if blocks else None, **more)


#: The public name of the per-argument renderer (command modules build on it).
per_argument = _per_argument


def _incomplete(inv: calls.Invocation, what: str) -> dict:
    return {"warnings": (f"kmemdbg: {inv.args.command}: {what}",), "exit_status": 1}


def render_layout(result: calls.LayoutResult, inv: calls.Invocation) -> Output:
    if inv.as_json:
        return Output(json_items=[render.layout_report_json(result)])
    return Output(text="\n".join(render.layout_report_text(result)))


def render_classify(result: calls.ClassifyResult, inv: calls.Invocation) -> Output:
    return _per_argument(inv, result.classifications, render.classify_json, render.classify_text)


def render_vtop(result: calls.VtopResult, inv: calls.Invocation) -> Output:
    return _per_argument(inv, result.translations, lambda t: render.vtop_json(t.walk, t.classification, t.page),
                         lambda t: render.vtop_text(t.walk, t.classification, t.page))


def render_check(result: calls.CheckResult, inv: calls.Invocation) -> Output:
    return _per_argument(inv, result.checks, render.check_json, render.check_text)


def render_ptov(result: calls.PtovResult, inv: calls.Invocation) -> Output:
    more = {}
    if result.faults:
        more = _incomplete(inv, render.ptov_faults_line(result.faults, result.first_fault_level))
    return _per_argument(inv, result.entries, render.ptov_json, render.ptov_text, **more)


def render_slice(result: calls.SliceResult, inv: calls.Invocation) -> Output:
    if inv.as_json:
        return Output(json_items=[render.slice_json(result.report)])
    return Output(text=render.slice_text(result.report))


def render_ptdump(result: calls.PtdumpResult, inv: calls.Invocation) -> Output:
    more = _incomplete(inv, render.ptdump_faults_line(result.faults)) if result.faults else {}
    if inv.as_json:
        return Output(json_items=(render.ptrange_json(r) for r in result.ranges), **more)
    return Output(text="\n".join(render.ptdump_text(result.ranges, wide=getattr(inv.args, "wide", False),
                                                     all_ranges=getattr(inv.args, "all_ranges", False))),
                  **more)


def render_audit(result, inv: calls.Invocation) -> Output:
    if isinstance(result, calls.AuditNotRun):
        return Output(warnings=(f"kmemdbg: audit could not run: {result.reason}",), exit_status=2)
    warnings = render.audit_error_lines(result.report.errors)
    if result.fault_ranges:
        line = render.ptdump_faults_line(result.fault_ranges).replace("shown", "audited")
        warnings.append(f"kmemdbg: audit: {line}")
    more = {"warnings": tuple(warnings), "exit_status": result.exit_status}
    findings = result.report.findings
    if inv.args.jsonl:
        return Output(text="\n".join(json.dumps(dict(render.finding_json(f), schema=SCHEMA_VERSION))
                                     for f in findings) or None, **more)
    if inv.as_json:
        return Output(json_items=[render.finding_json(f) for f in findings], **more)
    return Output(text="\n".join(render.audit_text(result.report)), **more)


def render_demo(result, inv: calls.Invocation) -> Output:
    if inv.as_json:
        return Output(json_items=render.demo_json(result))
    return Output(text="\n".join(render.demo_text(result)))
