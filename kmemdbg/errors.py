"""The one error tree of kmemdbg.

Every error prints as a single line that names the cause, so command-line
front ends can show ``str(error)`` and exit without a traceback.
"""
from __future__ import annotations


class KmemdbgError(Exception):
    """Base of every error kmemdbg raises on purpose."""


class PhysicalReadError(KmemdbgError):
    """A physical read could not be satisfied.

    ``pa`` is the physical address of the first byte asked for and ``size``
    the length in bytes; ``reason`` says why (not in the dump, short read...).
    """

    def __init__(self, pa: int, size: int, reason: str = "not in memory source") -> None:
        self.pa = pa
        self.size = size
        self.reason = reason
        super().__init__(f"cannot read {size} bytes at physical 0x{pa:x}: {reason}")


class SourceError(KmemdbgError):
    """A memory source could not be opened or is not what it claims to be."""


class LayoutError(KmemdbgError):
    """The kernel layout could not be established from the evidence at hand."""


class AddressError(KmemdbgError):
    """An address argument could not be parsed or resolved."""
