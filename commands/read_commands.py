"""Commands that read kernel memory: ``rd`` (annotated words) and ``search`` (where a value is stored).

Thin shells: the calls parse arguments and ask :func:`kmemdbg.memdump.read_words`
and :func:`kmemdbg.search.search`; the renderers turn their frozen results into
an :class:`~kmemdbg.commands.renderers.Output` (text that fits 80 columns, or
one JSON item per command, described by ``kmemdbg/schemas/rd.json`` and
``search.json``).  :mod:`kmemdbg.commands.table` appends :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional, Tuple

from ..errors import KmemdbgError
from ..parse import parse_address, parse_number
from . import arg_types, calls
from .renderers import Output
from .spec import CLI, CRASH, DRGN, EVERYWHERE, Command, arg

WIDTH = 80
_BITS = (8, 16, 32, 64)


def _hex(value: Optional[int]) -> Optional[str]:
    return None if value is None else f"0x{value:x}"


def _count_arg(text: str) -> int:
    """A count: decimal or 0x-hexadecimal, at least 1."""
    return arg_types.count(text, "count", 1)


def _owner_json(owner) -> Optional[Dict[str, Any]]:
    if owner is None:
        return None
    return {"kind": owner.kind, "name": owner.name, "symbol": owner.symbol, "offset": owner.offset,
            "module": owner.module, "text": owner.text}


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[:WIDTH - 3] + "..."


def _short(owner) -> str:
    """An owner in few columns: ``symbol+0xoff [module]``, ``[cache]+0xoff``, else its text."""
    if owner.symbol is not None and owner.offset is not None:
        return f"{owner.symbol}+0x{owner.offset:x}" + (f" [{owner.module}]" if owner.module else "")
    if owner.kind == "slab-object":
        return f"[{owner.name}]+0x{owner.offset:x}"
    if owner.kind == "struct-page":
        return owner.name + (f"+0x{owner.offset:x}" if owner.offset else "")
    if owner.kind == "vmap-area":
        return f"vmap+0x{owner.offset:x} {owner.name}"
    if owner.kind == "memory" and owner.symbol is not None:
        return f"{owner.symbol}+0x{owner.offset:x} ({owner.name})"
    return owner.text


def _ascii(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7f else "." for b in data)


# -- rd -------------------------------------------------------------------------------------------
def call_rd(inv: calls.Invocation):
    """The :class:`~kmemdbg.memdump.MemDump` of ``rd [-p | -u --pid N] ADDR [COUNT]``."""
    from ..memdump import PHYSICAL, USER, VIRTUAL, read_words

    args = inv.args
    if args.user and args.pid is None:
        raise KmemdbgError("rd -u: give the task with --pid N")
    if args.physical and args.pid is not None:
        raise KmemdbgError("rd: -p reads physical memory, which has no --pid")
    k = inv.kernel()
    space = PHYSICAL if args.physical else USER if (args.user or args.pid is not None) else VIRTUAL
    start = parse_number(args.address) if space == PHYSICAL else parse_address(args.address, k)
    width = (args.bits or 64) // 8
    return read_words(k, start, args.count, width, space, args.pid)


def _rd_lines(dump, ascii_column: bool) -> List[str]:
    lines = []
    if dump.width == 8:
        for w, off in zip(dump.words, range(0, len(dump.data), 8)):
            line = f"{w.address:016x}:  {w.value:016x}"
            if ascii_column:
                line += "  " + _ascii(dump.data[off:off + 8])
            if w.owner is not None:
                line += "  " + _short(w.owner)
            lines.append(_fit(line))
        return lines
    digits = 2 * dump.width
    per_line = 16
    if ascii_column and 18 + per_line // dump.width * (digits + 1) + 1 + per_line > WIDTH:
        per_line = 8
    for off in range(0, len(dump.data), per_line):
        chunk = dump.words[off // dump.width:(off + per_line) // dump.width]
        line = f"{dump.start + off:016x}:  " + " ".join(f"{w.value:0{digits}x}" for w in chunk)
        if ascii_column:
            pad = (per_line // dump.width - len(chunk)) * (digits + 1)
            line += " " * pad + "  " + _ascii(dump.data[off:off + per_line])
        lines.append(line)
    return lines


def rd_json(dump) -> Dict[str, Any]:
    """The one JSON item of ``rd``: addresses as "0x..." strings in the dump's ``space``."""
    return {"space": dump.space, "pid": dump.pid, "start": _hex(dump.start), "width": dump.width,
            "count": dump.count, "complete": dump.complete,
            "words": [{"address": _hex(w.address), "value": _hex(w.value), "owner": _owner_json(w.owner)}
                      for w in dump.words],
            "stop": None if dump.stop is None else {"address": _hex(dump.stop.address),
                                                    "reason": dump.stop.reason}}


def render_rd(dump, inv: calls.Invocation) -> Output:
    more: Dict[str, Any] = {}
    if dump.stop is not None:
        unit = "byte" if dump.width == 1 else f"{dump.width}-byte unit"
        more = {"warnings": (f"kmemdbg: rd: {len(dump.words)} of {dump.count} {unit}s read: the page at "
                             f"{dump.space} 0x{dump.stop.address:x} is unreadable: {dump.stop.reason}",),
                "exit_status": 1}
    if inv.as_json:
        return Output(json_items=[rd_json(dump)], **more)
    return Output(text="\n".join(_rd_lines(dump, inv.args.ascii)), **more)


