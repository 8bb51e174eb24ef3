"""arm64 (AArch64 VMSAv8-64 stage 1) paging for 4K, 16K and 64K granules.

Descriptor facts come from the Arm ARM (D8.3) and the kernel's
``arch/arm64/include/asm/pgtable-hwdef.h`` / ``pgtable-prot.h`` (6.1, 6.12):

- bits[1:0]: 0b11 table (or page at the last level), 0b01 block where the
  granule allows one, anything else invalid.  0b01 at the last level is
  reserved and faults.
- Block/page attributes: AttrIndx 4:2, AP[2:1] 7:6 (bit 6 EL0 access, bit 7
  read-only), SH 9:8, AF 10, nG 11, GP 50, DBM 51 (Linux ``PTE_WRITE``),
  Contiguous 52, PXN 53, UXN 54, software 55..58.
- Table attributes restrict everything below: PXNTable 59, UXNTable 60,
  APTable 62:61, NSTable 63.
- Output addresses: 48-bit form in bits[47:page_shift]; 64K with
  FEAT_LPA keeps PA[51:48] in bits 15:12; 4K/16K with FEAT_LPA2 (TCR.DS=1)
  keep PA[49:48] in bits 49:48 and PA[51:50] in bits 9:8, where SH used to
  be.  Since Linux kernel commit 352b0395b505 (in v6.9, cited by drgn's
  arm64 walker) a 4K/16K
  kernel runs 52-bit VA only with LPA2, so "LPA2" == "runtime VA is 52".
- A kernel built for 52-bit VA on a CPU without it runs with
  TCR_EL1.T1SZ = 16 (48-bit VA).  For 4K/16K it folds a level at run time
  (v6.9, the same LPA2 series), so the walk uses ``64 - T1SZ`` bits.  For 64K
  the table layout stays 52-bit and TTBR1 points 960 entries into
  swapper_pg_dir; walking with the configured 52 bits from swapper_pg_dir
  lands on exactly those entries because kernel VAs have bits 51:48 set.
- Non-present entries: ``PTE_PRESENT_INVALID`` (bit 11 with valid=0 in 6.12
  and later; ``PTE_PROT_NONE``, bit 58, in 6.1) marks PROT_NONE; swap entries keep the type in
  bits 7:3 and the offset from bit 8.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Tuple

from ..base import (MASK64, NOT_PRESENT, PROT_NONE, SWAP, AddressField, InvalidEntry, PagingFormat,
                   Permissions, bits, split_levels)

VALID = 1 << 0
TABLE_BIT = 1 << 1
USER = 1 << 6      # AP[1]
RDONLY = 1 << 7    # AP[2]
AF = 1 << 10
NG = 1 << 11
GP = 1 << 50
DBM = 1 << 51
CONT = 1 << 52
PXN = 1 << 53
UXN = 1 << 54
SW_DIRTY = 1 << 55
SW_SPECIAL = 1 << 56
PXN_TABLE = 1 << 59
UXN_TABLE = 1 << 60
AP_TABLE_NO_EL0 = 1 << 61
AP_TABLE_RO = 1 << 62
NS_TABLE = 1 << 63

# MAIR_EL1 attribute indices as Linux 5.10+ programs them (asm/memory.h,
# mm/proc.S).  Older kernels ordered them differently; pass ``mair`` then.
MAIR_6X = ("NORMAL", "NORMAL_TAGGED", "NORMAL_NC", "DEVICE_nGnRnE", "DEVICE_nGnRE")
_SH = ("NSH", "SH?", "OSH", "ISH")

ENCODING_48 = "48"
ENCODING_LPA2 = "lpa2"
ENCODING_LPA64K = "lpa64k"

_LEAF_FLAGS = ((USER, "USER"), (RDONLY, "RDONLY"), (AF, "AF"), (NG, "nG"), (GP, "GP"),
               (DBM, "DBM"), (CONT, "CONT"), (PXN, "PXN"), (UXN, "UXN"),
               (SW_DIRTY, "SW_DIRTY"), (SW_SPECIAL, "SW_SPECIAL"))
_TABLE_FLAGS = ((PXN_TABLE, "PXNTable"), (UXN_TABLE, "UXNTable"),
                (AP_TABLE_NO_EL0, "APTable0"), (AP_TABLE_RO, "APTable1"), (NS_TABLE, "NSTable"))


def _flags_factory(levels: int, lpa2: bool, mair: Tuple[str, ...]):
    @lru_cache(maxsize=4096)
    def flags(raw: int, level: int, leaf: bool) -> Tuple[str, ...]:
        if not leaf:
            return tuple(["TABLE"] + [n for b, n in _TABLE_FLAGS if raw & b])
        out = ["PAGE" if level == levels - 1 else "BLOCK"]
        out += [n for b, n in _LEAF_FLAGS if raw & b]
        idx = (raw >> 2) & 7
        out.append("MT=" + (mair[idx] if idx < len(mair) else f"attr{idx}"))
        if not lpa2:
            out.append(_SH[(raw >> 8) & 3])
        return tuple(out)
    return flags


# Swap entry layouts: (type shift, type bits, offset shift).  6.10 moved them
# when PTE_PRESENT_INVALID took over bit 11 (arch/arm64/include/asm/pgtable.h).
SWAP_LAYOUT_6_10 = (6, 5, 12)
SWAP_LAYOUT_OLD = (3, 5, 8)


def _invalid(pa_of, prot_none_bit: int, last: int, swap_layout=SWAP_LAYOUT_6_10):
    t_shift, t_bits, o_shift = swap_layout
    def invalid(raw: int, level: int, va: int) -> InvalidEntry:
        if raw == 0:
            return InvalidEntry(NOT_PRESENT, "empty entry")
        kernel = va >> 63 == 1
        if raw & (1 << prot_none_bit):
            if kernel:
                return InvalidEntry(NOT_PRESENT, f"invalidated entry keeping pa 0x{pa_of(raw):x} "
                                                 "(KFENCE guard or page removed from the linear map)")
            return InvalidEntry(PROT_NONE, f"PROT_NONE entry for pa 0x{pa_of(raw):x}")
        if not kernel and level == last:
            return InvalidEntry(SWAP, f"swap entry type {(raw >> t_shift) & ((1 << t_bits) - 1)} "
                                      f"offset 0x{(raw >> o_shift) & ((1 << 50) - 1):x}")
        return InvalidEntry(NOT_PRESENT, f"invalid descriptor 0x{raw:x}")
    return invalid


def _permissions(raws: Sequence[int], leaf_level: int) -> Permissions:
    leaf = raws[-1]
    no_el0 = ro_table = pxn_table = uxn_table = False
    for raw in raws[:-1]:
        no_el0 = no_el0 or bool(raw & AP_TABLE_NO_EL0)
        ro_table = ro_table or bool(raw & AP_TABLE_RO)
        pxn_table = pxn_table or bool(raw & PXN_TABLE)
        uxn_table = uxn_table or bool(raw & UXN_TABLE)
    # Linux's writable bit is DBM: a clean writable page is RDONLY|DBM and
    # the hardware (or the fault handler) clears RDONLY on the first write.
    write = (not leaf & RDONLY or bool(leaf & DBM)) and not ro_table
    user = bool(leaf & USER) and not no_el0
    # An EL0-writable page is implicitly PXN (Arm ARM D8.4.1.2).
    kexec = not (leaf & PXN) and not pxn_table and not (user and write)
    uexec = user and not (leaf & UXN) and not uxn_table
    return Permissions(True, write, kexec, user, user and write, uexec)


def walk_va_bits(page_size: int, va_bits: int, t1sz: Optional[int]) -> int:
    """VA bits the kernel half is walked with: 64K uses the configured VA_BITS, others 64 - T1SZ."""
    if page_size == 65536 or t1sz is None:
        return va_bits
    return 64 - t1sz


def paging_format(page_size: int = 4096, va_bits: int = 48, t1sz: Optional[int] = None,
                  pa_encoding: Optional[str] = None, prot_none_bit: int = 11,
                  swap_layout: Tuple[int, int, int] = SWAP_LAYOUT_6_10,
                  mair: Sequence[str] = MAIR_6X) -> PagingFormat:
    """The arm64 format for a granule of ``page_size`` bytes.

    ``va_bits`` is the configured ``NUMBER(VA_BITS)``; ``t1sz`` the runtime
    ``NUMBER(TCR_EL1_T1SZ)`` when known.  ``pa_encoding`` overrides the
    output-address form (``"48"``, ``"lpa2"``, ``"lpa64k"``) otherwise chosen
    from the granule and the runtime VA size.
    """
    shifts = {4096: 12, 16384: 14, 65536: 16}
    if page_size not in shifts:
        raise ValueError(f"arm64 has no {page_size}-byte granule")
    page_shift = shifts[page_size]
    walk_bits = walk_va_bits(page_size, va_bits, t1sz)
    if not page_shift + (page_shift - 3) <= walk_bits <= 52:
        raise ValueError(f"unsupported arm64 VA size {walk_bits} for {page_size}-byte pages")
    if pa_encoding is None:
        if page_size == 65536:
            pa_encoding = ENCODING_LPA64K
        else:
            pa_encoding = ENCODING_LPA2 if walk_bits == 52 else ENCODING_48
    per = page_shift - 3
    count = -(-(walk_bits - page_shift) // per)
    names = tuple(f"L{3 - i}" for i in range(count - 1, -1, -1))
    lpa2 = pa_encoding == ENCODING_LPA2
    # 64K blocks at L1 (4T) need FEAT_LPA, which goes with a 52-bit build.
    big_pa = lpa2 or (pa_encoding == ENCODING_LPA64K and va_bits == 52)

    def block_ok(pos: int, shift: int) -> bool:
        # Blocks: 4K at L1/L2 (L0 with DS); 16K at L2 (L1 with DS);
        # 64K at L2 (L1 with 52-bit PA).
        if page_size == 4096:
            return pos in (1, 2) or (pos == 3 and lpa2)
        return pos == 1 or (pos == 2 and big_pa)

    levels = split_levels(names, page_shift, walk_bits, block_ok)
    if pa_encoding == ENCODING_48:
        address = (AddressField(bits(page_shift, 47)),)
        res_table, res_leaf = bits(48, 51), bits(48, 49)
    elif pa_encoding == ENCODING_LPA2:
        address = (AddressField(bits(page_shift, 49)), AddressField(bits(8, 9), 42))
        res_table, res_leaf = bits(50, 51), 0
    elif pa_encoding == ENCODING_LPA64K:
        address = (AddressField(bits(16, 47)), AddressField(bits(12, 15), 36))
        res_table, res_leaf = bits(48, 51), bits(48, 49)
    else:
        raise ValueError(f"unknown arm64 output-address encoding {pa_encoding!r}")
    # Output-address bits below a block's size are RES0, except nT (bit 16,
    # FEAT_BBM) which we tolerate.
    leaf_res = tuple(res_leaf | (bits(page_shift, lv.shift - 1) & ~(1 << 16) if lv.shift > page_shift
                                 else 0) for lv in levels)
    addr_of = lambda raw: sum(f.extract(raw) for f in address)  # noqa: E731
    return PagingFormat(
        name=f"arm64 {page_size // 1024}K {walk_bits}-bit" + (" LPA2" if lpa2 else "")
             + (f" (VA_BITS={va_bits})" if walk_bits != va_bits else ""),
        arch="arm64",
        page_shift=page_shift,
        va_bits=walk_bits,
        # 64K with 52-bit VA on a 48-bit CPU keeps the 52-bit table shape but
        # TTBR1 only translates 64 - T1SZ bits.
        uniform_from=min(walk_bits, 64 - t1sz) if t1sz else walk_bits,
        levels=levels,
        valid_mask=VALID,
        leaf_mask=TABLE_BIT,
        leaf_value=0,
        page_mask=TABLE_BIT,
        page_value=TABLE_BIT,
        address=address,
        reserved_table=tuple(res_table for _ in levels),
        reserved_leaf=leaf_res,
        flags=_flags_factory(len(levels), lpa2, tuple(mair)),
        invalid=_invalid(addr_of, prot_none_bit, len(levels) - 1, swap_layout),
        permissions=_permissions,
        params=(("page_size", page_size), ("va_bits", va_bits), ("t1sz", t1sz),
                ("pa_encoding", pa_encoding)),
        # flags() reads no output-address bit (with LPA2, bits 8-9 are address bits, not SH)
        flag_bits=MASK64 & ~sum(f.mask for f in address),
        permission_bits=(AP_TABLE_NO_EL0 | AP_TABLE_RO | PXN_TABLE | UXN_TABLE
                         | RDONLY | DBM | USER | PXN | UXN),
    )
