"""VMCOREINFO: the kernel's key=value note, parsed with each key's own radix.

The kernel prints ``SYMBOL(name)`` and ``KERNELOFFSET`` as hex without
``0x``, ``NUMBER(name)`` as signed decimal unless the arch code wrote
``0x%lx`` by hand (arm64 ranges, ``kimage_voffset``, ``PHYS_OFFSET``,
``TCR_EL1_T1SZ``), and ``PAGESIZE``/``SIZE``/``OFFSET``/``LENGTH`` as decimal
(``include/linux/vmcore_info.h``).  Debian's 6.1 x86-64 kernel prints a
negative ``NUMBER(phys_base)``, so decimal numbers are parsed signed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional

from .errors import LayoutError


def _int(text: str, radix: int) -> int:
    text = text.strip()
    if text.lower().startswith(("0x", "-0x")):
        return int(text, 16)
    return int(text, radix)


def signed64(value: int) -> int:
    """Interpret a 64-bit two's-complement value as signed."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


@dataclass(frozen=True)
class VmcoreInfo:
    """Parsed VMCOREINFO text; ``raw`` maps each key (``SYMBOL(x)``, ...) to its text."""

    raw: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: "str | bytes") -> "VmcoreInfo":
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).split(b"\0", 1)[0].decode("ascii", "replace")
        raw: Dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key:
                raw[key.strip()] = value.strip()
        return cls(raw)

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def text(self, key: str) -> Optional[str]:
        return self.raw.get(key)

    def symbol(self, name: str) -> Optional[int]:
        """``SYMBOL(name)``: a virtual address (hex without 0x), or None."""
        value = self.raw.get(f"SYMBOL({name})")
        return None if value is None else _int(value, 16)

    def number(self, name: str) -> Optional[int]:
        """``NUMBER(name)``: signed decimal, or hex when written with 0x; None if absent."""
        value = self.raw.get(f"NUMBER({name})")
        return None if value is None else _int(value, 10)

    def kerneloffset(self) -> int:
        value = self.raw.get("KERNELOFFSET")
        return 0 if value is None else _int(value, 16)

    def page_size(self) -> Optional[int]:
        value = self.raw.get("PAGESIZE")
        return None if value is None else _int(value, 10)

    def osrelease(self) -> Optional[str]:
        return self.raw.get("OSRELEASE")

    def require(self, keys: Iterable[str]) -> None:
        """Raise LayoutError naming the first missing key."""
        for key in keys:
            if key not in self.raw:
                raise LayoutError(f"vmcoreinfo has no {key}")
