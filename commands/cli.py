"""The ``kmemdbg`` command line: every command of the table, on a kernel chosen by options.

    kmemdbg [--core PATH | --kcore | --qmp SOCKET] [--vmlinux PATH] [--json] COMMAND ...

Every failure is one line on stderr and a non-zero exit status (1: bad input
or unreadable source; 2: usage); no traceback reaches the user.  A command
whose answer is incomplete (a ptdump or ptov over tables with faults) prints
what it has, one line on stderr saying what is missing, and exits 1.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, List, Optional

from ..errors import KmemdbgError
from .execute import execute
from .table import CLI, CommandParser, HelpRequested, UsageError, build_parser as _table_parser


def build_parser() -> CommandParser:
    """The command line's parser, with argparse's manners (help and usage errors exit)."""
    return _table_parser(CLI, exiting=True)


def kernel_opener(args: argparse.Namespace, given: Optional[Any] = None) -> Callable[[], Any]:
    """``kernel()`` for one command line: ``given`` (with ``--guess-layout`` applied), or the
    kernel the options name, opened once.  Raises KmemdbgError for none or several sources."""
    opened: List[Any] = []

    def kernel() -> Any:
        if given is not None:
            if getattr(args, "guess_layout", False):
                given.guess_layout = True
            return given
        if opened:
            return opened[0]
        import kmemdbg

        sources = [x for x in (args.core, args.qmp) if x] + (["kcore"] if args.kcore else [])
        if len(sources) > 1:
            raise KmemdbgError("give only one of --core, --kcore, --qmp")
        if not sources:
            raise KmemdbgError("no kernel given: use --core PATH, --kcore or --qmp SOCKET")
        opened.append(kmemdbg.open(core=args.core, kcore=args.kcore, qmp=args.qmp, vmlinux=args.vmlinux,
                                   allow_truncated=args.allow_truncated, guess_layout=args.guess_layout))
        return opened[0]
    return kernel


def main(argv: Optional[List[str]] = None, kernel: Optional[Any] = None,
         parser: Optional[CommandParser] = None) -> int:
    """Run one command line on ``kernel`` (default: the one its options name); the exit status."""
    parser = parser if parser is not None else build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except HelpRequested as exc:
        sys.stdout.write(exc.text)
        return 0
    if not getattr(args, "func", None):
        print("kmemdbg: usage: a COMMAND is required (see kmemdbg --help)", file=sys.stderr)
        return 2
    return execute(args, kernel_opener(args, kernel), sys.stdout, sys.stderr)


__all__ = ["main", "build_parser", "kernel_opener"]
