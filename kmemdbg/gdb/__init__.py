"""kmemdbg inside gdb, attached to a QEMU guest through its gdbstub.

Load it with either of::

    (gdb) source /path/to/kmemdbg/gdb/kmemdbg-gdb.py     # any gdb Python
    (gdb) python import kmemdbg.gdb                       # kmemdbg on gdb's sys.path

(``python3 -m kmemdbg.gdb`` prints the first line for this checkout.)  Then::

    (gdb) target remote 127.0.0.1:1234
    (gdb) kmemdbg vtop ffffffffc03c8000
    (gdb) kmemdbg --json check ffffd26d001a9000

Importing this package outside gdb registers nothing, so the memory source
and the command runner can be tested with a fake target.
"""
from __future__ import annotations

import os

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kmemdbg-gdb.py")

try:
    import gdb as _gdb
except ImportError:  # not inside gdb
    _gdb = None

TARGET = None


def _register() -> None:
    global TARGET
    from ..commands.gdb import LiveTarget, help_text, run
    from .source import GdbLink

    if TARGET is not None:
        return
    TARGET = LiveTarget(GdbLink())

    class KmemdbgCommand(_gdb.Command):
        __doc__ = help_text()   # gdb shows it for 'help kmemdbg': every command gdb offers

        def __init__(self) -> None:
            super().__init__("kmemdbg", _gdb.COMMAND_DATA)

        def invoke(self, arg: str, from_tty: bool) -> None:
            status, text = run(TARGET, _gdb.string_to_argv(arg))
            if status != 0:
                raise _gdb.GdbError(text or f"kmemdbg: exit status {status}")
            if text:
                _gdb.write(text + "\n")

    KmemdbgCommand()
    events = _gdb.events
    events.cont.connect(TARGET.resumed)
    for name in ("memory_changed", "inferior_call"):
        if hasattr(events, name):
            getattr(events, name).connect(TARGET.resumed)
    for name in ("exited", "connection_removed", "new_inferior"):
        if hasattr(events, name):
            getattr(events, name).connect(TARGET.detached)


if _gdb is not None:
    _register()
