"""arm64 (VMSAv8-64 stage 1) descriptor encoders of the model.

Own code, written from the Arm ARM descriptor formats and Linux's
arch/arm64/include/asm/pgtable-hwdef.h / pgtable-prot.h / pgtable.h.
Every ``pa`` is a physical address in bytes; flags are sets of names from
:data:`LEAF_BITS` (block/page descriptors) or :data:`TABLE_BITS`.

Output-address encodings (``pa_encoding``):

``"48"``
    OA[47:PAGE_SHIFT] in place.  4K/16K without LPA2 (bits 9:8 are SH).
``"lpa64k"``
    64 KiB granule with FEAT_LPA: OA[47:16] in place, OA[51:48] in bits 15:12.
``"lpa2"``
    4K/16K with TCR_EL1.DS=1 (FEAT_LPA2): OA[49:PAGE_SHIFT] in place and
    OA[51:50] in bits 9:8, so descriptors carry no SH field; the kernel
    then writes PTE_MAYBE_SHARED as 0 and shareability comes from TCR
    (Linux kernel commit 352b0395b505 ("arm64: Enable 52-bit virtual
    addressing for 4k and 16k granule configs") (in v6.9)).
"""
from __future__ import annotations

from typing import FrozenSet, Iterable, Tuple

LEAF_BITS = {
    "USER": 6, "RDONLY": 7, "AF": 10, "nG": 11, "GP": 50, "DBM": 51,
    "CONT": 52, "PXN": 53, "UXN": 54, "DIRTY": 55, "SPECIAL": 56,
}
TABLE_BITS = {"AF": 10, "PXNTable": 59, "UXNTable": 60, "APTable0": 61, "APTable1": 62,
              "NSTable": 63}
#: PTE_PRESENT_INVALID overlays nG when the valid bit is clear (6.10+).
PRESENT_INVALID_BIT = 11
#: PTE_PROT_NONE before 6.10.
OLD_PROT_NONE_BIT = 58

#: MAIR indices of 6.x kernels (arch/arm64/include/asm/memory.h).
MT_NORMAL = 0
MT_NORMAL_TAGGED = 1
MT_NORMAL_NC = 2
MT_DEVICE_nGnRnE = 3
MT_DEVICE_nGnRE = 4

KERNEL_TABLE: FrozenSet[str] = frozenset({"UXNTable"})
LINEAR_TABLE: FrozenSet[str] = frozenset({"UXNTable", "PXNTable"})   # NO_EXEC_MAPPINGS
PROT_NORMAL: FrozenSet[str] = frozenset({"AF", "PXN", "UXN", "DBM"})
PAGE_KERNEL = PROT_NORMAL
PAGE_KERNEL_RO: FrozenSet[str] = frozenset({"AF", "PXN", "UXN", "RDONLY"})
PAGE_KERNEL_ROX: FrozenSet[str] = frozenset({"AF", "UXN", "RDONLY"})
PAGE_KERNEL_EXEC: FrozenSet[str] = frozenset({"AF", "UXN", "DBM"})
PAGE_NONE_FLAGS: FrozenSet[str] = frozenset({"AF", "RDONLY", "PXN", "UXN"})

PA_ENCODINGS = ("48", "lpa64k", "lpa2")


def _bits(flags: Iterable[str], table: dict) -> int:
    val = 0
    for name in flags:
        try:
            val |= 1 << table[name]
        except KeyError:
            raise ValueError(f"unknown arm64 flag {name!r}") from None
    return val


