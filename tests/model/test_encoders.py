"""Entry encoders against entries computed by hand from the SDM / Arm ARM bit layouts.

Oracle: hand arithmetic in each test's comment.
"""
from __future__ import annotations

import pytest

from kmemdbg.model import MODES, arm64_geometry, x86_geometry
from kmemdbg.model import arm64 as a64
from kmemdbg.model import x86

G, M = 1 << 30, 1 << 20


def test_x86_4k_page_kernel_leaf():
    # P|RW|A|D|G = 0x1|0x2|0x20|0x40|0x100 = 0x163, NX = bit 63
    assert x86.leaf_entry(0x1234000, 4096) == 0x8000000001234163


def test_x86_2m_leaf_moves_pat_to_bit_12():
    # PS (bit 7) + PAT at bit 12 for a large leaf
    assert x86.leaf_entry(0x200000, 2 * M, {"P", "RW", "PAT"}) == 0x200000 | 0x83 | 0x1000


def test_x86_4k_leaf_pat_is_bit_7():
    assert x86.leaf_entry(0x3000, 4096, {"P", "PAT"}) == 0x3000 | 0x81


def test_x86_1g_leaf_and_table_carry_sme_bit():
    assert x86.leaf_entry(0x40000000, G, x86.PAGE_KERNEL, sme_mask=1 << 47) == 0x80008000400001E3
    # _KERNPG_TABLE = P|RW|A|D = 0x63
    assert x86.table_entry(0x5000, sme_mask=1 << 47) == 0x800000005063


def test_x86_protection_key_bits_59_to_62():
    assert x86.leaf_entry(0x1000, 4096, {"P", "RW", "US"}, pkey=5) == (5 << 59) | 0x1007


def test_x86_prot_none_inverts_pfn_and_sets_bit_8():
    # ~0x1234 in bits 12..51, A (0x20) and PROTNONE (0x100), P clear
    assert x86.protnone_entry(0x1234000) == 0xFFFFFFEDCB000 | 0x120
    # 2 MiB: only bits 21..51 are inverted, PS kept
    assert x86.protnone_entry(0x40000000, 2 * M) == 0xFFFFFBFE00000 | 0x1A0
    # the C-bit is not part of the PFN: set, not inverted
    assert x86.protnone_entry(0x1234000, sme_mask=1 << 47) == \
        (0xFFFFFFEDCB000 & ~(1 << 47)) | (1 << 47) | 0x120


def test_x86_swap_entry_layout_6_12():
    # type in 59..63, ~offset from bit 9 (SWP_OFFSET_FIRST_BIT), P and PROTNONE clear
    raw = x86.swap_entry(1, 0x1234)
    assert raw == (1 << 59) | (((1 << 50) - 1) ^ 0x1234) << 9
    assert raw & 0x1FF == 0
    assert x86.swap_decode(raw) == (1, 0x1234)
    assert x86.swap_decode(x86.swap_entry(31, (1 << 50) - 1)) == (31, (1 << 50) - 1)


def test_x86_rejects_pa_beyond_phys_bits_or_on_sme_bit():
    with pytest.raises(ValueError):
        x86.leaf_entry(1 << 46, 4096, phys_bits=46)
    with pytest.raises(ValueError):
        x86.leaf_entry(1 << 47, 4096, sme_mask=1 << 47)


def test_lpa2_4k_block_at_level1_maps_52bit_pa():
    # PA 0xb_0000_4000_0000: bits 49:48 (=0b11) in place, bits 51:50 (=0b10) in 9:8;
    # AF 0x400, DBM bit 51, PXN 53, UXN 54, block type 0b01, no SH under LPA2.
    raw = a64.leaf_desc(0xB000040000000, 12, "lpa2", G, a64.PAGE_KERNEL, last_level=False)
    assert raw == 0x006B000040000601


def test_lpa64k_page_puts_pa_51_48_in_bits_15_12():
    # PA 0xb_0000_0001_0000: low part 0x10000, 0xb << 12; RDONLY 0x80, SH 0x300, AF 0x400
    raw = a64.leaf_desc(0xB000000010000, 16, "lpa64k", 1 << 16, a64.PAGE_KERNEL_RO)
    assert raw == 0x006000000001B783


