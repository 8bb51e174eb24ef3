"""Rendering results for people (aligned text, 80 columns) and pipelines (JSON).

The library never prints; commands call these functions.  Addresses render
as ``0x%016x`` in text and as lowercase ``"0x..."`` strings in JSON.
"""
from __future__ import annotations

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
        "permissions": None if walk.permissions is None else walk.permissions.short(),
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