# -- search ---------------------------------------------------------------------------------------
def call_search(inv: calls.Invocation):
    """The :class:`~kmemdbg.search.SearchResult` of ``search VALUE [--mask M] [--start --end | --physical]``."""
    from ..search import search

    args = inv.args
    value = parse_number(args.value)
    mask = parse_number(args.mask) if args.mask is not None else None
    k = inv.kernel()
    if args.physical:
        start = parse_number(args.start) if args.start else None
        end = parse_number(args.end) if args.end else None
    else:
        start = parse_address(args.start, k) if args.start else None
        end = parse_address(args.end, k) if args.end else None
    return search(k, value, mask, args.width, start, end, args.physical, args.limit)


def _scope_text(r) -> str:
    if r.scope == "kernel":
        return "kernel memory"
    lo = f"0x{r.start:x}" if r.start is not None else "0x0"
    hi = f"0x{r.end:x}" if r.end is not None else "the end of RAM"
    return f"{r.scope} {lo}-{hi}"


def _search_lines(r) -> List[str]:
    digits = 2 * r.width
    masked = r.mask != (1 << 8 * r.width) - 1
    what = f"0x{r.value:x}" + (f" (mask 0x{r.mask:x})" if masked else "")
    count = f"{len(r.hits)}{'+' if r.truncated else ''} hit{'' if len(r.hits) == 1 else 's'}"
    lines = [_fit(f"{what} in {_scope_text(r)}: {count}")]
    kind = max([6] + [len(h.memory) for h in r.hits])
    if r.hits:
        lines.append(f"{'VA':<16}  {'PA':<11}  " + (f"{'VALUE':<{digits}}  " if masked else "")
                     + f"{'MEMORY':<{kind}}  OWNER")
    for h in r.hits:
        where = f"{h.va:016x}" if h.va is not None else "-".ljust(16)
        line = f"{where}  {h.pa:<11x}  "
        if masked:
            line += f"{h.value:0{digits}x}  "
        line += f"{h.memory:<{kind}}  " + (_short(h.owner) if h.owner is not None else "")
        lines.append(_fit(line.rstrip()))
    lines.append(f"searched {r.scanned_bytes} bytes" + (f", {r.unreadable_bytes} unreadable"
                                                        if r.unreadable_bytes else ""))
    lines += [_fit(f"note: {n}") for n in r.notes]
    return lines


def search_json(r) -> Dict[str, Any]:
    """The one JSON item of ``search``: the query, the hits, how much was searched."""
    return {"value": _hex(r.value), "mask": _hex(r.mask), "width": r.width, "scope": r.scope,
            "start": _hex(r.start), "end": _hex(r.end), "limit": r.limit, "truncated": r.truncated,
            "scanned_bytes": r.scanned_bytes, "unreadable_bytes": r.unreadable_bytes,
            "missing": list(r.missing), "notes": list(r.notes),
            "hits": [{"va": _hex(h.va), "pa": _hex(h.pa), "value": _hex(h.value), "memory": h.memory,
                      "owner": _owner_json(h.owner)} for h in r.hits]}


def render_search(r, inv: calls.Invocation) -> Output:
    warnings: List[str] = []
    status = 0
    if r.truncated:
        warnings.append(f"kmemdbg: search: more than {r.limit} hits: the first {r.limit} are shown "
                        "(--limit N shows more)")
    if r.missing:
        warnings.append("kmemdbg: search: not all of it was searched: " + "; ".join(r.missing))
        status = 1
    if inv.as_json:
        return Output(json_items=[search_json(r)], warnings=tuple(warnings), exit_status=status)
    return Output(text="\n".join(_search_lines(r)), warnings=tuple(warnings), exit_status=status)


def _limit_arg(text: str) -> int:
    from ..search import MAX_LIMIT

    value = _count_arg(text)
    if value > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_LIMIT} hits")
    return value


def _width_arg(text: str) -> int:
    if text not in ("2", "4", "8"):
        raise argparse.ArgumentTypeError(f"{text!r}: give 2, 4 or 8 bytes")
    return int(text)


COMMANDS: Tuple[Command, ...] = (
    Command("rd", "read memory as words, each 64-bit value annotated with its owner", (
        arg("address", metavar="ADDR", help="kernel virtual address or symbol[+offset]; "
            "physical with -p, a user address with -u"),
        arg("count", metavar="COUNT", nargs="?", type=_count_arg, default=1,
            help="units to read (default 1; at most 1 MiB)"),
        arg("-p", "--physical", action="store_true", help="ADDR is physical", exclusive_group="space"),
        arg("-u", "--user", action="store_true", help="ADDR is a user address of the task --pid",
            exclusive_group="space"),
        arg("--pid", type=arg_types.pid, help="the task whose user address space -u reads"),
        *(arg(f"-{b}", dest="bits", action="store_const", const=b, exclusive_group="width",
              help=f"{b}-bit units" + (" (the default; values are annotated)" if b == 64 else ""))
          for b in _BITS),
        arg("-a", "--ascii", action="store_true", help="add the bytes as ASCII")),
        call_rd, render_rd, EVERYWHERE),
    Command("search", "find where a value is stored in kernel memory, with each owner", (
        arg("value", metavar="VALUE", help="hexadecimal value"),
        arg("--mask", metavar="M", help="compare only the bits set in M (hexadecimal)"),
        arg("--start", metavar="ADDR", help="first address (virtual, physical with --physical)"),
        arg("--end", metavar="ADDR", help="end address, exclusive"),
        arg("--physical", action="store_true", help="search physical RAM (default: all of it)"),
        arg("--width", type=_width_arg, default=8, metavar="BYTES", help="word size: 2, 4 or 8 (default 8)"),
        arg("--limit", type=_limit_arg, default=100, metavar="N", help="hits to show (default 100)")),
        call_search, render_search, frozenset({CLI, DRGN, CRASH})),
)