def encode_oa(pa: int, page_shift: int, pa_encoding: str, align: int = 0) -> int:
    """Place physical ``pa`` in a descriptor's output-address field."""
    align = align or (1 << page_shift)
    if pa & (align - 1) or pa < 0:
        raise ValueError(f"physical 0x{pa:x} is not aligned to 0x{align:x}")
    if pa_encoding == "48":
        if pa >> 48:
            raise ValueError(f"physical 0x{pa:x} needs LPA/LPA2 (more than 48 bits)")
        return pa
    if pa >> 52:
        raise ValueError(f"physical 0x{pa:x} is beyond 52 bits")
    if pa_encoding == "lpa64k":
        if page_shift != 16:
            raise ValueError("the lpa64k encoding is for the 64 KiB granule")
        return (pa & ((1 << 48) - 1)) | ((pa >> 48) << 12)
    if pa_encoding == "lpa2":
        if page_shift == 16:
            raise ValueError("LPA2 is for the 4 KiB and 16 KiB granules")
        return (pa & ((1 << 50) - 1)) | ((pa >> 50) << 8)
    raise ValueError(f"unknown pa encoding {pa_encoding!r}")


def table_desc(pa: int, page_shift: int, pa_encoding: str,
               flags: Iterable[str] = KERNEL_TABLE) -> int:
    """Table descriptor (bits[1:0] = 0b11) pointing at the table at physical ``pa``."""
    return encode_oa(pa, page_shift, pa_encoding) | _bits(flags, TABLE_BITS) | 0b11


def leaf_desc(pa: int, page_shift: int, pa_encoding: str, block_size: int,
              flags: Iterable[str] = PAGE_KERNEL, *, attr_index: int = MT_NORMAL,
              sh: int = 3, last_level: bool = True) -> int:
    """Page (last level, 0b11) or block (0b01) descriptor mapping ``block_size`` bytes.

    ``sh`` is the shareability field; it is dropped with the ``lpa2``
    encoding, where bits 9:8 carry OA[51:50].  ``block_size`` only checks
    the alignment of ``pa``.
    """
    if not 0 <= attr_index < 8:
        raise ValueError("AttrIndx is 3 bits")
    val = encode_oa(pa, page_shift, pa_encoding, block_size)
    val |= _bits(flags, LEAF_BITS) | (attr_index << 2)
    if pa_encoding != "lpa2":
        val |= (sh & 3) << 8
    return val | (0b11 if last_level else 0b01)


def protnone_desc(pa: int, page_shift: int, pa_encoding: str, block_size: int, *,
                  last_level: bool = True, layout: str = "6.10+", sh: int = 3) -> int:
    """A PROT_NONE (present but inaccessible) entry for physical ``pa``.

    6.10+: valid bit clear and PTE_PRESENT_INVALID (bit 11) set, from the
    v6.10 series "arm64/mm: Move PTE_PRESENT_INVALID to overlay PTE_NG".
    Before: PTE_PROT_NONE (bit 58).  ``pte_present()`` is true for both.
    The PFN is *not* inverted on arm64.
    """
    val = leaf_desc(pa, page_shift, pa_encoding, block_size, PAGE_NONE_FLAGS,
                    sh=sh, last_level=last_level)
    val &= ~1                          # clear PTE_VALID, keep the table/page bit
    if layout == "6.10+":
        return val | 1 << PRESENT_INVALID_BIT
    if layout == "pre-6.10":
        return val | 1 << OLD_PROT_NONE_BIT
    raise ValueError(f"unknown non-present layout {layout!r}")


#: (type shift, offset shift, offset bits) per non-present layout:
#: 6.10+ "bits 6-10 swap type, bit 11 PTE_PRESENT_INVALID (must be zero),
#: bits 12-61 swap offset"; before: type 3-7, offset 8-57 (bit 58 PROT_NONE).
SWAP_LAYOUTS = {"6.10+": (6, 12, 50), "pre-6.10": (3, 8, 50)}


def swap_desc(swap_type: int, offset: int, *, layout: str = "6.10+",
              exclusive: bool = False) -> int:
    """Swap entry (valid bit clear); ``exclusive`` sets PTE_SWP_EXCLUSIVE (bit 2)."""
    tshift, oshift, obits = SWAP_LAYOUTS[layout]
    if not 0 <= swap_type < 32:
        raise ValueError("arm64 swap type is 5 bits")
    if not 0 <= offset < 1 << obits:
        raise ValueError("arm64 swap offset is 50 bits")
    return (swap_type << tshift) | (offset << oshift) | (4 if exclusive else 0)


