"""The shape of one command of the table: its arguments, its call, its renderer, its front ends.

Kept apart from :mod:`kmemdbg.commands.table` so that the modules holding
groups of commands (:mod:`~kmemdbg.commands.memory_commands`,
:mod:`~kmemdbg.commands.task_commands`) can build their
:class:`Command` records without importing the table that lists them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, FrozenSet, Tuple

from . import calls, renderers

CLI, DRGN, GDB, CRASH = "cli", "drgn", "gdb", "crash"
#: Front ends whose kernel is given by their session rather than chosen on the command line.
SESSION_FRONT_ENDS = (DRGN, GDB, CRASH)


@dataclass(frozen=True)
class Argument:
    """One argparse argument: ``flags`` as given to ``add_argument`` and its keywords.
    Arguments sharing a non-empty ``exclusive_group`` are mutually exclusive."""

    flags: Tuple[str, ...]
    options: Tuple[Tuple[str, Any], ...] = ()
    exclusive_group: str = ""

    def add_to(self, parser) -> None:
        parser.add_argument(*self.flags, **dict(self.options))


def arg(*flags: str, exclusive_group: str = "", **options: Any) -> Argument:
    return Argument(tuple(flags), tuple(options.items()), exclusive_group)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Tuple[Argument, ...]
    call: Callable[[calls.Invocation], Any]                  # the library call: a typed result
    render: Callable[[Any, calls.Invocation], renderers.Output]
    front_ends: FrozenSet[str] = field(default=frozenset({CLI}))


#: Every front end: the command line and the three debugger sessions.
EVERYWHERE = frozenset({CLI, DRGN, GDB, CRASH})
