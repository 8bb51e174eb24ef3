"""x86-64 paging: 4-level (48-bit VA) and 5-level (57-bit VA, LA57).

Entry bits follow the Intel SDM vol. 3 §4.5 and the kernel's
``arch/x86/include/asm/pgtable_types.h`` (6.1, 6.12).  Entry layout:

- bit 0 P, 1 RW, 2 US, 3 PWT, 4 PCD, 5 A, 6 D (leaves), 7 PS in PDPTE/PDE
  (1G/2M leaf) but PAT in a 4K PTE, 8 G (leaves), 12 PAT in 2M/1G leaves,
  12..MAXPHYADDR-1 the frame, MAXPHYADDR..51 reserved, 59..62 protection key
  (leaves), 63 NX.
- PS in a PML4E/PML5E is reserved: such an entry faults.
- Linux reuses non-present entries: bit 8 marks PROT_NONE/NUMA-hinting
  entries, and since the L1TF mitigation (Linux kernel commit 6b28baca9b1f
  ("x86/speculation/l1tf: Protect PROT_NONE PTEs against speculation"), v4.19)
  the frame bits of every non-zero non-present entry are stored inverted.
- Swap entries (``arch/x86/include/asm/pgtable_64.h``): type in bits 59..63,
  offset stored inverted from bit 9 (SWP_TYPE_BITS 5, SWP_OFFSET_FIRST_BIT 9).
- The AMD SME/SEV C-bit (vmcoreinfo ``NUMBER(sme_mask)``) lives inside the
  reserved range and is set in table and leaf entries of encrypted memory; it
  is never part of an address, so it is removed from the address fields.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence, Tuple

from ..base import (MASK64, NOT_PRESENT, PROT_NONE, SWAP, AddressField, InvalidEntry, Level,
                   PagingFormat, Permissions, bits)

P, RW, US, PWT, PCD, A, D, PS, G = (1 << b for b in range(9))
PAT_4K = PS
PAT_LARGE = 1 << 12
NX = 1 << 63
PROTNONE = G
PKEY_SHIFT = 59
START_KERNEL_MAP = 0xFFFFFFFF80000000

# Linux's default IA32_PAT (arch/x86/mm/pat/memtype.c): indices 0..7.
DEFAULT_PAT = ("WB", "WC", "UC-", "UC", "WB", "WP", "UC-", "WT")

_FLAG_BITS = ((P, "P"), (RW, "RW"), (US, "US"), (PWT, "PWT"), (PCD, "PCD"), (A, "A"), (NX, "NX"))
_LEAF_ONLY = ((D, "D"), (G, "G"))


def _flags_factory(sme_mask: int, pat: Sequence[str]):
    @lru_cache(maxsize=4096)
    def flags(raw: int, level: int, leaf: bool, large: bool = False) -> Tuple[str, ...]:
        out = [name for bit, name in _FLAG_BITS if raw & bit]
        if leaf:
            out += [name for bit, name in _LEAF_ONLY if raw & bit]
            pat_bit = PAT_LARGE if large else PAT_4K
            if large:
                out.append("PS")
            if raw & pat_bit:
                out.append("PAT")
            idx = (4 if raw & pat_bit else 0) | (2 if raw & PCD else 0) | (1 if raw & PWT else 0)
            out.append(pat[idx])
            pkey = (raw >> PKEY_SHIFT) & 0xF
            if pkey:
                out.append(f"PKEY={pkey}")
        elif raw & PS:
            out.append("PS")
        if sme_mask and raw & sme_mask:
            out.append("ENC")
        return tuple(out)
    return flags


def _invalid(pfn_mask: int):
    def invalid(raw: int, level: int, va: int) -> InvalidEntry:
        if raw == 0:
            return InvalidEntry(NOT_PRESENT, "empty entry")
        frame = (~raw) & pfn_mask
        # Kernel entries never hold PROT_NONE or swap entries: a non-present
        # kernel entry with bit 8 is a KFENCE guard or a page taken out of the
        # direct map that kept its G bit.
        if raw & PROTNONE and va >> 63 == 0:
            return InvalidEntry(PROT_NONE, f"PROT_NONE/NUMA-hinting entry for frame 0x{frame:x} "
                                           "(stored inverted against L1TF)")
        if va >> 63 == 0:
            swp_type = raw >> 59
            offset = (((~raw) << 5) & MASK64) >> 14
            return InvalidEntry(SWAP, f"swap entry type {swp_type} offset 0x{offset:x}")
        return InvalidEntry(NOT_PRESENT, f"non-present entry keeping inverted frame 0x{frame:x} "
                                         "(KFENCE guard or page removed from the direct map)")
    return invalid


def _permissions(smep: bool):
    def permissions(raws: Sequence[int], leaf_level: int) -> Permissions:
        write = user = True
        nx = False
        for raw in raws:
            write = write and bool(raw & RW)
            user = user and bool(raw & US)
            nx = nx or bool(raw & NX)
        # With SMEP (every x86-64 CPU Linux enables it on since Ivy Bridge),
        # supervisor instruction fetches from user pages fault.
        kexec = not nx and not (user and smep)
        return Permissions(True, write, kexec, user, user and write, user and not nx)
    return permissions


def paging_format(levels: int = 4, phys_bits: int = 52, sme_mask: int = 0,
                  smep: bool = True, pat: Sequence[str] = DEFAULT_PAT) -> PagingFormat:
    """The x86-64 format for ``levels`` (4 or 5) and MAXPHYADDR ``phys_bits``.

    ``sme_mask`` is the C-bit mask from vmcoreinfo ``NUMBER(sme_mask)``
    (0 when memory encryption is off).  Bits from ``phys_bits`` to 51 other
    than the C-bit are reserved in present entries.
    """
    if levels not in (4, 5):
        raise ValueError("x86-64 paging has 4 or 5 levels")
    if not 32 <= phys_bits <= 52:
        raise ValueError("MAXPHYADDR must be between 32 and 52 bits")
    va_bits = 48 if levels == 4 else 57
    names = ("PGD", "PUD", "PMD", "PTE") if levels == 4 else ("PGD", "P4D", "PUD", "PMD", "PTE")
    lvls = []
    for i, name in enumerate(names):
        shift = 12 + 9 * (levels - 1 - i)
        lvls.append(Level(name, shift, 9, shift in (12, 21, 30)))
    addr = bits(12, phys_bits - 1) & ~sme_mask
    reserved = bits(phys_bits, 51) & ~sme_mask
    res_leaf = []
    for lv in lvls:
        res_leaf.append(reserved | (bits(13, lv.shift - 1) if lv.shift > 12 else 0))
    flags = _flags_factory(sme_mask, tuple(pat))
    return PagingFormat(
        name=f"x86-64 {levels}-level",
        arch="x86_64",
        page_shift=12,
        va_bits=va_bits,
        uniform_from=va_bits - 1,
        levels=tuple(lvls),
        valid_mask=P,
        leaf_mask=PS,
        leaf_value=PS,
        page_mask=0,
        page_value=0,
        address=(AddressField(addr),),
        reserved_table=tuple(reserved for _ in lvls),
        reserved_leaf=tuple(res_leaf),
        flags=lambda raw, level, leaf: flags(raw, level, leaf, leaf and lvls[level].shift > 12),
        invalid=_invalid(addr),
        permissions=_permissions(smep),
        params=(("levels", levels), ("phys_bits", phys_bits), ("sme_mask", sme_mask)),
        # flags() reads every bit but the frame's, plus the large-page PAT bit and the C-bit
        flag_bits=(MASK64 & ~addr) | PAT_LARGE | sme_mask,
        permission_bits=RW | US | NX,
    )
