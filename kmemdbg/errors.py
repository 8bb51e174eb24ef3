"""The one error tree of kmemdbg.

Every error prints as a single line that names the cause, so command-line
front ends can show ``str(error)`` and exit without a traceback.
"""
from __future__ import annotations


class KmemdbgError(Exception):
    """Base of every error kmemdbg raises on purpose."""


class PhysicalReadError(KmemdbgError):
    """A physical read could not be satisfied.

    Raised as ``PhysicalReadError(pa, size, reason="not in memory source",
    *reason_args)``: ``pa`` is the physical address of the first byte asked
    for and ``size`` the length in bytes; ``reason`` says why (not in the
    dump, short read...).  ``reason`` may be a ``str.format`` template for
    ``reason_args``: the words are put together only when shown, as a script
    that probes memory catches most of these unread.  The attributes are
    read from ``args``, so making one runs no Python code: the compiled read
    raises it for pages a dump does not hold.
    """

    @property
    def pa(self) -> int:
        return self.args[0]

    @property
    def size(self) -> int:
        return self.args[1]

    @property
    def reason(self) -> str:
        args = self.args
        if len(args) < 3:
            return "not in memory source"
        return args[2].format(*args[3:]) if len(args) > 3 else args[2]

    def __str__(self) -> str:
        return f"cannot read {self.size} bytes at physical 0x{self.pa:x}: {self.reason}"


class SourceError(KmemdbgError):
    """A memory source could not be opened or is not what it claims to be."""


class LayoutError(KmemdbgError):
    """The kernel layout could not be established from the evidence at hand."""


class AddressError(KmemdbgError):
    """An address argument could not be parsed or resolved."""
