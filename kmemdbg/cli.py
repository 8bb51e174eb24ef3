"""The ``kmemdbg`` command line: a thin shell over the library.

    kmemdbg [--core PATH | --kcore | --qmp SOCKET] [--vmlinux PATH] [--json] COMMAND ...

Every failure is one line on stderr and a non-zero exit status (1: bad input
or unreadable source; 2: usage); no traceback reaches the user.  A command
whose answer is incomplete (a ptdump or ptov over tables with faults) prints
what it has, one line on stderr saying what is missing, and exits 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
from typing import Iterable, List, Optional, Tuple

from . import render
from .errors import AddressError, KmemdbgError, SourceError

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "vmcores", "fixtures", "x86_64-6.12-l4")


_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)", re.ASCII)
_SYMBOL = re.compile(r"([A-Za-z_.][A-Za-z0-9_.$]*)(?:\+(.*))?", re.ASCII | re.DOTALL)
#: Characters of an address argument shown in an error (a pasted file must not flood the line).
_SHOWN = 60


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def parse_number(text: str) -> int:
    """A 64-bit hexadecimal number, ``0x`` optional: ASCII hex digits only (no ``_``, signs,
    inner spaces or other scripts' digits).  Raises AddressError."""
    m = _HEX.fullmatch(text.strip())
    if m is None:
        raise AddressError(f"{_shown(text)} is not a hexadecimal address")
    value = int(m.group(1), 16)
    if value >> 64:
        raise AddressError(f"{_shown(text)} does not fit in 64 bits")
    return value


def parse_address(text: str, kernel=None) -> int:
    """Hex with or without ``0x``, or ``symbol[+offset]`` when a kernel with symbols is given."""
    t = text.strip()
    try:
        return parse_number(t)
    except AddressError:
        m = _SYMBOL.fullmatch(t)
        if kernel is None or m is None:
            raise
    name, off = m.group(1), m.group(2)
    if off is not None and _HEX.fullmatch(off) is None:
        raise AddressError(f"{_shown(text)}: the offset after '+' is not a hexadecimal number")
    base = kernel.symbols.address(name)
    if base is None:
        raise AddressError(f"unknown symbol {name!r}"
                           + ("" if kernel.symbols.source != "none" else " (no symbols loaded)"))
    return (base + (parse_number(off) if off is not None else 0)) & ((1 << 64) - 1)


def _open(args):
    import kmemdbg

    if getattr(args, "kernel", None) is not None:
        if getattr(args, "guess_layout", False):
            args.kernel.guess_layout = True
        return args.kernel
    sources = [x for x in (args.core, args.qmp) if x] + (["kcore"] if args.kcore else [])
    if len(sources) > 1:
        raise KmemdbgError("give only one of --core, --kcore, --qmp")
    if not sources:
        raise KmemdbgError("no kernel given: use --core PATH, --kcore or --qmp SOCKET")
    kernel = kmemdbg.open(core=args.core, kcore=args.kcore, qmp=args.qmp, vmlinux=args.vmlinux,
                          allow_truncated=args.allow_truncated, guess_layout=args.guess_layout)
    args.kernel = kernel
    return kernel


def _incomplete(args, what: str) -> None:
    """Say on one stderr line that ``what`` is missing from the output; exit status 1."""
    print(f"kmemdbg: {args.command}: {what}", file=sys.stderr)
    args.exit_status = max(getattr(args, "exit_status", 0), 1)


def _emit(args, json_items, text_blocks: List[List[str]]):
    if args.json:
        return json_items
    return "\n\n".join("\n".join(b) for b in text_blocks)


def cmd_layout(args):
    k = _open(args)
    if args.json:
        obj = render.layout_json(k.layout)
        obj["missing"] += [m for m in k.notes if m.startswith("no symbols")]
        obj["missing"] += [f"guessed: {q}" for q in k.layout.guessed]
        return [obj]
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
    pas = [parse_number(a) for a in args.addresses]
    for pa in pas:
        maps = k.phys_to_virts(pa)
        items.append({"pa": render.hexa(pa), "mappings": [render.mapping_json(m) for m in maps]})
        block = [f"pa {render.addr(pa)}: {len(maps)} kernel mapping(s)"]
        for m in maps:
            block.append(f"  {render.addr(m.va)}  {m.level:<4} {render.size_text(m.page_size):>4}  "
                         f"{m.region.kind} ({m.region.name})")
            block += render.allocation_lines(m.allocation, "      ")
        blocks.append(block)
    if k.reverse_faults:
        f = k.reverse_faults[0]
        _incomplete(args, f"the page tables have {len(k.reverse_faults)} fault(s), first {f.reason} at "
                          f"{f.level} for 0x{f.va:016x} (table pa "
                          f"0x{f.table_pa:x}): mappings under them are not listed")
    return _emit(args, items, blocks)


def cmd_slice(args):
    from .slice import slice_core

    if not args.core:
        raise KmemdbgError("slice needs --core PATH (an ELF vmcore)")
    report = slice_core(args.core, args.output, allow_truncated=args.allow_truncated)
    if args.json:
        return [{"path": report.path, "size_bytes": report.size_bytes, "table_pages": report.table_pages,
                 "kallsyms_pages": report.kallsyms_pages, "extra_pages": report.extra_pages,
                 "unreadable": list(report.unreadable)}]
    return (f"{report.path}: {report.size_bytes} bytes: {report.table_pages} page-table pages, "
            f"{report.kallsyms_pages} kallsyms pages, {report.extra_pages} other pages")


def cmd_ptdump(args):
    from .progress import ProgressBar
    from .ptdump import PtFault, ptdump

    k = _open(args)
    start = parse_address(args.start, k) if args.start else None
    end = parse_address(args.end, k) if args.end else None
    with ProgressBar(enabled=not args.json) as bar:
        ranges = ptdump(k, start, end, split_pa=args.json, progress=bar, faults=True)
    faults = [r for r in ranges if isinstance(r, PtFault)]
    if not ranges and start is None and end is None:
        raise KmemdbgError(f"the kernel root table (pa 0x{k.tables.root_pa:x}) maps nothing in the kernel "
                           "half: these are not a running kernel's tables")
    if faults:
        _incomplete(args, render.ptdump_faults_line(faults))
    if args.json:
        return (render.ptrange_json(r) for r in ranges)
    return "\n".join(render.ptdump_text(ranges))


#: Bytes of an --addresses file read at most (a million lines of ADDR=PA fit easily).
MAX_ADDRESSES_BYTES = 64 << 20


def read_lines(path: str) -> List[str]:
    """The lines of an --addresses file (``-``: stdin).

    A regular file or a pipe is read (opened without blocking, so a FIFO
    with no writer is not waited for); a line that is not UTF-8 is kept as a
    line the ``addresses`` rule reports as bad.  Raises SourceError.
    """
    if path == "-":
        data = sys.stdin.buffer.read(MAX_ADDRESSES_BYTES + 1)
    else:
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as err:
            raise SourceError(f"{path}: cannot open: {err.strerror}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                from .sources.dumpfile import file_kind

                raise SourceError(f"{path}: {file_kind(mode)}, not a file of addresses")
            os.set_blocking(fd, True)
            chunks, size = [], 0
            while size <= MAX_ADDRESSES_BYTES:
                more = os.read(fd, 1 << 20)
                if not more:
                    break
                chunks.append(more)
                size += len(more)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    if len(data) > MAX_ADDRESSES_BYTES:
        raise SourceError(f"{path}: more than {MAX_ADDRESSES_BYTES} bytes of addresses")
    out = []
    for raw in data.splitlines():
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(BAD_TEXT_LINE)
    return out


#: Stands for an input line that is not UTF-8 text (the addresses rule reports it).
BAD_TEXT_LINE = "\ufffd"


def audit_error_lines(errors: Iterable[Tuple[str, str]]) -> List[str]:
    """At most one line per distinct failure: rules that failed alike are named together,
    and repeated errors of one rule (bad input lines) are counted, not listed."""
    by_rule: "dict[str, List[str]]" = {}
    for rule, msg in errors:
        by_rule.setdefault(rule, []).append(msg)
    by_msg: "dict[str, List[str]]" = {}
    for rule, msgs in by_rule.items():
        text = msgs[0] + (f" (and {len(msgs) - 1} more)" if len(msgs) > 1 else "")
        by_msg.setdefault(text, []).append(rule)
    return [f"kmemdbg: {', '.join(rules)}: {msg}" for msg, rules in by_msg.items()]


def cmd_audit(args):
    from . import audit
    from .progress import ProgressBar

    try:
        audit.check_rules(args.rule)
        audit.severity_rank(args.fail_on)
        lines = read_lines(args.addresses) if args.addresses else None
        k = _open(args)
        k.layout  # an audit on a guessed layout would audit the wrong regions
    except (KmemdbgError, ValueError) as err:
        print(f"kmemdbg: audit could not run: {str(err).splitlines()[0]}", file=sys.stderr)
        args.exit_status = 2
        return None
    with ProgressBar(enabled=not (args.json or args.jsonl)) as bar:
        context = audit.AuditContext(k, progress=bar)
        report = audit.run_audit(k, args.rule, addresses=lines, progress=bar, context=context)
    for line in audit_error_lines(report.errors):
        print(line, file=sys.stderr)
    args.exit_status = report.exit_status(args.fail_on)
    if context.sweep.faults:
        from .ptdump import fault_ranges

        faults = fault_ranges(context.sweep.faults, k.layout)
        print(f"kmemdbg: audit: {render.ptdump_faults_line(faults).replace('shown', 'audited')}",
              file=sys.stderr)
        args.exit_status = max(args.exit_status, 1)
    if args.jsonl:
        return "\n".join(json.dumps(render.finding_json(f)) for f in report.findings) or None
    if args.json:
        return [render.finding_json(f) for f in report.findings]
    return "\n".join(render.audit_text(report))


def cmd_demo(args):
    from .demo import run_demo

    return run_demo(SAMPLE, args.json)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: ``kmemdbg: usage: MESSAGE (...--help for more)``."""

    def error(self, message: str):
        message = " ".join(message.split())
        print(f"kmemdbg: usage: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _size_arg(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least 1 byte")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kmemdbg", description="The truth about kernel virtual addresses.")
    src = p.add_argument_group("kernel to inspect")
    src.add_argument("--core", metavar="PATH", help="a vmcore (ELF or kdump-compressed)")
    src.add_argument("--kcore", action="store_true", help="the running kernel through /proc/kcore")
    src.add_argument("--qmp", metavar="SOCKET", help="a running QEMU guest through its QMP socket")
    p.add_argument("--vmlinux", metavar="PATH", help="debug info (optional)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="read a truncated dump as far as it goes")
    p.add_argument("--guess-layout", action="store_true",
                   help="accept default region bases where the dump gives no evidence for them")
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
    c.add_argument("--size", type=_size_arg, default=1,
                   help="bytes from ADDR to check page by page (at most 65536 pages)")
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


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Optional[List[str]] = None, kernel=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    args.kernel = kernel
    if not getattr(args, "func", None):
        print("kmemdbg: usage: a COMMAND is required (see kmemdbg --help)", file=sys.stderr)
        return 2
    try:
        out = args.func(args)
    except KmemdbgError as err:
        print(f"kmemdbg: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kmemdbg: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("kmemdbg: out of memory (the dump asks for more than this machine allows)", file=sys.stderr)
        return 1
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"kmemdbg: {where}{err.strerror or _one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the promise: one line, never a traceback
        if os.environ.get("KMEMDBG_TRACEBACK"):
            raise
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}; " if tb else ""
        print(f"kmemdbg: internal error ({type(err).__name__}): {_one_line(err)} "
              f"({where}KMEMDBG_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 1
    try:
        if isinstance(out, str):
            print(out)
        elif out is not None:
            write_json(out, sys.stdout)
    except BrokenPipeError:
        pass
    except MemoryError:
        print("kmemdbg: out of memory while writing the output", file=sys.stderr)
        return 1
    return getattr(args, "exit_status", 0)


def write_json(items: Iterable, stream) -> None:
    """``json.dumps(list(items), indent=1)`` written item by item (a ptdump of a big
    kernel has hundreds of thousands), so the whole text is never in memory at once."""
    stream.write("[")
    first = True
    for item in items:
        text = json.dumps(item, indent=1).replace("\n", "\n ")
        stream.write(("\n " if first else ",\n ") + text)
        first = False
    stream.write("\n]\n" if not first else "]\n")
