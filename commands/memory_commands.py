"""Commands that look at kernel memory and its frames: ``page``, ``rd``, ``search``, ``vmap``.

Each is a :class:`~kmemdbg.commands.spec.Command` whose call returns a
frozen result and whose renderer turns it into an
:class:`~kmemdbg.commands.renderers.Output`; :mod:`kmemdbg.commands.table`
appends :data:`COMMANDS` to the table.
"""
from __future__ import annotations

from typing import Tuple

from .spec import Command

COMMANDS: Tuple[Command, ...] = ()
