"""Commands about tasks and per-cpu data: ``percpu``, ``tasks``, ``vm``.

Each is a :class:`~kmemdbg.commands.spec.Command` whose call returns a
frozen result and whose renderer turns it into an
:class:`~kmemdbg.commands.renderers.Output`; :mod:`kmemdbg.commands.table`
appends :data:`COMMANDS` to the table.
"""
from __future__ import annotations

from typing import Tuple

from .spec import Command

COMMANDS: Tuple[Command, ...] = ()
