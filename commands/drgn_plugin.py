"""drgn plugin: the ``kmemdbg`` command inside drgn sessions.

drgn imports this module through the ``drgn.plugins`` entry point, which
registers one command.  In the drgn REPL::

    >>> %kmemdbg vtop 0xffffd3614000d000
    >>> %kmemdbg --json check 0xffffd3614000d000=0x497fc000d000
    >>> %kmemdbg classify init_mm+0x40

It parses exactly the command line of ``kmemdbg`` (without the kernel
selection options: the kernel is the session's ``prog``) and runs the same
library code.  In scripts, use the helpers directly: ``kmemdbg.open(prog=prog)``.
"""
from __future__ import annotations

from typing import Any, Sequence

try:
    from drgn.commands import custom_command, parse_shell_command
except ImportError:  # older drgn without a command framework: helpers still import
    custom_command = None

if custom_command is not None:
    @custom_command(
        name="kmemdbg",
        description="classify, translate and check kernel addresses with kmemdbg",
        usage="**kmemdbg** [--json] {layout,classify,vtop,check,ptov} *ARG*...",
        long_description="Runs a kmemdbg command on this program with the same options and "
                         "output as the kmemdbg command line, e.g. 'kmemdbg vtop ADDR' or "
                         "'kmemdbg --json check ADDR=PA'.",
        parse=parse_shell_command,
    )
    def _cmd_kmemdbg(prog, name: str, args: Sequence[str], **kwargs: Any) -> None:
        from kmemdbg.cli import run_in_program

        status, text = run_in_program(prog, list(args))
        if text:
            print(text)
