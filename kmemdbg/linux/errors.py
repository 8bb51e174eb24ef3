"""Errors the kernel-object helpers raise; each prints as one line."""
from __future__ import annotations

from ..errors import KmemdbgError


class KobjectsError(KmemdbgError):
    """Kernel objects could not be read as the kernel would see them."""


class NoTypeInfoError(KobjectsError):
    """Neither a KMEMDBG_BTF note nor the kernel's own BTF is in the dump."""


class MissingSymbolError(KobjectsError):
    """A kernel symbol a helper needs is in none of the symbol sources."""


class CorruptStructureError(KobjectsError):
    """A list or tree is cyclic, too long, inconsistent or points at unreadable memory."""


__all__ = ["KobjectsError", "NoTypeInfoError", "MissingSymbolError", "CorruptStructureError"]
