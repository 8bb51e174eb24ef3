"""Parsing the addresses people type: hexadecimal numbers and ``symbol[+offset]``.

One parser serves the command line, the drgn and gdb commands and the
``addresses`` audit rule's input lines; every failure is an AddressError
whose message quotes (a bounded part of) the text.
"""
from __future__ import annotations

import re
from typing import Optional, Union

from .errors import AddressError

_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)", re.ASCII)
_SYMBOL = re.compile(r"([A-Za-z_.][A-Za-z0-9_.$]*)(?:\+(.*))?", re.ASCII | re.DOTALL)
#: Characters of a command-line argument quoted in an error (a pasted file must not flood the line).
SHOWN_CHARS = 60
MASK64 = (1 << 64) - 1


def shown(text: object, limit: int = SHOWN_CHARS) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters (then ``...``)."""
    text = str(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def is_hex(text: str) -> bool:
    """Whether ``text`` is ASCII hex digits with an optional ``0x``."""
    return _HEX.fullmatch(text) is not None


def parse_number(text: Union[str, int], *, shown_chars: int = SHOWN_CHARS,
                 too_big: str = "does not fit in 64 bits") -> int:
    """A 64-bit number: a hexadecimal string (``0x`` optional, ASCII hex digits only: no ``_``,
    signs, inner spaces or other scripts' digits) or an int (a JSON input line's number).

    ``too_big`` ends the message for a value outside [0, 2**64).  Raises AddressError.
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise AddressError(f"{shown(text, shown_chars)} is not a hexadecimal address")
    if isinstance(text, int):
        value = text
    else:
        m = _HEX.fullmatch(text.strip())
        if m is None:
            raise AddressError(f"{shown(text, shown_chars)} is not a hexadecimal address")
        value = int(m.group(1), 16)
    if not 0 <= value <= MASK64:
        raise AddressError(f"{shown(text, shown_chars)} {too_big}")
    return value


def parse_address(text: str, kernel: Optional[object] = None) -> int:
    """A va: hex with or without ``0x``, or ``symbol[+offset]`` when a kernel with symbols
    (``kernel.symbols``) is given; the sum wraps at 64 bits.  Raises AddressError."""
    t = text.strip()
    try:
        return parse_number(t)
    except AddressError:
        m = _SYMBOL.fullmatch(t)
        if kernel is None or m is None:
            raise
    name, off = m.group(1), m.group(2)
    if off is not None and not is_hex(off):
        raise AddressError(f"{shown(text)}: the offset after '+' is not a hexadecimal number")
    base = kernel.symbols.address(name)
    if base is None:
        raise AddressError(f"unknown symbol {name!r}"
                           + ("" if kernel.symbols.source != "none" else " (no symbols loaded)"))
    return (base + (parse_number(off) if off is not None else 0)) & MASK64


__all__ = ["parse_number", "parse_address", "shown", "is_hex", "SHOWN_CHARS"]
