"""The library call behind each command, and the typed result it returns.

A call takes an :class:`Invocation` (the parsed arguments and how to get the
kernel) and returns a frozen result; it never prints.  Rendering the result
is :mod:`kmemdbg.commands.renderers`' job.  Addresses in results are ints:
``va`` virtual, ``pa`` physical.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, TextIO, Tuple, TypeVar

from ..errors import KmemdbgError
from ..parse import parse_address, parse_number


@dataclass(frozen=True)
class Invocation:
    """One run of a command: its parsed ``args``, whether JSON was asked for, ``kernel()``
    (the front end's kernel, opened at most once) and the stream a progress bar may draw on."""

    args: argparse.Namespace
    as_json: bool
    kernel: Callable[[], Any]
    stderr: TextIO


@dataclass(frozen=True)
class ArgumentError:
    """One argument of many that could not be answered, in its place among the answers:
    the ``argument`` as given and the one-line ``message`` (without ``kmemdbg:``)."""

    argument: str
    message: str


T = TypeVar("T")


def each_argument(arguments, answer: Callable[[str], T]) -> Tuple[Any, ...]:
    """``answer(a)`` for every argument, an :class:`ArgumentError` in place of one that raises
    KmemdbgError (as crash does: one bad address does not stop the others)."""
    out: List[Any] = []
    for a in arguments:
        try:
            out.append(answer(a))
        except KmemdbgError as err:
            out.append(ArgumentError(a, " ".join(str(err).split()) or type(err).__name__))
    return tuple(out)


@dataclass(frozen=True)
class LayoutResult:
    description: str            # where the kernel came from
    format_name: str            # paging format
    root_pa: int                # pa of the kernel's root table
    evidence: str               # how the root was found
    layout: Any                 # kmemdbg.layout.Layout
    notes: Tuple[str, ...]      # what the kernel could not read


@dataclass(frozen=True)
class ClassifyResult:
    classifications: Tuple[Any, ...]    # Classification or ArgumentError, per argument


@dataclass(frozen=True)
class Translation:
    walk: Any                   # kmemdbg.walk.Walk of the va
    classification: Any
    page: Any = None            # kmemdbg.pageinfo.PageInfo of the frame (no sweeps), or None


@dataclass(frozen=True)
class VtopResult:
    translations: Tuple[Any, ...]       # Translation or ArgumentError, per argument


@dataclass(frozen=True)
class CheckResult:
    checks: Tuple[Any, ...]     # virt_to_phys verdicts (or ArgumentError), per argument


@dataclass(frozen=True)
class PhysMappings:
    pa: int
    mappings: Tuple[Any, ...]   # every kernel va mapping pa


@dataclass(frozen=True)
class PtovResult:
    entries: Tuple[Any, ...]            # PhysMappings or ArgumentError, per argument
    faults: Tuple[Any, ...]             # table faults under which mappings were not seen
    first_fault_level: Optional[str]    # name of the paging level of faults[0]


@dataclass(frozen=True)
class SliceResult:
    report: Any                 # kmemdbg.slice.SliceReport


@dataclass(frozen=True)
class PtdumpResult:
    ranges: Tuple[Any, ...]     # merged ranges and fault ranges, in va order
    faults: Tuple[Any, ...]     # the fault ranges among them


@dataclass(frozen=True)
class AuditNotRun:
    reason: str                 # first line of why the audit could not start


@dataclass(frozen=True)
class AuditResult:
    report: Any                 # kmemdbg.audit.AuditReport
    fault_ranges: Tuple[Any, ...]   # table faults the audit sweep could not look under
    exit_status: int            # by --fail-on and the faults


def _split_claim(text: str) -> Tuple[str, Optional[str]]:
    addr, sep, claim = text.partition("=")
    return addr, (claim if sep else None)


def call_layout(inv: Invocation) -> LayoutResult:
    k = inv.kernel()
    layout = k.layout               # may add notes: read them after it
    return LayoutResult(k.description, k.tables.format.name, k.tables.root_pa, k.tables.evidence, layout,
                        tuple(k.notes))


def call_classify(inv: Invocation) -> ClassifyResult:
    k = inv.kernel()
    return ClassifyResult(each_argument(inv.args.addresses, lambda a: k.classify(parse_address(a, k))))


def call_vtop(inv: Invocation) -> VtopResult:
    k = inv.kernel()
    args = inv.args
    user = None
    if args.pid is not None or args.mm is not None:
        user = k.user_walker(pid=args.pid, mm=parse_address(args.mm, k) if args.mm else None)

    def one(a: str) -> Translation:
        va = parse_address(a, k)
        if user is None and k.arch_spec.is_user_address(k.tables.format, va):
            from ..errors import AddressError

            raise AddressError(f"0x{va:x}: user address: give --pid or --mm")
        walk = (user or k.walker).walk(va)
        return Translation(walk, k.classify(va), frame_page(k, walk.pa))
    return VtopResult(each_argument(args.addresses, one))


def frame_page(k, pa: Optional[int]):
    """vtop's struct page line: the :class:`~kmemdbg.pageinfo.PageInfo` of the frame holding
    physical ``pa`` without the table sweeps, or None (no pa, or nothing known of it)."""
    from ..pageinfo import GIVEN_PA, page_info, resolve_frame

    if pa is None:
        return None
    try:
        return page_info(k, resolve_frame(k, GIVEN_PA, pa), mappings=False, tables=False)
    except KmemdbgError:        # beyond the end of RAM (MMIO): no struct page to show
        return None


def call_check(inv: Invocation) -> CheckResult:
    k = inv.kernel()

    def one(a: str):
        addr, claim = _split_claim(a)
        return k.check_virt_to_phys(parse_address(addr, k), parse_number(claim) if claim is not None else None,
                                    inv.args.size)
    return CheckResult(each_argument(inv.args.addresses, one))


def call_ptov(inv: Invocation) -> PtovResult:
    k = inv.kernel()

    def one(a: str) -> PhysMappings:
        pa = parse_number(a)
        return PhysMappings(pa, tuple(k.phys_to_virts(pa)))
    entries = each_argument(inv.args.addresses, one)
    faults = tuple(k.reverse_faults)
    return PtovResult(entries, faults, faults[0].level if faults else None)


def call_slice(inv: Invocation) -> SliceResult:
    from ..slice import slice_core

    args = inv.args
    if not args.core:
        raise KmemdbgError("slice needs --core PATH (an ELF vmcore)")
    return SliceResult(slice_core(args.core, args.output, allow_truncated=args.allow_truncated))


def call_ptdump(inv: Invocation) -> PtdumpResult:
    from ..progress import ProgressBar
    from ..ptdump import PtFault, join_strided, ptdump

    k = inv.kernel()
    args = inv.args
    start = parse_address(args.start, k) if args.start else None
    end = parse_address(args.end, k) if args.end else None
    sweep = None
    if getattr(args, "pid", None) is not None:   # a task's user half, through its mm->pgd
        from ..taskinfo import user_sweep

        sweep = user_sweep(k, args.pid)
    with ProgressBar(stream=inv.stderr, enabled=not inv.as_json) as bar:
        ranges = ptdump(k, start, end, split_pa=inv.as_json, progress=bar, faults=True, sweep=sweep)
    if inv.as_json:
        ranges = join_strided(ranges)   # ESPFIX's 65536 lone pages as one range with a stride
    if not ranges and start is None and end is None and sweep is None:
        raise KmemdbgError(f"the kernel root table (pa 0x{k.tables.root_pa:x}) maps nothing in the kernel "
                           "half: these are not a running kernel's tables")
    return PtdumpResult(tuple(ranges), tuple(r for r in ranges if isinstance(r, PtFault)))


def call_audit(inv: Invocation):
    """An :class:`AuditResult`, or :class:`AuditNotRun` for bad rules, severity, input or kernel."""
    from .. import audit
    from ..audit.addresses import read_lines
    from ..progress import ProgressBar

    args = inv.args
    try:
        audit.check_rules(args.rule)
        audit.severity_rank(args.fail_on)
        lines = read_lines(args.addresses) if args.addresses else None
        k = inv.kernel()
        k.layout  # an audit on a guessed layout would audit the wrong regions
    except (KmemdbgError, ValueError) as err:
        return AuditNotRun(str(err).splitlines()[0])
    with ProgressBar(stream=inv.stderr, enabled=not (inv.as_json or args.jsonl)) as bar:
        context = audit.AuditContext(k, progress=bar)
        report = audit.run_audit(k, args.rule, addresses=lines, progress=bar, context=context)
    status = report.exit_status(args.fail_on)
    faults: Tuple[Any, ...] = ()
    if context.sweep.faults:
        from ..ptdump import fault_ranges

        faults = tuple(fault_ranges(context.sweep.faults, k.layout))
        status = max(status, 1)
    return AuditResult(report, faults, status)


def call_demo(inv: Invocation):
    """The :class:`~kmemdbg.demo.DemoReport` of the bundled sample."""
    from ..demo import SAMPLE_DIR, demo_report

    return demo_report(SAMPLE_DIR)
