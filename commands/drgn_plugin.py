"""drgn plugin: the ``kmemdbg`` command inside drgn sessions.

drgn imports this module through the ``drgn.plugins`` entry point, which
registers one drgn command, ``kmemdbg``.  In the drgn REPL::

    >>> %kmemdbg vtop 0xffffd3614000d000
    >>> %kmemdbg --json check 0xffffd3614000d000=0x497fc000d000
    >>> %kmemdbg classify init_mm+0x40 > out.txt
    >>> %kmemdbg vtop --help

Each subcommand of the table that drgn offers (see :func:`offered`) is itself
a drgn command, built with drgn's own ``@command`` machinery (its argument
parser, its help formatter, its errors) in a namespace of kmemdbg's own
(:data:`NAMESPACE`), so ``%kmemdbg vtop --help`` is drgn's help of that
command and a bad argument is drgn's ``CommandArgumentError``.  The kernel
is the session's ``prog``: there are no ``--core``/``--kcore``/``--qmp``
options and no ``slice``/``demo``.

In scripts, ``run_command(prog, "kmemdbg --json vtop ADDR")`` prints the
output and returns the command's typed result (for ``vtop`` a
:class:`~kmemdbg.commands.calls.VtopResult`; None when the command failed,
after printing its ``kmemdbg: ...`` line on stderr).  :func:`run` returns
the same result without printing anything and raises on failure::

    from kmemdbg.commands.drgn_plugin import run
    result = run(prog, "vtop init_mm+0x40")       # VtopResult
    result.translations[0].walk.pa
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import KmemdbgError
from .execute import Refused, execute, execute_on, parse_in_session
from .spec import Command
from .table import DRGN, BY_NAME, command_epilog, global_options, offered

#: Key of the kernel kmemdbg built for a program in the program's own ``prog.cache``.
CACHE_KEY = "kmemdbg.kernel"
#: Options of the shell command that choose a kernel: in drgn the kernel is ``prog``.
SOURCE_OPTIONS = ("--core", "--kcore", "--qmp", "--vmlinux", "--allow-truncated")
HELP_FLAGS = ("-h", "--help")

try:
    from drgn.commands import (CommandArgumentError, CommandNamespace, argument, command, custom_command,
                               mutually_exclusive_group, parse_shell_command)
except ImportError:  # drgn without the command framework: the helpers below still import
    CommandNamespace = None  # type: ignore[assignment,misc]


class CommandFailed(KmemdbgError):
    """A kmemdbg command run by :func:`run` failed; ``status`` is its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def kernel_of(prog) -> Any:
    """The Kernel of drgn ``prog``, built once and kept in ``prog.cache`` (so it lives and
    dies with the program, and later commands reuse its layout and table cache)."""
    cache = getattr(prog, "cache", None)
    kernel = cache.get(CACHE_KEY) if cache is not None else None
    if kernel is None or getattr(kernel, "prog", None) is not prog:
        import kmemdbg

        kernel = kmemdbg.open(prog=prog)
        if cache is not None:
            cache[CACHE_KEY] = kernel
    return kernel


def _argv(line: Union[str, Sequence[str]]) -> List[str]:
    return shlex.split(line) if isinstance(line, str) else list(line)


def run_in_program(prog, argv: List[str]) -> Tuple[int, str]:
    """Run a kmemdbg command line on a drgn ``prog``: (exit status, output then warnings)."""
    try:
        args = parse_in_session(DRGN, argv)
    except Refused as refused:
        return refused.status, refused.text
    try:
        kernel = kernel_of(prog)
    except KmemdbgError as e:
        return 1, f"kmemdbg: {e}"
    return execute_on(args, kernel)


