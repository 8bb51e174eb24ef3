"""What ``kmemdbg COMMAND --help`` says beyond the arguments: examples, the address syntax, legends.

Kept out of the table so the table stays one record per command.  The
examples are argument lists after ``kmemdbg`` (the command line adds
``--core vmcore`` in front; a session front end shows them bare).  A
command another module adds without an entry here gets the address
syntax only if it takes addresses.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from ..parse import ADDRESS_SYNTAX

#: Argument lists after ``kmemdbg``, per command.
EXAMPLES: Dict[str, Tuple[str, ...]] = {
    "layout": ("layout", "--json layout"),
    "classify": ("classify ffffffffc03c8000 init_mm+0x40 jiffies-8", "classify --json ffffd3614000d000"),
    "vtop": ("vtop ffffd3614000d000 init_mm+0x40", "vtop --pid 1 0x400000",
             "vtop --json --mm 0xffff8c1783a4c000 0x7ffd0000"),
    "check": ("check ffffd3614000d000", "check ffffd3614000d000=0x497fc000d000",
              "check --size 0x6000 init_mm"),
    "ptov": ("ptov 0x1000000", "ptov --json 2a00000"),
    "slice": ("slice small.core",),
    "ptdump": ("ptdump --start ffffffffc0000000", "ptdump --start init_mm --end init_mm+0x1000",
               "ptdump --json > tables.json"),
    "audit": ("audit --rule wx --rule text-rw --fail-on high",
              "audit --rule addresses --addresses list.txt --jsonl"),
    "demo": ("demo",),
    "page": ("page ffff8c1782409b40", "page --pfn 2409", "page --pa 0x2409000",
             "page --page fffff57cc0090240", "page --json init_mm"),
    "vmap": ("vmap", "vmap ffffd3614000d000", "vmap --json"),
    "rd": ("rd init_mm 8", "rd -32 -a init_mm 16", "rd -p 0x1000000 4", "rd -u --pid 1 0x400000 8"),
    "search": ("search 0x490b401c9000", "search 0 --start init_mm --end init_mm+0x100 --limit 5",
               "search 0x9000 --mask 0xffff --physical", "search --json 0x490b401c9000"),
}

#: Commands whose output shows permissions, flags and table flags (the legend applies).
SHOWS_PERMISSIONS = frozenset({"vtop", "ptdump", "ptov", "audit"})
PHYSICAL_SYNTAX = "PHYS is a physical address: hexadecimal with or without 0x (2a00000, 0x2a00000)."
NUMBER_SYNTAX = "Counts and sizes are decimal or hexadecimal with 0x (4096, 0x1000)."


def table_flag_names() -> str:
    """Each architecture's ptdump table-flag names (``!RW``, ``NX``...), from its record."""
    from ..arch import ARCHES

    parts = []
    for a in ARCHES:
        names = [("" if when_set else "!") + name for name, _bit, when_set in a.ptdump_table_flags]
        if names:
            parts.append(f"{a.name}: {' '.join(names)}")
    return "; ".join(parts) or "none"


def legend() -> List[str]:
    """The legend of the permission, flag and table-flag columns, wrapped to 80 columns."""
    entries = (
        ("RW-/R-X", "permissions: kernel before the '/', user after it; R read, W write, X execute, "
                    "'-' not allowed (RW-/--- : kernel read-write, no user access)"),
        ("P RW NX", "the leaf entry's own bits, by the architecture's names"),
        ("[!US]", "what the upper-level table entries impose on top: !NAME where one clears a "
                  f"permission bit, NAME where one sets a restricting bit ({table_flag_names()})"),
        ("(mixed)", "after 'pa 0x...': the frames of the range are not contiguous (text view; "
                    "--json cuts such ranges there); (repeat): one frame mapped many times"),
    )
    lines: List[str] = []
    for key, text in entries:
        body = _wrap(text, indent=" " * 11, width=78)
        lines.append(f"  {key:<8} {body[0].lstrip()}")
        lines += body[1:]
    return lines


def _wrap(text: str, indent: str = "  ", width: int = 78) -> List[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False) or [indent]


def epilog(name: str, takes_addresses: bool, takes_physical: bool, session: bool) -> str:
    """The text after a command's arguments in its ``--help``.

    ``session``: the kernel is the session's (drgn, gdb, crash), so the
    examples have no ``--core``.
    """
    lines: List[str] = []
    examples: Sequence[str] = EXAMPLES.get(name, ())
    if examples:
        lines.append("examples:")
        lead = "kmemdbg " if session else "kmemdbg --core vmcore "
        lines += [f"  {lead}{e}" for e in examples if not (name == "slice" and session)]
    if takes_addresses:
        lines += ["", "addresses:"] + _wrap(ADDRESS_SYNTAX)
    if takes_physical:
        lines += ["", "physical addresses:"] + _wrap(PHYSICAL_SYNTAX)
    lines += ["", "numbers:"] + _wrap(NUMBER_SYNTAX)
    if name in SHOWS_PERMISSIONS:
        lines += ["", "legend:"] + legend()
    lines += [""] + _wrap("The global options (--json, --guess-layout" + ("" if session else ", --core...")
                          + ") may come before or after the command.", indent="")
    return "\n".join(lines).lstrip("\n")


def main_epilog(session: bool) -> str:
    """The text after the command list of ``kmemdbg --help``."""
    lines = ["addresses:"] + _wrap(ADDRESS_SYNTAX) + [""]
    lead = "kmemdbg " if session else "kmemdbg --core vmcore "
    lines += ["examples:", f"  {lead}vtop ffffd3614000d000 init_mm+0x40",
              f"  {lead}check --json ffffd3614000d000=0x497fc000d000",
              f"  {lead}ptdump --start ffffffffc0000000", ""]
    lines += ["'kmemdbg COMMAND --help' shows a command's arguments, examples and legend."]
    if not session:
        lines += ["Exit status: 0 done, 1 bad input, unreadable source or an incomplete answer",
                  "(audit: findings), 2 usage error."]
    return "\n".join(lines)


__all__ = ["EXAMPLES", "epilog", "main_epilog", "legend"]
