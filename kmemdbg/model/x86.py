"""x86-64 page-table entry encoders of the model (own code, no walker imports).

Bit positions follow the Intel SDM vol. 3 "4-level paging and 5-level
paging" entry formats and Linux's arch/x86/include/asm/pgtable_types.h.
Every ``pa`` is a physical address in bytes; flags are sets of the names in
:data:`FLAG_BITS`.
"""
from __future__ import annotations

from typing import FrozenSet, Iterable

FLAG_BITS = {
    "P": 0, "RW": 1, "US": 2, "PWT": 3, "PCD": 4, "A": 5, "D": 6,
    "G": 8, "SPECIAL": 9, "SOFT_DIRTY": 11, "NX": 63,
}
#: PAT sits in bit 7 of a 4 KiB PTE but in bit 12 of a 2 MiB/1 GiB leaf,
#: where bit 7 is PS (SDM tables 4-15/4-17/4-19).
PAT_4K_BIT = 7
PAT_LARGE_BIT = 12
PS_BIT = 7
#: Linux reuses G (bit 8) as _PAGE_PROTNONE when P is clear.
PROTNONE_BIT = 8
PKEY_SHIFT = 59
PKEY_MASK = 0xF << PKEY_SHIFT

#: Physical-address field of an entry: bits 12..51 (__PHYSICAL_MASK_SHIFT = 52).
ADDR_MASK_52 = ((1 << 52) - 1) & ~0xFFF

KERNEL_TABLE: FrozenSet[str] = frozenset({"P", "RW", "A", "D"})      # _KERNPG_TABLE
USER_TABLE: FrozenSet[str] = KERNEL_TABLE | {"US"}                    # _PAGE_TABLE
PAGE_KERNEL: FrozenSet[str] = frozenset({"P", "RW", "A", "D", "G", "NX"})
PAGE_KERNEL_EXEC: FrozenSet[str] = PAGE_KERNEL - {"NX"}
PAGE_KERNEL_RO: FrozenSet[str] = frozenset({"P", "A", "G", "NX"})
PAGE_KERNEL_ROX: FrozenSet[str] = frozenset({"P", "A", "G"})
PAGE_KERNEL_NOCACHE: FrozenSet[str] = PAGE_KERNEL | {"PCD"}
PAGE_USER_RO_EXEC: FrozenSet[str] = frozenset({"P", "US", "A", "G"})


def _flag_value(flags: Iterable[str]) -> int:
    val = 0
    for name in flags:
        if name == "PAT":
            continue
        try:
            val |= 1 << FLAG_BITS[name]
        except KeyError:
            raise ValueError(f"unknown x86-64 flag {name!r}") from None
    return val


def _check_pa(pa: int, align: int, phys_bits: int, sme_mask: int) -> None:
    if pa & (align - 1):
        raise ValueError(f"physical 0x{pa:x} is not aligned to 0x{align:x}")
    if pa >> phys_bits:
        raise ValueError(f"physical 0x{pa:x} needs more than {phys_bits} bits")
    if pa & sme_mask:
        raise ValueError(f"physical 0x{pa:x} overlaps the SME mask 0x{sme_mask:x}")


def table_entry(pa: int, flags: Iterable[str] = KERNEL_TABLE, *, sme_mask: int = 0,
                phys_bits: int = 52) -> int:
    """Non-leaf entry pointing at the 4 KiB table at physical ``pa``.

    The kernel builds table entries with the encryption mask too
    (_KERNPG_TABLE includes _ENC, arch/x86/include/asm/pgtable_types.h).
    """
    _check_pa(pa, 4096, phys_bits, sme_mask)
    return pa | _flag_value(flags) | sme_mask


def leaf_entry(pa: int, page_size: int, flags: Iterable[str] = PAGE_KERNEL, *,
               pkey: int = 0, sme_mask: int = 0, phys_bits: int = 52) -> int:
    """Present leaf mapping ``page_size`` bytes (4 KiB, 2 MiB or 1 GiB) at physical ``pa``.

    Large leaves get PS (bit 7) and move PAT to bit 12.  ``pkey`` goes in
    bits 59..62.  "P" is implied.
    """
    if page_size not in (1 << 12, 1 << 21, 1 << 30):
        raise ValueError(f"x86-64 has no 0x{page_size:x}-byte leaves")
    if not 0 <= pkey < 16:
        raise ValueError("protection key must be 0..15")
    _check_pa(pa, page_size, phys_bits, sme_mask)
    flags = frozenset(flags) | {"P"}
    val = pa | _flag_value(flags) | sme_mask | (pkey << PKEY_SHIFT)
    if page_size != 4096:
        val |= 1 << PS_BIT
        if "PAT" in flags:
            val |= 1 << PAT_LARGE_BIT
    elif "PAT" in flags:
        val |= 1 << PAT_4K_BIT
    return val


def pfn_mask(sme_mask: int = 0) -> int:
    """PTE_PFN_MASK: address bits 12..51 without the encryption bit."""
    return ADDR_MASK_52 & ~sme_mask