def run(prog, line: Union[str, Sequence[str]]) -> Any:
    """The typed result of kmemdbg command ``line`` (``"vtop ADDR"``, with or without a leading
    ``kmemdbg``) on drgn ``prog``, printing nothing.

    Raises :class:`CommandFailed` (status 2) for a usage error or --help, and the command's
    own KmemdbgError when it fails.
    """
    argv = _argv(line)
    if argv[:1] == ["kmemdbg"]:
        argv = argv[1:]
    try:
        args = parse_in_session(DRGN, argv)
    except Refused as refused:
        raise CommandFailed(refused.text, refused.status) from None
    from .calls import Invocation
    import io

    kernel = kernel_of(prog)
    if args.guess_layout:
        kernel.guess_layout = True
    inv = Invocation(args=args, as_json=bool(args.json), kernel=lambda: kernel, stderr=io.StringIO())
    return BY_NAME[args.command].call(inv)


# -- drgn's own commands -----------------------------------------------------------------

def _session_options() -> Tuple[Tuple[Tuple[str, ...], Dict[str, Any]], ...]:
    return tuple((o.flags, dict(o.options)) for o in global_options(DRGN))


def _run_parsed(prog, cmd: Command, args: argparse.Namespace) -> Any:
    """Run ``cmd`` with drgn-parsed ``args`` on ``prog``'s kernel, printing its output on
    sys.stdout (drgn's redirections apply) and failures on sys.stderr; its typed result."""
    args.command = cmd.name
    got: List[Any] = []

    def call(inv):
        result = cmd.call(inv)
        got.append(result)
        return result
    args.func = call
    try:
        kernel = kernel_of(prog)
    except KmemdbgError as err:
        print(f"kmemdbg: {' '.join(str(err).split())}", file=sys.stderr)
        return None

    def given() -> Any:
        if getattr(args, "guess_layout", False):
            kernel.guess_layout = True
        return kernel
    status = execute(args, given, sys.stdout, sys.stderr)
    return got[0] if got and status in (0, 1) else None


def _drgn_arguments(cmd: Command) -> List[Any]:
    """``cmd``'s arguments as drgn ``argument``/``mutually_exclusive_group`` records, then the
    session's global options (--guess-layout, --json) and -h/--help."""
    out: List[Any] = []
    groups: Dict[str, List[Any]] = {}
    order: List[Union[str, Any]] = []
    for a in cmd.arguments:
        rec = argument(*a.flags, **dict(a.options))
        if a.exclusive_group:
            if a.exclusive_group not in groups:
                groups[a.exclusive_group] = []
                order.append(a.exclusive_group)
            groups[a.exclusive_group].append(rec)
        else:
            order.append(rec)
    for item in order:
        out.append(mutually_exclusive_group(*groups[item]) if isinstance(item, str) else item)
    for flags, options in _session_options():
        out.append(argument(*flags, **options))
    out.append(argument(*HELP_FLAGS, action="store_true", help="show this help"))
    return out


def _is_kernel(prog) -> bool:
    from drgn import ProgramFlags

    return bool(prog.flags & ProgramFlags.IS_LINUX_KERNEL)


def _line_blocks(text: str) -> str:
    """``text`` with every line kept as written by drgn's help formatter (its ``|`` line blocks)."""
    return "\n".join("|" + line if line.strip() else "" for line in text.splitlines())


def _register(namespace, cmd: Command) -> None:
    def func(prog, name: str, args: argparse.Namespace, **_kwargs: Any) -> Any:
        return _run_parsed(prog, cmd, args)

    # registered as "kmemdbg NAME": drgn's parser then says "usage: kmemdbg NAME ..." and
    # "kmemdbg NAME: error: ..." (the namespace is kmemdbg's own, so no drgn command clashes)
    command(name=f"kmemdbg {cmd.name}", description=cmd.help, long_description=cmd.help[:1].upper() + cmd.help[1:] + ".",
            epilog=_line_blocks(command_epilog(cmd, DRGN)), arguments=_drgn_arguments(cmd), enabled=_is_kernel,
            namespace=namespace)(func)


def subcommand(name: str) -> str:
    """The table name of a command registered in :data:`NAMESPACE` (``"kmemdbg vtop"``: ``vtop``)."""
    return name.split(" ", 1)[-1]


