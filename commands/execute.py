"""Running one parsed command of the table: its call, its renderer, the output streams.

:func:`execute` is the one place where a failure becomes the one stderr line
the front ends promise (1: bad input or unreadable source; 130: interrupted;
no traceback unless ``KMEMDBG_TRACEBACK`` is set), and where an
:class:`~kmemdbg.commands.renderers.Output` is written.  Front ends pass
their own streams: the CLI its stdout and stderr, drgn and gdb buffers.
"""
from __future__ import annotations

import argparse
import io
import json
import os
from typing import Any, Callable, Iterable, TextIO, Tuple

from ..errors import KmemdbgError
from ..schema import SCHEMA_VERSION
from .calls import Invocation
from .table import BY_NAME, Command, HelpRequested, UsageError, parse


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (its type name if it has none)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _internal_error(err: BaseException) -> str:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}; " if tb else ""
    return (f"kmemdbg: internal error ({type(err).__name__}): {one_line(err)} "
            f"({where}KMEMDBG_TRACEBACK=1 shows the traceback)")


def execute(args: argparse.Namespace, kernel: Callable[[], Any], out: TextIO, err: TextIO) -> int:
    """Run the command ``args`` names (``args.func``, its library call, as the parser set it)
    on ``kernel()`` and write its output to ``out``, its warnings and failures to ``err``.

    Returns the exit status.
    """
    command: Command = BY_NAME[args.command]
    inv = Invocation(args=args, as_json=bool(args.json), kernel=kernel, stderr=err)
    call = getattr(args, "func", None) or command.call
    try:
        output = command.render(call(inv), inv)
    except KmemdbgError as exc:
        print(f"kmemdbg: {one_line(exc)}", file=err)
        return 1
    except KeyboardInterrupt:
        print("kmemdbg: interrupted", file=err)
        return 130
    except MemoryError:
        print("kmemdbg: out of memory (the dump asks for more than this machine allows)", file=err)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kmemdbg: {where}{exc.strerror or one_line(exc)}", file=err)
        return 1
    except Exception as exc:  # noqa: BLE001 - the promise: one line, never a traceback
        if os.environ.get("KMEMDBG_TRACEBACK"):
            raise
        print(_internal_error(exc), file=err)
        return 1
    for line in output.warnings:
        print(line, file=err)
    try:
        if output.text is not None:
            print(output.text, file=out)
        elif output.json_items is not None:
            write_json(output.json_items, out, command.name)
    except BrokenPipeError:
        pass
    except MemoryError:
        print("kmemdbg: out of memory while writing the output", file=err)
        return 1
    return output.exit_status


def write_json(items: Iterable[Any], stream: TextIO, command: str = "") -> None:
    """The envelope ``{"schema": "kmemdbg/1", "command": command, "results": [items...]}``
    (:func:`kmemdbg.schema.envelope`) as ``json.dumps(..., indent=1)`` would write it, but
    item by item (a ptdump of a big kernel has many thousands), so the whole text is never in
    memory at once."""
    stream.write("{\n " + json.dumps("schema") + ": " + json.dumps(SCHEMA_VERSION) + ",\n "
                 + json.dumps("command") + ": " + json.dumps(command) + ",\n " + json.dumps("results") + ": [")
    first = True
    for item in items:
        text = json.dumps(item, indent=1).replace("\n", "\n  ")
        stream.write(("\n  " if first else ",\n  ") + text)
        first = False
    stream.write("\n ]\n}\n" if not first else "]\n}\n")


class Refused(Exception):
    """A command line a session front end answers without running anything:
    ``status`` (0 for --help, 2 for usage) and the ``text`` to show."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def parse_in_session(front_end: str, argv) -> argparse.Namespace:
    """The arguments of a command line typed in a session (drgn, gdb, ...) whose kernel is
    the session's.  Raises :class:`Refused` for --help, a usage error or no command."""
    try:
        args, command = parse(front_end, argv)
    except UsageError as exc:
        raise Refused(2, str(exc)) from None
    except HelpRequested as exc:
        raise Refused(0, exc.text.rstrip("\n")) from None
    if command is None:
        raise Refused(2, "kmemdbg: usage: a COMMAND is required (see kmemdbg --help)")
    return args


def execute_on(args: argparse.Namespace, kernel: Any) -> Tuple[int, str]:
    """:func:`execute` on a session's ``kernel`` (``--guess-layout`` applies to it):
    (exit status, the output then the warnings, as one text without a final newline)."""
    def given() -> Any:
        if args.guess_layout:
            kernel.guess_layout = True
        return kernel
    out, err = io.StringIO(), io.StringIO()
    status = execute(args, given, out, err)
    return status, (out.getvalue() + err.getvalue()).rstrip("\n")
