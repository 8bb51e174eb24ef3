"""Compatibility name: the gdb command glue is :mod:`kmemdbg.commands.gdb`."""
from ..commands.gdb import COMMANDS, LiveKernel, LiveTarget, help_text, run  # noqa: F401

__all__ = ["LiveTarget", "LiveKernel", "run", "help_text", "COMMANDS"]
