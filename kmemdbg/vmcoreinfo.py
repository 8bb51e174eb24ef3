"""VMCOREINFO: the kernel's key=value note, parsed with each key's own radix.

The kernel prints ``SYMBOL(name)`` and ``KERNELOFFSET`` as hex without
``0x``, ``NUMBER(name)`` as signed decimal unless the arch code wrote
``0x%lx`` by hand (arm64 ranges, ``kimage_voffset``, ``PHYS_OFFSET``,
``TCR_EL1_T1SZ``), and ``PAGESIZE``/``SIZE``/``OFFSET``/``LENGTH`` as decimal
(``include/linux/vmcore_info.h``).  Debian's 6.1 x86-64 kernel prints a
negative ``NUMBER(phys_base)``, so decimal numbers are parsed signed.

The text comes from the dump, so it is checked as it is parsed: every line
is ``KEY=VALUE`` in printable ASCII, no key appears twice, and every value
of a known family has its family's syntax and fits in 64 bits.  A bad line
raises :class:`VmcoreinfoError` naming the key and the value.
:func:`check_values` then checks the values an architecture's layout rests on
against what that architecture allows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional

from .errors import LayoutError

MASK64 = (1 << 64) - 1
#: The kernel's VMCOREINFO_BYTES is one page; QEMU's device copies at most this.
MAX_VMCOREINFO_BYTES = 1 << 16

_HEX = re.compile(r"[0-9a-fA-F]{1,16}", re.ASCII)
_NUMBER = re.compile(r"-?[0-9]{1,20}|0[xX][0-9a-fA-F]{1,16}|-0[xX][0-9a-fA-F]{1,16}", re.ASCII)
_DECIMAL = re.compile(r"[0-9]{1,20}", re.ASCII)
_KEY = re.compile(r"[A-Za-z0-9_.()\-]{1,128}", re.ASCII)
#: value syntax per key family: (regex, what a bad value is not)
_FAMILIES = {
    "SYMBOL": (_HEX, "a hexadecimal address"),
    "NUMBER": (_NUMBER, "a 64-bit number"),
    "SIZE": (_DECIMAL, "a decimal size"),
    "OFFSET": (_DECIMAL, "a decimal offset"),
    "LENGTH": (_DECIMAL, "a decimal length"),
    "PAGESIZE": (_DECIMAL, "a decimal page size"),
    "KERNELOFFSET": (_HEX, "a hexadecimal offset"),
    "CRASHTIME": (_DECIMAL, "a decimal time"),
}


class VmcoreinfoError(LayoutError):
    """A VMCOREINFO line or value that is malformed or impossible; names the key and value."""


def _family(key: str) -> str:
    return key.split("(", 1)[0]


def _int(text: str, radix: int) -> int:
    text = text.strip()
    if text.lower().startswith(("0x", "-0x")):
        return int(text, 16)
    return int(text, radix)


def signed64(value: int) -> int:
    """Interpret a 64-bit two's-complement value as signed."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def _bad(key: str, value: str, why: str) -> VmcoreinfoError:
    shown = value if len(value) <= 40 else value[:37] + "..."
    return VmcoreinfoError(f"vmcoreinfo: {key}={shown}: {why}")


@dataclass(frozen=True)
class VmcoreInfo:
    """Parsed VMCOREINFO text; ``raw`` maps each key (``SYMBOL(x)``, ...) to its text."""

    raw: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: "str | bytes") -> "VmcoreInfo":
        """Parse and check the text (bytes stop at the first NUL).  Raises VmcoreinfoError."""
        if isinstance(text, (bytes, bytearray)):
            data = bytes(text).split(b"\0", 1)[0]
            if len(data) > MAX_VMCOREINFO_BYTES:
                raise VmcoreinfoError(f"vmcoreinfo: {len(data)} bytes, more than the "
                                      f"{MAX_VMCOREINFO_BYTES} a kernel writes")
            bad = next((i for i, b in enumerate(data) if b > 0x7E or (b < 0x20 and b not in (9, 10, 13))),
                       None)
            if bad is not None:
                line_no = data.count(b"\n", 0, bad) + 1
                line = data.splitlines()[line_no - 1].decode("ascii", "replace")
                raise VmcoreinfoError(f"vmcoreinfo: line {line_no} ({line[:40]!r}) has the non-ASCII "
                                      f"byte 0x{data[bad]:02x}")
            text = data.decode("ascii")
        raw: Dict[str, str] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not _KEY.fullmatch(key):
                raise VmcoreinfoError(f"vmcoreinfo: line {n} is not KEY=VALUE: {line[:40]!r}")
            if key in raw:
                raise _bad(key, value, f"appears twice (first {raw[key][:20]!r})")
            rule = _FAMILIES.get(_family(key))
            if rule is not None:
                regex, what = rule
                if not regex.fullmatch(value):
                    raise _bad(key, value, f"not {what}")
                number = _int(value, 16 if regex is _HEX else 10)
                if number > MASK64 or number < -(1 << 63):
                    raise _bad(key, value, "does not fit in 64 bits")
            raw[key] = value
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

    def size(self, name: str) -> Optional[int]:
        """``SIZE(name)`` in bytes, or None."""
        value = self.raw.get(f"SIZE({name})")
        return None if value is None else int(value)

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


# -- what each architecture allows ----------------------------------------------------

#: Keys whose NUMBER() is a kernel virtual address.
_VA_NUMBERS = ("VMALLOC_START", "VMALLOC_END", "VMEMMAP_START", "VMEMMAP_END", "MODULES_VADDR",
               "MODULES_END")


def check_values(info: VmcoreInfo, arch: str) -> None:
    """Check the VMCOREINFO values the layout of the architecture named ``arch`` rests on
    (range, alignment, plausibility; the architecture's ``check_vmcoreinfo`` hook).

    Raises VmcoreinfoError naming the first key whose value the architecture
    does not allow.  Absent keys are not an error here.
    """
    def fail(key: str, why: str) -> None:
        raise _bad(key, info.raw[key], why)

    from .arch import arch_named  # the architectures read this module: import at call time

    spec = arch_named(arch)
    page = info.page_size()
    if page is not None and page not in spec.page_sizes:
        fail("PAGESIZE", f"not a {arch} page size ({', '.join(map(str, spec.page_sizes))})")
    spec.check_vmcoreinfo(info, fail)
    floor = spec.kernel_half_floor(info)
    for name in _VA_NUMBERS:
        value = info.number(name)
        if value is not None and not floor <= value & MASK64:
            fail(f"NUMBER({name})", f"not a kernel address (below 0x{floor:x})")
    for start, end in (("VMALLOC_START", "VMALLOC_END"), ("VMEMMAP_START", "VMEMMAP_END"),
                       ("MODULES_VADDR", "MODULES_END")):
        lo, hi = info.number(start), info.number(end)
        if lo is not None and hi is not None and not lo & MASK64 < hi & MASK64:
            fail(f"NUMBER({end})", f"not above NUMBER({start})={info.raw[f'NUMBER({start})']}")
    for key in info.raw:
        if key.startswith("SYMBOL("):
            value = _int(info.raw[key], 16)
            if not floor <= value:
                fail(key, f"not a kernel address (below 0x{floor:x})")


__all__ = ["VmcoreInfo", "VmcoreinfoError", "check_values", "signed64", "MAX_VMCOREINFO_BYTES"]
