"""argparse ``type=`` callables for the numbers commands take, shared by every command module.

Each accepts decimal (``4096``) or hexadecimal with ``0x`` (``0x1000``), ASCII
digits only (:func:`kmemdbg.parse.parse_count`), and refuses the rest with
an ``argparse.ArgumentTypeError`` naming the text, which argparse turns into
the one ``kmemdbg: usage: ...`` line.  Addresses are not numbers of this kind:
they are parsed later, with the kernel's symbols (:func:`kmemdbg.parse.parse_address`).
"""
from __future__ import annotations

import argparse

from ..errors import AddressError
from ..parse import parse_count


def count(text: str, what: str = "number", minimum: int = 0) -> int:
    """``text`` as a number of at least ``minimum``; ``what`` names it in the message."""
    try:
        value = parse_count(text, what)
    except AddressError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least {minimum}")
    return value


def size_bytes(text: str) -> int:
    """A size in bytes, at least 1."""
    try:
        return count(text, "number of bytes", 1)
    except argparse.ArgumentTypeError as err:
        if "at least" in str(err):
            raise argparse.ArgumentTypeError(f"{text!r}: give at least 1 byte") from None
        raise


def pid(text: str) -> int:
    """A process id."""
    return count(text, "pid")


__all__ = ["count", "size_bytes", "pid"]
