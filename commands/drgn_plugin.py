"""drgn plugin: the ``kmemdbg`` command inside drgn sessions.

drgn imports this module through the ``drgn.plugins`` entry point, which
registers one command.  In the drgn REPL::

    >>> %kmemdbg vtop 0xffffd3614000d000
    >>> %kmemdbg --json check 0xffffd3614000d000=0x497fc000d000
    >>> %kmemdbg classify init_mm+0x40

It offers the table's commands on a kernel (see :func:`offered`) with the
command line's arguments and output, without the kernel selection options:
the kernel is the session's ``prog``.  In scripts, use the helpers directly:
``kmemdbg.open(prog=prog)``.
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from ..errors import KmemdbgError
from .execute import Refused, execute_on, parse_in_session
from .table import DRGN, offered

#: Key of the kernel kmemdbg built for a program in the program's own ``prog.cache``.
CACHE_KEY = "kmemdbg.kernel"

try:
    from drgn.commands import custom_command, parse_shell_command
except ImportError:  # older drgn without a command framework: helpers still import
    custom_command = None


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


if custom_command is not None:
    @custom_command(
        name="kmemdbg",
        description="classify, translate and check kernel addresses with kmemdbg",
        usage=f"**kmemdbg** [--json] {{{','.join(c.name for c in offered(DRGN))}}} *ARG*...",
        long_description="Runs a kmemdbg command on this program with the same options and "
                         "output as the kmemdbg command line, e.g. 'kmemdbg vtop ADDR' or "
                         "'kmemdbg --json check ADDR=PA'.",
        parse=parse_shell_command,
    )
    def _cmd_kmemdbg(prog, name: str, args: Sequence[str], **kwargs: Any) -> None:
        status, text = run_in_program(prog, list(args))
        if text:
            print(text)
