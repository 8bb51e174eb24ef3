"""``addresses``: ``check`` verdicts for a list of addresses, the entry point for triage scripts.

Input lines are ``ADDR``, ``ADDR=CLAIMED_PA`` (hexadecimal, ``0x`` optional)
or JSON objects ``{"va": "0x...", "claimed_pa": "0x..."}``; blank lines and
lines starting with ``#`` are skipped.  ``va`` is virtual, ``claimed_pa``
physical.
"""
from __future__ import annotations

import json
import re
from typing import Iterable, List, Optional, Tuple

from ..errors import AddressError
from .findings import Finding

_SEVERITY = {"mismatch": "high", "unmapped": "medium", "ok": "info", "not-applicable": "info"}


_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)", re.ASCII)


def _shown(text) -> str:
    text = str(text)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _number(text) -> int:
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise AddressError(f"{_shown(text)} is not a hexadecimal address")
    if isinstance(text, int):
        value = text
    else:
        m = _HEX.fullmatch(text.strip())
        if m is None:
            raise AddressError(f"{_shown(text)} is not a hexadecimal address")
        value = int(m.group(1), 16)
    if not 0 <= value < 1 << 64:
        raise AddressError(f"{_shown(text)} is not a 64-bit address")
    return value


def parse_line(line: str) -> Optional[Tuple[int, Optional[int]]]:
    """(va, claimed_pa or None) of one input line, None for a blank or comment line.

    Raises AddressError naming what is wrong.
    """
    if "\ufffd" in line:
        raise AddressError("not UTF-8 text")
    t = line.strip()
    if not t or t.startswith("#"):
        return None
    if t.startswith("{"):
        try:
            obj = json.loads(t)
        except (ValueError, RecursionError) as err:
            raise AddressError(f"not valid JSON: {str(err).splitlines()[0] if str(err) else err}") from None
        if not isinstance(obj, dict) or "va" not in obj:
            raise AddressError("JSON line without a \"va\" key")
        claim = obj.get("claimed_pa")
        return _number(obj["va"]), None if claim is None else _number(claim)
    addr, sep, claim = t.partition("=")
    return _number(addr), (_number(claim) if sep else None)


def rule_addresses(kernel, lines: Iterable[str], errors: List[Tuple[str, str]]) -> List[Finding]:
    """One finding per input address; unreadable lines are appended to ``errors``."""
    out = []
    for n, line in enumerate(lines, 1):
        try:
            parsed = parse_line(line)
        except AddressError as err:
            errors.append(("addresses", f"line {n}: {err}"))
            continue
        if parsed is None:
            continue
        va, claim = parsed
        c = kernel.check_virt_to_phys(va, claim)
        owner = None
        cls = kernel.classify(va)
        if cls.allocation is not None:
            owner = f"{cls.allocation.kind} {cls.allocation.name}"
        ev = (("verdict", c.verdict), ("linear_pa", None if c.linear_pa is None else f"0x{c.linear_pa:x}"),
              ("walk_pa", None if c.walk_pa is None else f"0x{c.walk_pa:x}"),
              ("claimed_pa", None if c.claimed_pa is None else f"0x{c.claimed_pa:x}"),
              ("region", c.region.kind), ("branch", c.branch), ("debug_virtual", c.debug_virtual),
              ("bogus_pa_holds", c.bogus))
        out.append(Finding("addresses", _SEVERITY.get(c.verdict, "info"), c.verdict, va, va + 1,
                           c.walk_pa, owner, c.explanation, ev))
    return out


__all__ = ["rule_addresses", "parse_line"]
