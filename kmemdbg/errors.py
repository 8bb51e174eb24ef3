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
    ``reason`` may be a ``str.format`` template for ``reason_args``: the words
    are put together only when shown, as a script that probes memory catches
    most of these unread.
    """

    def __init__(self, pa: int, size: int, reason: str = "not in memory source", *reason_args: object) -> None:
        # args are (pa, size, reason, *reason_args): BaseException.__new__ set them already
        self.pa = pa
        self.size = size
        self._reason, self._reason_args = reason, reason_args

    @property
    def reason(self) -> str:
        return self._reason.format(*self._reason_args) if self._reason_args else self._reason

    def __str__(self) -> str:
        return f"cannot read {self.size} bytes at physical 0x{self.pa:x}: {self.reason}"


class SourceError(KmemdbgError):
    """A memory source could not be opened or is not what it claims to be."""


class LayoutError(KmemdbgError):
    """The kernel layout could not be established from the evidence at hand."""


class AddressError(KmemdbgError):
    """An address argument could not be parsed or resolved."""
