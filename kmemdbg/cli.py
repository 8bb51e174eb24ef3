"""The ``kmemdbg`` command line: a thin shell over the library.

``kmemdbg [--core PATH] [--json] COMMAND ...``.  Every failure is one line on
stderr and a non-zero exit status; no traceback reaches the user.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from .errors import AddressError, KmemdbgError
from . import render


def parse_address(text: str) -> int:
    """Hexadecimal with or without ``0x``; raises AddressError otherwise."""
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    try:
        value = int(t, 16)
    except ValueError:
        raise AddressError(f"{text!r} is not a hexadecimal address") from None
    if value < 0 or value >> 64:
        raise AddressError(f"{text!r} does not fit in 64 bits")
    return value


def _open(args):
    from .session import open_core

    if not args.core:
        raise KmemdbgError("no kernel given: use --core PATH")
    return open_core(args.core)


def cmd_vtop(args) -> object:
    session = _open(args)
    walks = [session.translate(parse_address(a)) for a in args.addresses]
    if args.json:
        return [render.walk_json(w) for w in walks]
    lines: List[str] = []
    for w in walks:
        lines += render.walk_text(w)
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def cmd_demo(args) -> object:
    from .demo import run_demo

    return run_demo(args.json)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kmemdbg", description="The truth about kernel virtual addresses.")
    p.add_argument("--core", metavar="PATH", help="an ELF vmcore")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    v = sub.add_parser("vtop", help="walk the page tables for each address")
    v.add_argument("addresses", nargs="+", metavar="ADDR")
    v.set_defaults(func=cmd_vtop)
    d = sub.add_parser("demo", help="walks and virt_to_phys verdicts on the bundled sample")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_usage(sys.stderr)
        print("kmemdbg: error: a COMMAND is required", file=sys.stderr)
        return 2
    try:
        out = args.func(args)
    except KmemdbgError as err:
        print(f"kmemdbg: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kmemdbg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    if isinstance(out, str):
        print(out)
    else:
        print(json.dumps(out, indent=1))
    return 0