def swap_decode(raw: int, layout: str = "6.10+") -> Tuple[int, int]:
    """``(type, offset)`` of a swap entry, as __swp_type/__swp_offset compute them."""
    tshift, oshift, obits = SWAP_LAYOUTS[layout]
    return (raw >> tshift) & 31, (raw >> oshift) & ((1 << obits) - 1)


def cont_entries(page_shift: int, level_is_pmd: bool) -> int:
    """Entries in one contiguous-hint run: CONT_PTES / CONT_PMDS.

    ARM64_CONT_PTE_SHIFT 4/7/5 and ARM64_CONT_PMD_SHIFT 4/5/5 for
    4K/16K/64K (arch/arm64/Kconfig), i.e. 64K/2M/2M and 32M/1G/16G runs.
    """
    shift = {12: (4, 4), 14: (7, 5), 16: (5, 5)}[page_shift][1 if level_is_pmd else 0]
    return 1 << shift


class Arm64Encoder:
    """Descriptor encoder bound to one granule, OA encoding and kernel era."""

    arch = "arm64"

    def __init__(self, page_shift: int, pa_encoding: str, *, nonpresent_layout: str = "6.10+",
                 shareability: int = 3) -> None:
        if pa_encoding not in PA_ENCODINGS:
            raise ValueError(f"unknown pa encoding {pa_encoding!r}")
        self.page_shift = page_shift
        self.pa_encoding = pa_encoding
        self.nonpresent_layout = nonpresent_layout
        self.sh = 0 if pa_encoding == "lpa2" else shareability
        self.default_table_flags = KERNEL_TABLE
        self.default_leaf_flags = PAGE_KERNEL

    def table(self, pa: int, flags: Iterable[str] = KERNEL_TABLE) -> int:
        return table_desc(pa, self.page_shift, self.pa_encoding, flags)

    def leaf(self, pa: int, page_size: int, last_level: bool, flags: Iterable[str], *,
             pkey: int = 0, attr_index: int = MT_NORMAL, cont: bool = False) -> int:
        if pkey:
            raise ValueError("arm64 descriptors have no protection key field here")
        flags = frozenset(flags) | ({"CONT"} if cont else frozenset())
        return leaf_desc(pa, self.page_shift, self.pa_encoding, page_size, flags,
                         attr_index=attr_index, sh=self.sh, last_level=last_level)

    def protnone(self, pa: int, page_size: int, last_level: bool) -> int:
        return protnone_desc(pa, self.page_shift, self.pa_encoding, page_size,
                             last_level=last_level, layout=self.nonpresent_layout, sh=self.sh)

    def not_present(self, pa: int, page_size: int, last_level: bool) -> int:
        """A descriptor with only the valid bit cleared (PFN kept, no PROT_NONE marker)."""
        return self.leaf(pa, page_size, last_level, PAGE_KERNEL) & ~1

    def swap(self, swap_type: int, offset: int) -> int:
        return swap_desc(swap_type, offset, layout=self.nonpresent_layout)

    @staticmethod
    def effective(leaf_flags: FrozenSet[str], table_flags: Iterable[FrozenSet[str]]) -> dict:
        """Effective EL1 view: APTable[1] forbids writes, APTable[0] EL0 access,
        PXNTable execution; an EL0-writable page is never EL1-executable."""
        tables = list(table_flags)
        user = "USER" in leaf_flags and not any("APTable0" in t for t in tables)
        writable = "RDONLY" not in leaf_flags and not any("APTable1" in t for t in tables)
        el0_writable = "USER" in leaf_flags and "RDONLY" not in leaf_flags
        executable = ("PXN" not in leaf_flags and not el0_writable
                      and not any("PXNTable" in t for t in tables))
        return {"writable": writable, "user": user, "executable": executable}
