"""The one table of kmemdbg commands, which every front end is built from.

Each :class:`Command` is a name, a help line, its arguments (argparse
specs), the library call that returns a typed result
(:mod:`kmemdbg.commands.calls`) and the one renderer of that result
(:mod:`kmemdbg.commands.renderers`).  A front end offers the commands whose
``front_ends`` name it, and builds its parser with :func:`build_parser`:

    cli    every command, with the kernel-selection options (--core, --kcore, --qmp, ...)
    drgn   the commands on the session's kernel; the kernel is drgn's ``prog``
    gdb    the same but ``audit``; the kernel is the attached guest
    crash  the same as drgn; the kernel is the one crash has open

A front end whose kernel comes from its session (drgn, gdb, crash) names
itself in SESSION_FRONT_ENDS and in the ``front_ends`` of the commands it
offers, then per typed line calls
:func:`~kmemdbg.commands.execute.parse_in_session` and
:func:`~kmemdbg.commands.execute.execute_on` with its kernel (built with
:func:`kmemdbg.api.kernel_from`).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Optional, Tuple

from . import calls, memory_commands, read_commands, renderers, task_commands
from .spec import (CLI, CRASH, DRGN, EVERYWHERE as _EVERYWHERE, GDB, SESSION_FRONT_ENDS,
                   Argument, Command, arg)


def _size_arg(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least 1 byte")
    return value


def _addresses(metavar: str) -> Argument:
    return arg("addresses", nargs="+", metavar=metavar)



COMMANDS: Tuple[Command, ...] = (
    Command("layout", "the kernel's regions and where each bound came from", (),
            calls.call_layout, renderers.render_layout, _EVERYWHERE),
    Command("classify", "region and allocation of each address", (_addresses("ADDR"),),
            calls.call_classify, renderers.render_classify, _EVERYWHERE),
    Command("vtop", "walk the page tables for each address", (
        _addresses("ADDR"),
        arg("--pid", type=int, help="walk the user page tables of this task", exclusive_group="who"),
        arg("--mm", metavar="ADDR", help="walk the user page tables of this struct mm_struct",
            exclusive_group="who")),
        calls.call_vtop, renderers.render_vtop, _EVERYWHERE),
    Command("check", "check virt_to_phys() against the walk", (
        _addresses("ADDR[=CLAIMED_PA]"),
        arg("--size", type=_size_arg, default=1,
            help="bytes from ADDR to check page by page (at most 65536 pages)")),
        calls.call_check, renderers.render_check, _EVERYWHERE),
    Command("ptov", "every kernel mapping of each physical address", (_addresses("PHYS"),),
            calls.call_ptov, renderers.render_ptov, _EVERYWHERE),
    Command("slice", "write a small vmcore with the page tables and no user data",
            (arg("output", metavar="OUT"),),
            calls.call_slice, renderers.render_slice),
    Command("ptdump", "the kernel page tables as merged ranges, like the kernel's ptdump", (
        arg("--start", metavar="VA", help="first virtual address (default: the kernel half)"),
        arg("--end", metavar="VA", help="end virtual address, exclusive")),
        calls.call_ptdump, renderers.render_ptdump, _EVERYWHERE),
    Command("audit", "W+X, aliases, linear/vmalloc integrity, virt_to_phys misuse", (
        arg("--rule", action="append", metavar="NAME",
            help="run only this rule (repeatable): wx, exec-alias, text-rw, user-kernel, "
                 "linear-integrity, vmalloc-integrity, virt-to-phys-misuse, addresses"),
        arg("--addresses", metavar="FILE", help="addresses to check (ADDR[=PA] or JSON lines; - for stdin)"),
        arg("--jsonl", action="store_true", help="one JSON object per finding per line"),
        arg("--fail-on", default="low", metavar="SEVERITY",
            help="exit 1 if a finding is at least this severe (info, low, medium, high; default low)")),
        calls.call_audit, renderers.render_audit, frozenset({CLI, DRGN, CRASH})),
    Command("demo", "walks and virt_to_phys verdicts on the bundled real sample", (),
            calls.call_demo, renderers.render_demo),
) + memory_commands.COMMANDS + task_commands.COMMANDS + read_commands.COMMANDS

BY_NAME: Dict[str, Command] = {c.name: c for c in COMMANDS}


def offered(front_end: str) -> Tuple[Command, ...]:
    """The commands ``front_end`` offers, in table order."""
    return tuple(c for c in COMMANDS if front_end in c.front_ends)


class UsageError(Exception):
    """A command line argparse refused; ``str()`` is the one line to show."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(f"kmemdbg: usage: {' '.join(message.split())} (see {prog} --help)")


class HelpRequested(Exception):
    """``--help`` was given; ``text`` is the help to print (it ends with a newline)."""

    def __init__(self, text: str) -> None:
        super().__init__("help requested")
        self.text = text


class CommandParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` and :class:`HelpRequested` instead of
    printing and exiting, so every front end decides where the text goes."""

    def error(self, message: str):
        raise UsageError(message, self.prog)

    def print_help(self, file=None) -> None:
        raise HelpRequested(self.format_help())


class ExitingParser(CommandParser):
    """argparse's own manners for a shell: ``--help`` on stdout and exit 0, a usage error as
    one line on stderr (``kmemdbg: usage: MESSAGE (see PROG --help)``) and exit 2."""

    def error(self, message: str):
        print(UsageError(message, self.prog), file=sys.stderr)
        sys.exit(2)

    def print_help(self, file=None) -> None:
        argparse.ArgumentParser.print_help(self, file)


def _add_kernel_options(p: argparse.ArgumentParser, front_end: str) -> None:
    if front_end not in SESSION_FRONT_ENDS:
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


def build_parser(front_end: str = CLI, exiting: bool = False) -> CommandParser:
    """The parser of ``front_end``'s command line (an :class:`ExitingParser` if ``exiting``).
    ``args.command`` names the Command and ``args.func`` is its library call."""
    cls = ExitingParser if exiting else CommandParser
    p = cls(prog="kmemdbg", description="The truth about kernel virtual addresses.")
    _add_kernel_options(p, front_end)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in offered(front_end):
        sp = sub.add_parser(command.name, help=command.help)
        sp.set_defaults(func=command.call)
        groups: Dict[str, Any] = {}
        for a in command.arguments:
            target: Any = sp
            if a.exclusive_group:
                target = groups.setdefault(a.exclusive_group, sp.add_mutually_exclusive_group())
            a.add_to(target)
    return p


def parse(front_end: str, argv) -> Tuple[argparse.Namespace, Optional[Command]]:
    """(arguments, the Command they name or None).  Raises UsageError, HelpRequested."""
    args = build_parser(front_end).parse_args(argv)
    return args, BY_NAME.get(args.command) if args.command else None


def help_lines(front_end: str) -> Tuple[str, ...]:
    """``NAME  help`` for every command ``front_end`` offers (for its own help text)."""
    return tuple(f"  {c.name:<9} {c.help}" for c in offered(front_end))
