"""``kmemdbg.cli``: the console script's entry point, kept for scripts and tests.

The command line itself is :mod:`kmemdbg.commands.cli`, built from the one
table of commands (:mod:`kmemdbg.commands.table`).  ``main`` here parses
with this module's :func:`build_parser`, so a caller may replace it.
"""
from __future__ import annotations

from typing import List, Optional

from .audit.addresses import BAD_TEXT_LINE, MAX_ADDRESSES_BYTES, read_lines
from .commands import calls as _calls
from .commands import cli as _cli
from .commands.execute import write_json
from .demo import SAMPLE_DIR as SAMPLE
from .parse import parse_address, parse_number
from .render import audit_error_lines

build_parser = _cli.build_parser

#: The library calls of the commands, under their former names.
cmd_layout, cmd_classify, cmd_vtop = _calls.call_layout, _calls.call_classify, _calls.call_vtop
cmd_check, cmd_ptov, cmd_slice = _calls.call_check, _calls.call_ptov, _calls.call_slice
cmd_ptdump, cmd_audit, cmd_demo = _calls.call_ptdump, _calls.call_audit, _calls.call_demo


def main(argv: Optional[List[str]] = None, kernel=None) -> int:
    """``kmemdbg ARGS``: the exit status (``kernel``: run on this kernel instead of the options')."""
    return _cli.main(argv, kernel=kernel, parser=build_parser())


__all__ = ["main", "build_parser", "parse_address", "parse_number", "read_lines", "audit_error_lines",
           "write_json", "SAMPLE", "BAD_TEXT_LINE", "MAX_ADDRESSES_BYTES"]
