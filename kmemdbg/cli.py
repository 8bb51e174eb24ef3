"""The ``kmemdbg`` command line: a thin shell over the library.

    kmemdbg [--core PATH | --kcore | --qmp SOCKET] [--vmlinux PATH] [--json] COMMAND ...

Every failure is one line on stderr and a non-zero exit status (1: bad input
or unreadable source; 2: usage); no traceback reaches the user.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional, Tuple

from . import render
from .errors import AddressError, KmemdbgError

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "vmcores", "fixtures", "x86_64-6.12-l4")


def parse_number(text: str) -> int:
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    if not t:
        raise AddressError(f"{text!r} is not an address")
    try:
        value = int(t, 16)
    except ValueError:
        raise AddressError(f"{text!r} is not a hexadecimal address") from None
    if value >> 64:
        raise AddressError(f"{text!r} does not fit in 64 bits")
    return value


def parse_address(text: str, kernel=None) -> int:
    """Hex with or without ``0x``, or ``symbol[+offset]`` when a kernel with symbols is given."""
    t = text.strip()
    try:
        return parse_number(t)
    except AddressError:
        if kernel is None or not t or not (t[0].isalpha() or t[0] == "_"):
            raise
    name, _, off = t.partition("+")
    base = kernel.symbols.address(name.strip())
    if base is None:
        raise AddressError(f"unknown symbol {name.strip()!r}"
                           + ("" if kernel.symbols.source != "none" else " (no symbols loaded)"))
    return (base + (parse_number(off) if off else 0)) & ((1 << 64) - 1)


def _open(args):
    import kmemdbg

    if getattr(args, "kernel", None) is not None:
        return args.kernel
    sources = [x for x in (args.core, args.qmp) if x] + (["kcore"] if args.kcore else [])
    if len(sources) > 1:
        raise KmemdbgError("give only one of --core, --kcore, --qmp")
    if not sources:
        raise KmemdbgError("no kernel given: use --core PATH, --kcore or --qmp SOCKET")
    return kmemdbg.open(core=args.core, kcore=args.kcore, qmp=args.qmp, vmlinux=args.vmlinux,
                        allow_truncated=args.allow_truncated)


def _emit(args, json_items, text_blocks: List[List[str]]):
    if args.json:
        return json_items
    return "\n\n".join("\n".join(b) for b in text_blocks)


def cmd_layout(args):
    k = _open(args)
    if args.json:
        return [render.layout_json(k.layout)]
    lines = render.wrap(f"{k.description}: {k.tables.format.name}, root table pa "
                         f"0x{k.tables.root_pa:x}", "", "  ")
    lines += render.wrap(f"({k.tables.evidence})") + render.layout_text(k.layout)
    for m in k.notes:
        lines += render.wrap(f"note: {m}", "", "  ")
    return "\n".join(lines)


def cmd_classify(args):
    k = _open(args)
    results = [k.classify(parse_address(a, k)) for a in args.addresses]
    return _emit(args, [render.classify_json(c) for c in results], [render.classify_text(c) for c in results])


def cmd_vtop(args):
    k = _open(args)
    items, blocks = [], []
    user = None
    if args.pid is not None or args.mm is not None:
        user = k.user_walker(pid=args.pid, mm=parse_address(args.mm, k) if args.mm else None)
    for a in args.addresses:
        va = parse_address(a, k)
        walk, cls = (user or k.walker).walk(va), k.classify(va)
        items.append(render.vtop_json(walk, cls))
        blocks.append(render.vtop_text(walk, cls))
    return _emit(args, items, blocks)


def _split_claim(text: str) -> Tuple[str, Optional[str]]:
    addr, sep, claim = text.partition("=")
    return addr, (claim if sep else None)


def cmd_check(args):
    k = _open(args)
    items, blocks = [], []
    for a in args.addresses:
        addr, claim = _split_claim(a)
        check = k.check_virt_to_phys(parse_address(addr, k),
                                     parse_number(claim) if claim is not None else None, args.size)
        items.append(render.check_json(check))
        blocks.append(render.check_text(check))
    return _emit(args, items, blocks)


def cmd_ptov(args):
    k = _open(args)
    items, blocks = [], []
    for a in args.addresses:
        pa = parse_number(a)
        maps = k.phys_to_virts(pa)
        items.append({"pa": render.hexa(pa), "mappings": [render.mapping_json(m) for m in maps]})
        block = [f"pa {render.addr(pa)}: {len(maps)} kernel mapping(s)"]
        for m in maps:
            block.append(f"  {render.addr(m.va)}  {m.level:<4} {render.size_text(m.page_size):>4}  "
                         f"{m.region.kind} ({m.region.name})")
            block += render.allocation_lines(m.allocation, "      ")
        blocks.append(block)
    return _emit(args, items, blocks)


def cmd_slice(args):
    from .slice import slice_core

    if not args.core:
        raise KmemdbgError("slice needs --core PATH (an ELF vmcore)")
    report = slice_core(args.core, args.output)
    if args.json:
        return [{"path": report.path, "size_bytes": report.size_bytes, "table_pages": report.table_pages,
                 "kallsyms_pages": report.kallsyms_pages, "extra_pages": report.extra_pages,
                 "unreadable": list(report.unreadable)}]
    return (f"{report.path}: {report.size_bytes} bytes: {report.table_pages} page-table pages, "
            f"{report.kallsyms_pages} kallsyms pages, {report.extra_pages} other pages")


def cmd_ptdump(args):
    from .progress import ProgressBar
    from .ptdump import ptdump

    k = _open(args)
    start = parse_address(args.start, k) if args.start else None
    end = parse_address(args.end, k) if args.end else None
    with ProgressBar(enabled=not args.json) as bar:
        ranges = ptdump(k, start, end, split_pa=args.json, progress=bar)
    if args.json:
        return [render.ptrange_json(r) for r in ranges]
    return "\n".join(render.ptdump_text(ranges))


def cmd_audit(args):
    from . import audit
    from .progress import ProgressBar

    try:
        audit.check_rules(args.rule)
        audit.severity_rank(args.fail_on)
    except (KmemdbgError, ValueError) as err:
        print(f"kmemdbg: {err}", file=sys.stderr)
        args.exit_status = 2
        return None
    lines = None
    if args.addresses:
        f = sys.stdin if args.addresses == "-" else open(args.addresses)
        with f:
            lines = f.read().splitlines()
    try:
        k = _open(args)
    except KmemdbgError as err:
        print(f"kmemdbg: audit could not run: {err}", file=sys.stderr)
        args.exit_status = 2
        return None
    with ProgressBar(enabled=not (args.json or args.jsonl)) as bar:
        report = audit.run_audit(k, args.rule, addresses=lines, progress=bar)
    for rule, msg in report.errors:
        print(f"kmemdbg: {rule}: {msg}", file=sys.stderr)
    args.exit_status = report.exit_status(args.fail_on)
    if args.jsonl:
        return "\n".join(json.dumps(render.finding_json(f)) for f in report.findings) or None
    if args.json:
        return [render.finding_json(f) for f in report.findings]
    return "\n".join(render.audit_text(report))


def cmd_demo(args):
    from .demo import run_demo

    return run_demo(SAMPLE, args.json)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kmemdbg", description="The truth about kernel virtual addresses.")
    src = p.add_argument_group("kernel to inspect")
    src.add_argument("--core", metavar="PATH", help="a vmcore (ELF or kdump-compressed)")
    src.add_argument("--kcore", action="store_true", help="the running kernel through /proc/kcore")
    src.add_argument("--qmp", metavar="SOCKET", help="a running QEMU guest through its QMP socket")
    p.add_argument("--vmlinux", metavar="PATH", help="debug info (optional)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="read a truncated dump as far as it goes")
    p.add_argument("--json", action="store_true", help="one JSON array per command")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, func, helptext, addresses=None):
        sp = sub.add_parser(name, help=helptext)
        if addresses:
            sp.add_argument("addresses", nargs="+", metavar=addresses)
        sp.set_defaults(func=func)
        return sp
    add("layout", cmd_layout, "the kernel's regions and where each bound came from")
    add("classify", cmd_classify, "region and allocation of each address", "ADDR")
    v = add("vtop", cmd_vtop, "walk the page tables for each address", "ADDR")
    who = v.add_mutually_exclusive_group()
    who.add_argument("--pid", type=int, help="walk the user page tables of this task")
    who.add_argument("--mm", metavar="ADDR", help="walk the user page tables of this struct mm_struct")
    c = add("check", cmd_check, "check virt_to_phys() against the walk", "ADDR[=CLAIMED_PA]")
    c.add_argument("--size", type=int, default=1, help="bytes from ADDR to check page by page")
    add("ptov", cmd_ptov, "every kernel mapping of each physical address", "PHYS")
    s = add("slice", cmd_slice, "write a small vmcore with the page tables and no user data")
    s.add_argument("output", metavar="OUT")
    pt = add("ptdump", cmd_ptdump, "the kernel page tables as merged ranges, like the kernel's ptdump")
    pt.add_argument("--start", metavar="VA", help="first virtual address (default: the kernel half)")
    pt.add_argument("--end", metavar="VA", help="end virtual address, exclusive")
    au = add("audit", cmd_audit, "W+X, aliases, linear/vmalloc integrity, virt_to_phys misuse")
    au.add_argument("--rule", action="append", metavar="NAME",
                    help="run only this rule (repeatable): wx, exec-alias, text-rw, user-kernel, "
                         "linear-integrity, vmalloc-integrity, virt-to-phys-misuse, addresses")
    au.add_argument("--addresses", metavar="FILE", help="addresses to check (ADDR[=PA] or JSON lines; - for stdin)")
    au.add_argument("--jsonl", action="store_true", help="one JSON object per finding per line")
    au.add_argument("--fail-on", default="low", metavar="SEVERITY",
                    help="exit 1 if a finding is at least this severe (info, low, medium, high; default low)")
    add("demo", cmd_demo, "walks and virt_to_phys verdicts on the bundled real sample")
    return p


_KERNELS: "dict[int, object]" = {}


def run_in_program(prog, argv: List[str]) -> Tuple[int, str]:
    """Run a kmemdbg command line on a drgn ``prog``; returns (exit status, output text).

    The Kernel built for ``prog`` is kept, so later commands reuse its layout
    and table cache.
    """
    import io
    from contextlib import redirect_stderr, redirect_stdout

    import kmemdbg

    out, err = io.StringIO(), io.StringIO()
    try:
        kernel = _KERNELS.get(id(prog))
        if kernel is None or getattr(kernel, "prog", None) is not prog:
            kernel = kmemdbg.open(prog=prog)
            _KERNELS[id(prog)] = kernel
    except KmemdbgError as e:
        return 1, f"kmemdbg: {e}"
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv, kernel=kernel)
    return status, (out.getvalue() + err.getvalue()).rstrip("\n")


def main(argv: Optional[List[str]] = None, kernel=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    args.kernel = kernel
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
    except OSError as err:
        print(f"kmemdbg: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 1
    try:
        if isinstance(out, str):
            print(out)
        elif out is not None:
            print(json.dumps(out, indent=1))
    except BrokenPipeError:
        pass
    return getattr(args, "exit_status", 0)
