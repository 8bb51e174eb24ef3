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
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from . import arg_types, calls, help_texts, memory_commands, read_commands, renderers, task_commands
from .spec import (CLI, CRASH, DRGN, EVERYWHERE as _EVERYWHERE, GDB, SESSION_FRONT_ENDS,
                   Argument, Command, arg)


_size_arg = arg_types.size_bytes
_pid_arg = arg_types.pid


def _addresses(metavar: str) -> Argument:
    what = "physical addresses (see below)" if metavar.startswith("PHYS") else "addresses (see below)"
    return arg("addresses", nargs="+", metavar=metavar, help=what)



COMMANDS: Tuple[Command, ...] = (
    Command("layout", "the kernel's regions and where each bound came from", (),
            calls.call_layout, renderers.render_layout, _EVERYWHERE),
    Command("classify", "region and allocation of each address", (_addresses("ADDR"),),
            calls.call_classify, renderers.render_classify, _EVERYWHERE),
    Command("vtop", "walk the page tables for each address", (
        _addresses("ADDR"),
        arg("--pid", type=_pid_arg, help="walk the user page tables of this task", exclusive_group="who"),
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
        arg("--end", metavar="VA", help="end virtual address, exclusive"),
        arg("--pid", type=int, help="the user page tables of this task (default: the kernel's)"),
        arg("--wide", action="store_true", help="one line per range, however long (default: 80 columns)"),
        arg("--all", dest="all_ranges", action="store_true",
            help="every range, also of the regions summarised by a count (ESPFIX)")),
        calls.call_ptdump, renderers.render_ptdump, _EVERYWHERE),
    Command("audit", "W+X, aliases, linear/vmalloc integrity, virt_to_phys misuse", (
        arg("--rule", action="append", metavar="NAME",
            help="run only this rule (repeatable): wx, exec-alias, text-rw, user-kernel, "
                 "linear-integrity, vmalloc-integrity, virt-to-phys-misuse, addresses"),
        arg("--addresses", metavar="FILE", help="addresses to check (ADDR[=PA] or JSON lines; - for stdin)"),
        arg("--jsonl", action="store_true", help="one JSON object per finding per line"),
        arg("--fail-on", default="low", metavar="SEVERITY",
            help="exit 1 if a finding is at least this severe (info, low, medium, high; default low)")),
        calls.call_audit, renderers.render_audit, _EVERYWHERE),
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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout at 80 columns whatever the terminal (help, man page and completion
    are generated from the same text), epilogs kept as written."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width=80)


class _Version(argparse.Action):
    """``--version``: the version line, printed by the parser's own manners (help-like)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .. import __version__

        text = f"kmemdbg {__version__}\n"
        if isinstance(parser, ExitingParser):
            sys.stdout.write(text)
            parser.exit(0)
        raise HelpRequested(text)


@dataclass(frozen=True)
class GlobalOption:
    """An option of the whole command line, accepted before and after the COMMAND."""

    flags: Tuple[str, ...]
    options: Tuple[Tuple[str, Any], ...]
    group: str = ""             # "kernel": the kernel-selection group of ``--help``


def global_options(front_end: str) -> Tuple[GlobalOption, ...]:
    """The options of ``front_end``'s whole command line: the kernel selection on the
    command line only (a session's kernel is the session's), then --guess-layout and --json."""
    out = []
    if front_end not in SESSION_FRONT_ENDS:
        out += [
            GlobalOption(("--core",), (("metavar", "PATH"), ("help", "a vmcore (ELF or kdump-compressed)")),
                         "kernel"),
            GlobalOption(("--kcore",), (("action", "store_true"),
                                        ("help", "the running kernel through /proc/kcore")), "kernel"),
            GlobalOption(("--qmp",), (("metavar", "SOCKET"),
                                      ("help", "a running QEMU guest through its QMP socket")), "kernel"),
            GlobalOption(("--vmlinux",), (("metavar", "PATH"),
                                          ("help", "debug info of the same kernel (optional; checked "
                                                   "against the dump's build ID)"),)),
            GlobalOption(("--allow-truncated",), (("action", "store_true"),
                                                  ("help", "read a truncated dump as far as it goes"))),
        ]
    out += [
        GlobalOption(("--guess-layout",), (("action", "store_true"),
                                           ("help", "accept default region bases where the dump gives "
                                                    "no evidence for them"))),
        GlobalOption(("--json",), (("action", "store_true"), ("help", "JSON output"))),
    ]
    return tuple(out)


def _add_global_options(p: argparse.ArgumentParser, front_end: str, sub: bool) -> None:
    """The global options on the main parser (``sub`` False) or, defaulting to nothing so the
    main parser's value stands unless given again, on a command's parser."""
    kernel = None
    shared = p.add_argument_group("global options (also before the command)") if sub else p
    for o in global_options(front_end):
        target = shared
        if o.group == "kernel" and not sub:
            kernel = kernel or p.add_argument_group("kernel to inspect")
            target = kernel
        options = dict(o.options)
        if sub:
            options["default"] = argparse.SUPPRESS
        target.add_argument(*o.flags, **options)


def takes_addresses(command: Command) -> Tuple[bool, bool]:
    """(takes virtual addresses, takes physical addresses), from the metavars of its arguments."""
    metas = [str(dict(a.options).get("metavar", "")) for a in command.arguments]
    virtual = any(m.startswith(("ADDR", "VA")) for m in metas)
    physical = any(m.startswith(("PHYS", "PA")) for m in metas)
    return virtual, physical


def command_epilog(command: Command, front_end: str) -> str:
    """The text after ``command``'s arguments in its --help on ``front_end``."""
    virtual, physical = takes_addresses(command)
    return help_texts.epilog(command.name, virtual, physical, front_end in SESSION_FRONT_ENDS)


def add_command_arguments(sp: argparse.ArgumentParser, command: Command) -> None:
    """``command``'s own arguments on parser ``sp`` (exclusive groups kept)."""
    groups: Dict[str, Any] = {}
    for a in command.arguments:
        target: Any = sp
        if a.exclusive_group:
            if a.exclusive_group not in groups:    # (setdefault would register an empty group)
                groups[a.exclusive_group] = sp.add_mutually_exclusive_group()
            target = groups[a.exclusive_group]
        a.add_to(target)


def build_parser(front_end: str = CLI, exiting: bool = False) -> CommandParser:
    """The parser of ``front_end``'s command line (an :class:`ExitingParser` if ``exiting``).
    ``args.command`` names the Command and ``args.func`` is its library call.  The global
    options are accepted after the command too (``kmemdbg vtop --json ADDR``)."""
    cls = ExitingParser if exiting else CommandParser
    session = front_end in SESSION_FRONT_ENDS
    p = cls(prog="kmemdbg", description="The truth about kernel virtual addresses.",
            epilog=help_texts.main_epilog(session), formatter_class=HelpFormatter)
    p.add_argument("--version", action=_Version, help="print kmemdbg's version and exit")
    _add_global_options(p, front_end, sub=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in offered(front_end):
        sp = sub.add_parser(command.name, help=command.help, description=command.help,
                            epilog=command_epilog(command, front_end), formatter_class=HelpFormatter)
        sp.set_defaults(func=command.call)
        add_command_arguments(sp, command)
        _add_global_options(sp, front_end, sub=True)
    return p


def parse(front_end: str, argv) -> Tuple[argparse.Namespace, Optional[Command]]:
    """(arguments, the Command they name or None).  Raises UsageError, HelpRequested."""
    args = build_parser(front_end).parse_args(argv)
    return args, BY_NAME.get(args.command) if args.command else None


def help_lines(front_end: str) -> Tuple[str, ...]:
    """``NAME  help`` for every command ``front_end`` offers (for its own help text)."""
    return tuple(f"  {c.name:<9} {c.help}" for c in offered(front_end))