def _help_text(prog) -> str:
    lines = ["usage: kmemdbg [--json] [--guess-layout] COMMAND [ARG...]", "",
             "Classify, translate and check this program's kernel addresses with kmemdbg.",
             "The kernel is the session's program.  Commands:", ""]
    lines += [f"  {subcommand(name):<9} {c.description()}" for name, c in NAMESPACE.enabled(prog)]
    lines += ["", "'kmemdbg COMMAND --help' shows a command's arguments, examples and legend.",
              "In scripts: run_command(prog, \"kmemdbg vtop ADDR\") returns the command's result;",
              "kmemdbg.commands.drgn_plugin.run(prog, \"vtop ADDR\") returns it without printing."]
    return "\n".join(lines)


def dispatch(prog, argv: Sequence[str], globals: Optional[Dict[str, Any]] = None) -> Any:
    """``%kmemdbg ARGV``: the leading global options go to the subcommand, which drgn's own
    machinery parses and runs (:data:`NAMESPACE`); its result, or None."""
    from .. import __version__

    argv = list(argv)
    lead: List[str] = []
    session_flags = {f for flags, _ in _session_options() for f in flags}
    while argv and argv[0].startswith("-"):
        word = argv.pop(0)
        if word in HELP_FLAGS:
            print(_help_text(prog))
            return None
        if word == "--version":
            print(f"kmemdbg {__version__}")
            return None
        if word.split("=", 1)[0] in SOURCE_OPTIONS:
            raise CommandArgumentError(f"kmemdbg: {word.split('=', 1)[0]}: in drgn the kernel is the "
                                       "session's program; --core/--kcore/--qmp/--vmlinux belong to the "
                                       "shell command")
        if word not in session_flags:
            raise CommandArgumentError(f"kmemdbg: unrecognized option {word!r} (see kmemdbg --help)")
        lead.append(word)
    if not argv:
        raise CommandArgumentError("kmemdbg: a COMMAND is required (see kmemdbg --help)")
    name, rest = argv[0], argv[1:] + lead
    try:
        cmd = NAMESPACE.lookup(prog, f"kmemdbg {name}")
    except Exception:  # drgn's CommandNotFoundError
        names = ", ".join(subcommand(n) for n, _ in NAMESPACE.enabled(prog))
        raise CommandArgumentError(f"kmemdbg: no command {name!r} in drgn (commands: {names})") from None
    words = rest[:rest.index("--")] if "--" in rest else rest
    if any(w in HELP_FLAGS for w in words):
        print(f"usage: {cmd.format_usage()}\n\n{cmd.format_help()}")
        return None
    return cmd.run(prog, f"kmemdbg {name}", rest, globals=globals if globals is not None else {})


NAMESPACE = None
if CommandNamespace is not None:
    #: The subcommands, each a drgn command of its own, in a namespace of kmemdbg's.
    NAMESPACE = CommandNamespace(func_name_prefix="_kmemdbg_")
    for _c in offered(DRGN):
        _register(NAMESPACE, _c)

    @custom_command(
        name="kmemdbg",
        description="classify, translate and check kernel addresses with kmemdbg",
        usage=f"**kmemdbg** [--json] [--guess-layout] {{{','.join(c.name for c in offered(DRGN))}}} *ARG*...",
        long_description="Runs a kmemdbg command on this program with the output of the kmemdbg "
                         "command line, e.g. 'kmemdbg vtop ADDR' or 'kmemdbg --json check ADDR=PA'; "
                         "'kmemdbg COMMAND --help' for each command.  Returns the command's result.",
        parse=parse_shell_command,
        enabled=_is_kernel,
    )
    def _cmd_kmemdbg(prog, name: str, args: Sequence[str], **kwargs: Any) -> Any:
        return dispatch(prog, args, kwargs.get("globals"))


__all__ = ["run", "dispatch", "run_in_program", "kernel_of", "subcommand", "NAMESPACE", "CommandFailed"]
