"""Findings and reports of the audits.

Addresses: ``start``/``end`` virtual (``end`` exclusive), ``pa`` physical.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

SEVERITIES = ("info", "low", "medium", "high")


def severity_rank(name: str) -> int:
    """0 for info up to 3 for high; raises ValueError for an unknown name."""
    try:
        return SEVERITIES.index(name)
    except ValueError:
        raise ValueError(f"unknown severity {name!r}; pick one of {', '.join(SEVERITIES)}") from None


@dataclass(frozen=True)
class Finding:
    """One thing an audit rule found.

    ``rule`` names the rule, ``kind`` the case inside it (``w+x``, ``hole``,
    ``split``, ``mismatch``...), ``severity`` one of :data:`SEVERITIES`.
    ``[start, end)`` is the virtual range concerned, ``pa`` the physical
    address that matters (None where none does), ``owner`` what owns the
    range (symbol, module, vmap area caller, slab cache).  ``evidence`` is a
    tuple of (name, value) pairs, kept hashable so a finding is a value.
    """

    rule: str
    severity: str
    kind: str
    start: Optional[int]
    end: Optional[int]
    pa: Optional[int]
    owner: Optional[str]
    explanation: str
    evidence: Tuple[Tuple[str, object], ...] = ()

    def evidence_dict(self) -> Dict[str, object]:
        return dict(self.evidence)


@dataclass
class AuditReport:
    """What an audit run produced.

    ``findings`` in rule order; ``errors`` are (rule, one-line message) for
    rules or inputs that could not be handled; ``rules`` the rules run;
    ``table_reads`` how many table pages the memory source was asked for.
    """

    rules: Tuple[str, ...]
    findings: List[Finding] = field(default_factory=list)
    errors: List[Tuple[str, str]] = field(default_factory=list)
    table_reads: int = 0

    def at_least(self, severity: str) -> List[Finding]:
        """Findings of ``severity`` or worse."""
        rank = severity_rank(severity)
        return [f for f in self.findings if severity_rank(f.severity) >= rank]

    def exit_status(self, fail_on: str = "low") -> int:
        """0: nothing at or above ``fail_on``; 1: such findings; 2: a rule could not run."""
        if self.at_least(fail_on):
            return 1
        return 2 if self.errors else 0


__all__ = ["SEVERITIES", "severity_rank", "Finding", "AuditReport"]