def protnone_entry(pa: int, page_size: int = 4096,
                   flags: Iterable[str] = frozenset({"A"}), *, sme_mask: int = 0) -> int:
    """A PROT_NONE leaf for physical ``pa``: P clear, bit 8 set, PFN inverted.

    L1TF mitigation: for a non-present, non-zero entry the kernel stores the
    complement of the PFN bits (``protnone_mask()``/``flip_protnone_guard()``
    in arch/x86/include/asm/pgtable-invert.h, Linux kernel commit
    6b28baca9b1f ("x86/speculation/l1tf: Protect PROT_NONE PTEs against
    speculation") (in v4.19)).  Large PROT_NONE entries keep PS.
    """
    flags = frozenset(flags) - {"P", "G"}
    # pfn_pmd()/pfn_pud() invert with PHYSICAL_PMD/PUD_PAGE_MASK: only the
    # address bits that a leaf of that size uses.
    mask = pfn_mask(sme_mask) & ~(page_size - 1)
    if pa & (page_size - 1):
        raise ValueError(f"physical 0x{pa:x} is not aligned to 0x{page_size:x}")
    val = (pa ^ mask) & mask | _flag_value(flags)
    val |= (1 << PROTNONE_BIT) | sme_mask
    if page_size != 4096:
        val |= 1 << PS_BIT
    return val


#: 6.12 arch/x86/include/asm/pgtable_64.h: SWP_TYPE_BITS = 5,
#: SWP_OFFSET_FIRST_BIT = _PAGE_BIT_PROTNONE + 1 = 9,
#: SWP_OFFSET_SHIFT = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS = 14.
SWP_TYPE_BITS = 5
SWP_OFFSET_FIRST_BIT = 9
SWP_OFFSET_SHIFT = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS
_M64 = (1 << 64) - 1


def swap_entry(swap_type: int, offset: int) -> int:
    """Swap PTE: type in bits 59..63, the *inverted* offset from bit 9 up.

    Inversion keeps the offset from looking like a real PFN (L1TF).
    """
    if not 0 <= swap_type < 1 << SWP_TYPE_BITS:
        raise ValueError("x86-64 swap type is 5 bits")
    if not 0 <= offset < 1 << (64 - SWP_OFFSET_SHIFT):
        raise ValueError("x86-64 swap offset is 50 bits")
    inv = ((~offset << SWP_OFFSET_SHIFT) & _M64) >> SWP_TYPE_BITS
    return inv | (swap_type << (64 - SWP_TYPE_BITS))


def swap_decode(raw: int) -> tuple:
    """``(type, offset)`` of a swap PTE, as __swp_type/__swp_offset compute them."""
    return raw >> (64 - SWP_TYPE_BITS), ((~raw << SWP_TYPE_BITS) & _M64) >> SWP_OFFSET_SHIFT


class X86Encoder:
    """Entry encoder bound to one machine: physical width and SME C-bit mask."""

    arch = "x86_64"

    def __init__(self, *, phys_bits: int = 46, sme_mask: int = 0) -> None:
        if sme_mask and (sme_mask & (sme_mask - 1) or sme_mask >> 52 or sme_mask < 1 << 12):
            raise ValueError("sme_mask must be one bit among 12..51")
        self.phys_bits = phys_bits
        self.sme_mask = sme_mask
        self.default_table_flags = KERNEL_TABLE
        self.default_leaf_flags = PAGE_KERNEL

    def table(self, pa: int, flags: Iterable[str] = KERNEL_TABLE) -> int:
        return table_entry(pa, flags, sme_mask=self.sme_mask, phys_bits=self.phys_bits)

    def leaf(self, pa: int, page_size: int, last_level: bool, flags: Iterable[str], *,
             pkey: int = 0, attr_index: int = 0, cont: bool = False) -> int:
        if cont or attr_index:
            raise ValueError("x86-64 has no contiguous hint or AttrIndx")
        return leaf_entry(pa, page_size, flags, pkey=pkey, sme_mask=self.sme_mask,
                          phys_bits=self.phys_bits)

    def protnone(self, pa: int, page_size: int, last_level: bool) -> int:
        return protnone_entry(pa, page_size, sme_mask=self.sme_mask)

    def not_present(self, pa: int, page_size: int, last_level: bool) -> int:
        """What set_direct_map_invalid_noflush() leaves: P, RW, D clear, PFN inverted."""
        flags = {"A", "G", "NX"}
        mask = pfn_mask(self.sme_mask) & ~(page_size - 1)
        val = (pa ^ mask) & mask | _flag_value(flags) | self.sme_mask
        return val | (1 << PS_BIT if page_size != 4096 else 0)

    def swap(self, swap_type: int, offset: int) -> int:
        return swap_entry(swap_type, offset)

    @staticmethod
    def effective(leaf_flags: FrozenSet[str], table_flags: Iterable[FrozenSet[str]]) -> dict:
        """Effective kernel-view permissions: RW and US AND across levels, NX OR."""
        tables = list(table_flags)
        return {
            "writable": "RW" in leaf_flags and all("RW" in t for t in tables),
            "user": "US" in leaf_flags and all("US" in t for t in tables),
            "executable": "NX" not in leaf_flags and not any("NX" in t for t in tables),
        }
