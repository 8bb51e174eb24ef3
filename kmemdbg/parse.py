"""Parsing the addresses people type: hexadecimal numbers and ``symbol[+offset]``.

One parser serves the command line, the drgn and gdb commands and the
``addresses`` audit rule's input lines; every failure is an AddressError
whose message quotes (a bounded part of) the text.

The address syntax (:data:`ADDRESS_SYNTAX` is the help text saying it):

    ffffffffc03c8000, 0xffffffffc03c8000     hexadecimal, ``0x`` optional
    init_mm, init_mm+0x40, init_mm-40         a symbol of the image or of a loaded module,
                                              plus or minus a hexadecimal offset

A symbol is looked up in the kernel's symbol table (DWARF or the image's
kallsyms) and then in every loaded module's own symbol table
(``mod->kallsyms``), the names ``%pS`` prints with `` [module]``.
"""
from __future__ import annotations

import re
from typing import Optional, Union

from .errors import AddressError

_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)", re.ASCII)
_SYMBOL = re.compile(r"([A-Za-z_.][A-Za-z0-9_.$]*)(?:([+-])(.*))?", re.ASCII | re.DOTALL)
_COUNT = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+", re.ASCII)
#: Characters of a command-line argument quoted in an error (a pasted file must not flood the line).
SHOWN_CHARS = 60
MASK64 = (1 << 64) - 1
#: The address syntax, as the commands' help shows it.
ADDRESS_SYNTAX = ("ADDR is hexadecimal with or without 0x (ffffffffc03c8000), or a symbol of the "
                  "kernel image or of a loaded module with an optional hexadecimal offset: "
                  "init_mm, init_mm+0x40, init_mm-10, a_module_variable+8.")


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


def parse_count(text: str, what: str = "number") -> int:
    """A non-negative integer typed on a command line: decimal (``4096``) or hexadecimal with
    ``0x`` (``0x1000``), ASCII digits only.  ``what`` names it in the message.
    Raises AddressError."""
    t = text.strip() if isinstance(text, str) else ""
    if _COUNT.fullmatch(t) is None:
        raise AddressError(f"{shown(text)} is not a {what} (decimal, or hexadecimal with 0x)")
    value = int(t, 0) if t[:2].lower() == "0x" else int(t, 10)
    if value > MASK64:
        raise AddressError(f"{shown(text)} does not fit in 64 bits")
    return value


def symbol_address(kernel: object, name: str) -> Optional[int]:
    """Virtual address of symbol ``name``: the kernel's symbol table (``kernel.symbols``), then
    the loaded modules' own tables (``kernel.objects()``, when the kernel has one), or None."""
    base = kernel.symbols.address(name)  # type: ignore[attr-defined]
    if base is not None:
        return base
    objects = getattr(kernel, "objects", None)
    if objects is None:
        return None
    from .errors import KmemdbgError

    try:
        objs = objects()
        hit = objs.module_symbol(name) if objs is not None else None
    except KmemdbgError:
        return None
    return hit[1].start if hit is not None else None


def parse_address(text: str, kernel: Optional[object] = None) -> int:
    """A va: hex with or without ``0x``, or ``symbol[+offset]`` / ``symbol-offset`` (offset in
    hex) when a kernel with symbols (``kernel.symbols``) is given; a symbol is also looked up
    in the loaded modules' own symbol tables.  The sum wraps at 64 bits.  Raises AddressError."""
    t = text.strip()
    try:
        return parse_number(t)
    except AddressError:
        m = _SYMBOL.fullmatch(t)
        if kernel is None or m is None:
            raise
    name, sign, off = m.group(1), m.group(2), m.group(3)
    if sign is not None and not is_hex(off):
        raise AddressError(f"{shown(text)}: the offset after {sign!r} is not a hexadecimal number")
    base = symbol_address(kernel, name)
    if base is None:
        raise AddressError(f"unknown symbol {name!r}"
                           + ("" if kernel.symbols.source != "none" else " (no symbols loaded)"))
    delta = parse_number(off) if sign is not None else 0
    return (base - delta if sign == "-" else base + delta) & MASK64


__all__ = ["parse_number", "parse_address", "parse_count", "symbol_address", "shown", "is_hex", "SHOWN_CHARS",
           "ADDRESS_SYNTAX"]
