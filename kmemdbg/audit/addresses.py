"""``addresses``: ``check`` verdicts for a list of addresses, the entry point for triage scripts.

Input lines are ``ADDR`` or ``ADDR=CLAIMED_PA`` (ADDR hexadecimal with or
without ``0x``, or ``symbol[+offset]``; CLAIMED_PA hexadecimal), or JSON
objects with the keys kmemdbg's own output writes: the address as ``"va"``
(``check``, ``vtop``, ``classify`` items) or ``"start"`` (``audit`` findings),
the claimed physical address as ``"claimed_pa"`` (``check``) or ``"pa"``
(findings; null: no claim).  Other keys (``"schema"``, ``"verdict"``...)
are ignored, so ``audit --jsonl`` output and ``check --json`` results can be
fed back one object per line.  Blank lines and lines starting with ``#`` are
skipped.  ``va`` is virtual, the claims physical.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from typing import Iterable, List, Optional, Tuple

from ..errors import AddressError, KmemdbgError, SourceError
from ..parse import parse_address, parse_number
from .findings import Finding

_SEVERITY = {"mismatch": "high", "unmapped": "medium", "ok": "info", "not-applicable": "info"}


#: Bytes of an --addresses file read at most (a million lines of ADDR=PA fit easily).
MAX_ADDRESSES_BYTES = 64 << 20
#: Stands for an input line that is not UTF-8 text (the addresses rule reports it).
BAD_TEXT_LINE = "\ufffd"


def read_lines(path: str) -> List[str]:
    """The lines of an --addresses file (``-``: stdin).

    A regular file or a pipe is read (opened without blocking, so a FIFO
    with no writer is not waited for); a line that is not UTF-8 is kept as
    BAD_TEXT_LINE, which :func:`parse_line` reports as bad.  Raises SourceError.
    """
    if path == "-":
        data = sys.stdin.buffer.read(MAX_ADDRESSES_BYTES + 1)
    else:
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as err:
            raise SourceError(f"{path}: cannot open: {err.strerror}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                from ..sources.dumpfile import file_kind

                raise SourceError(f"{path}: {file_kind(mode)}, not a file of addresses")
            os.set_blocking(fd, True)
            chunks, size = [], 0
            while size <= MAX_ADDRESSES_BYTES:
                more = os.read(fd, 1 << 20)
                if not more:
                    break
                chunks.append(more)
                size += len(more)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    if len(data) > MAX_ADDRESSES_BYTES:
        raise SourceError(f"{path}: more than {MAX_ADDRESSES_BYTES} bytes of addresses")
    out = []
    for raw in data.splitlines():
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(BAD_TEXT_LINE)
    return out


def _number(text) -> int:
    return parse_number(text, shown_chars=40, too_big="is not a 64-bit address")


def _address(text, kernel) -> int:
    if kernel is not None and isinstance(text, str):
        return parse_address(text.strip(), kernel)
    return _number(text)


def parse_line(line: str, kernel=None) -> Optional[Tuple[int, Optional[int]]]:
    """(va, claimed_pa or None) of one input line, None for a blank or comment line.
    With ``kernel``, addresses may be ``symbol[+offset]``.

    Raises AddressError naming what is wrong.
    """
    if BAD_TEXT_LINE in line:
        raise AddressError("not UTF-8 text")
    t = line.strip()
    if not t or t.startswith("#"):
        return None
    if t.startswith("{"):
        try:
            obj = json.loads(t)
        except (ValueError, RecursionError) as err:
            raise AddressError(f"not valid JSON: {str(err).splitlines()[0] if str(err) else err}") from None
        if not isinstance(obj, dict):
            raise AddressError("a JSON line must be an object")
        keys = [key for key in ("va", "start") if obj.get(key) is not None]
        if not keys:
            raise AddressError("JSON line without a \"va\" (or \"start\") address")
        if len(keys) == 2 and obj["va"] != obj["start"]:
            raise AddressError("JSON line with both \"va\" and \"start\", and they differ")
        claims = [obj[key] for key in ("claimed_pa", "pa") if obj.get(key) is not None]
        if len(claims) == 2 and _number(claims[0]) != _number(claims[1]):
            raise AddressError("JSON line with both \"claimed_pa\" and \"pa\", and they differ")
        return _address(obj[keys[0]], kernel), _number(claims[0]) if claims else None
    addr, sep, claim = t.partition("=")
    return _address(addr, kernel), (_number(claim) if sep else None)


def rule_addresses(kernel, lines: Iterable[str], errors: List[Tuple[str, str]]) -> List[Finding]:
    """One finding per input address; unreadable lines are appended to ``errors``."""
    out = []
    for n, line in enumerate(lines, 1):
        try:
            parsed = parse_line(line, kernel)
        except KmemdbgError as err:
            errors.append(("addresses", f"line {n}: {err}"))
            continue
        if parsed is None:
            continue
        va, claim = parsed
        c = kernel.check_virt_to_phys(va, claim)
        owner = None
        got, _ = kernel.owners.owner(va)
        cls = kernel.classify(va)
        if got is not None:
            owner = got.label
        elif cls.allocation is not None:
            owner = f"{cls.allocation.kind} {cls.allocation.name}"
        ev = (("verdict", c.verdict), ("linear_pa", None if c.linear_pa is None else f"0x{c.linear_pa:x}"),
              ("walk_pa", None if c.walk_pa is None else f"0x{c.walk_pa:x}"),
              ("claimed_pa", None if c.claimed_pa is None else f"0x{c.claimed_pa:x}"),
              ("region", c.region), ("branch", c.branch), ("debug_virtual", c.debug_virtual),
              ("bogus_pa_holds", c.bogus))
        out.append(Finding("addresses", _SEVERITY.get(c.verdict, "info"), c.verdict, va, va + 1,
                           c.walk_pa, owner, c.explanation, ev))
    return out


__all__ = ["rule_addresses", "parse_line", "read_lines", "BAD_TEXT_LINE", "MAX_ADDRESSES_BYTES"]
