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

#: arm64 VA sizes the kernel can be built with (ARM64_VA_BITS_*).
ARM64_VA_BITS = (36, 39, 42, 47, 48, 52)
PAGE_SIZES = {"x86_64": (4096,), "arm64": (4096, 16384, 65536)}
#: Keys whose NUMBER() is a kernel virtual address.
_VA_NUMBERS = ("VMALLOC_START", "VMALLOC_END", "VMEMMAP_START", "VMEMMAP_END", "MODULES_VADDR",
               "MODULES_END")


def _kernel_half_floor(info: VmcoreInfo, arch: str) -> int:
    """Lowest kernel virtual address the paging mode allows (x86-64: canonical upper half)."""
    if arch == "x86_64":
        return (MASK64 << (56 if info.number("pgtable_l5_enabled") == 1 else 47)) & MASK64
    va_bits = info.number("VA_BITS") or 52
    return (MASK64 << va_bits) & MASK64


def check_values(info: VmcoreInfo, arch: str) -> None:
    """Check the VMCOREINFO values ``arch``'s layout rests on (range, alignment, plausibility).

    Raises VmcoreinfoError naming the first key whose value the architecture
    does not allow.  Absent keys are not an error here.
    """
    def fail(key: str, why: str) -> None:
        raise _bad(key, info.raw[key], why)

    page = info.page_size()
    if page is not None and page not in PAGE_SIZES.get(arch, (page,)):
        fail("PAGESIZE", f"not a {arch} page size ({', '.join(map(str, PAGE_SIZES[arch]))})")
    if arch == "x86_64":
        l5 = info.number("pgtable_l5_enabled")
        if l5 is not None and l5 not in (0, 1):
            fail("NUMBER(pgtable_l5_enabled)", "must be 0 or 1")
        sme = info.number("sme_mask")
        # the C-bit of AMD SME/SEV: one physical-address bit (cpuid 0x8000001f ebx[5:0])
        if sme is not None and sme and (sme < 0 or sme & (sme - 1) or not 1 << 30 <= sme < 1 << 52):
            fail("NUMBER(sme_mask)", "not 0 or one physical-address bit")
        bits = info.number("MAX_PHYSMEM_BITS")
        if bits is not None and not 36 <= bits <= 52:
            fail("NUMBER(MAX_PHYSMEM_BITS)", "outside 36..52")
        size = info.number("KERNEL_IMAGE_SIZE")
        if size is not None and (not 0 < size <= 1 << 31 or size % 4096):
            fail("NUMBER(KERNEL_IMAGE_SIZE)", "not a page-aligned size of at most 2 GiB")
        base = info.number("phys_base")
        if base is not None and (not -(1 << 52) < base < 1 << 52 or base % 4096):
            fail("NUMBER(phys_base)", "not a page-aligned physical offset")
    if arch == "arm64":
        va_bits = info.number("VA_BITS")
        if va_bits is not None and va_bits not in ARM64_VA_BITS:
            fail("NUMBER(VA_BITS)", f"not an arm64 VA size ({', '.join(map(str, ARM64_VA_BITS))})")
        t1sz = info.number("TCR_EL1_T1SZ")
        if t1sz is not None and t1sz and not (12 <= t1sz <= 28 and 64 - t1sz <= (va_bits or 52)):
            fail("NUMBER(TCR_EL1_T1SZ)", f"gives {64 - t1sz}-bit kernel addresses, not 36..{va_bits or 52}")
        phys = info.number("PHYS_OFFSET")
        if phys is not None and (not -(1 << 52) <= signed64(phys) < 1 << 52 or phys % 4096):
            fail("NUMBER(PHYS_OFFSET)", "not a page-aligned 52-bit physical offset")
        voff = info.number("kimage_voffset")
        if voff is not None and (not (voff & MASK64) >> 63 or voff % 4096):
            fail("NUMBER(kimage_voffset)", "not a page-aligned kernel-half offset")
        size = info.size("page")
        if size is not None and not 32 <= size <= 256:
            fail("SIZE(page)", "not a plausible struct page size (32..256 bytes)")
    floor = _kernel_half_floor(info, arch)
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