def test_arm64_table_descriptor_attributes():
    # PXNTable bit 59, UXNTable bit 60, table type 0b11
    assert a64.table_desc(0x41234000, 12, "48", a64.LINEAR_TABLE) == 0x1800000041234003


def test_lpa2_table_descriptor_high_bits():
    assert a64.table_desc(0xC000000001000, 12, "lpa2", ()) == 0x1303  # PA[51:50]=0b11 in 9:8


def test_48bit_encoding_keeps_shareability_in_bits_9_8():
    raw = a64.leaf_desc(0x41000000, 12, "48", 2 * M, a64.PAGE_KERNEL, last_level=False)
    assert raw & 0x300 == 0x300 and raw & 3 == 1


def test_arm64_prot_none_6_10_sets_present_invalid():
    # valid clear, table/page bit kept: 0x2; RDONLY 0x80, SH 0x300, AF 0x400, bit 11
    raw = a64.protnone_desc(0x41234000, 12, "48", 4096)
    assert raw == 0x0060000041234F82
    old = a64.protnone_desc(0x41234000, 12, "48", 4096, layout="pre-6.10")
    assert old & 1 == 0 and old >> 58 & 1 and not old >> 11 & 1


def test_arm64_swap_layouts():
    # 6.10+: type bits 6..10, offset from 12; before: type 3..7, offset from 8
    assert a64.swap_desc(3, 0x1234) == 0x12340C0
    assert a64.swap_desc(3, 0x1234, layout="pre-6.10") == 0x123418
    assert a64.swap_decode(0x12340C0) == (3, 0x1234)
    assert a64.swap_decode(0x123418, "pre-6.10") == (3, 0x1234)


def test_arm64_rejects_52bit_pa_without_lpa():
    with pytest.raises(ValueError):
        a64.encode_oa(1 << 48, 12, "48")


@pytest.mark.parametrize("page_shift,level_is_pmd,entries", [
    (12, False, 16), (14, False, 128), (16, False, 32),
    (12, True, 16), (14, True, 32), (16, True, 32)])
def test_contiguous_run_lengths(page_shift, level_is_pmd, entries):
    assert a64.cont_entries(page_shift, level_is_pmd) == entries


@pytest.mark.parametrize("name,levels,top_entries", [
    ("arm64-4k-39", 3, 512), ("arm64-4k-48", 4, 512), ("arm64-4k-52", 5, 16),
    ("arm64-4k-52on48", 4, 512), ("arm64-16k-47", 3, 2048), ("arm64-16k-48", 4, 2),
    ("arm64-16k-52", 4, 32), ("arm64-16k-52on47", 3, 2048), ("arm64-64k-42", 2, 8192),
    ("arm64-64k-48", 3, 64), ("arm64-64k-52", 3, 1024), ("arm64-64k-52on48", 3, 1024),
    ("x86_64-4level", 4, 512), ("x86_64-5level", 5, 512)])
def test_geometry_levels_per_mode(name, levels, top_entries):
    # layout.md §2.1 table; 64K 52-on-48 keeps the 52-bit root (TTBR1 offset into it)
    geo = MODES[name].geometry()
    assert len(geo.levels) == levels
    assert geo.levels[0].entries == top_entries
    assert geo.levels[-1].shift == MODES[name].page_shift


def test_x86_geometry_names_and_leaf_levels():
    geo = x86_geometry(True)
    assert [lv.name for lv in geo.levels] == ["PGD", "P4D", "PUD", "PMD", "PTE"]
    assert [lv.leaf_ok for lv in geo.levels] == [False, False, True, True, True]


def test_arm64_block_levels():
    assert [lv.leaf_ok for lv in arm64_geometry(12, 48, False).levels] == [False, True, True, True]
    assert [lv.leaf_ok for lv in arm64_geometry(16, 52, True).levels] == [True, True, True]
    assert [lv.leaf_ok for lv in arm64_geometry(14, 47, False).levels] == [False, True, True]
