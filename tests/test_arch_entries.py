"""Entry formats against hand-computed tables.

Oracle: expectations are computed by hand from the Intel SDM / Arm ARM bit
layouts written out in each test, not with kmemdbg's own tables.
"""
from __future__ import annotations

from kmemdbg.arch import arm64, x86_64
from kmemdbg.walk import Walker

from walk_helpers import DictMemory, chain

X86_SHIFTS4 = (39, 30, 21, 12)
NINE = (9, 9, 9, 9)


def test_x86_4k_leaf_with_nx_and_global():
    mem = DictMemory()
    va = 0xFFFFC90000123ABC
    chain(mem, va, X86_SHIFTS4, NINE, (0x1000, 0x2000, 0x3000, 0x4000),
          (0x2063, 0x3063, 0x4063, (1 << 63) | 0x5000 | 0x163))
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va)
    assert walk.pa == 0x5ABC and walk.page_size == 4096
    assert [s.level for s in walk.steps] == ["PGD", "PUD", "PMD", "PTE"]
    assert walk.steps[0].index == (va >> 39) & 511 == 402
    assert walk.steps[3].entry_pa == 0x4000 + 0x123 * 8
    assert {"P", "RW", "A", "D", "G", "NX", "WB"} <= set(walk.steps[3].flags)
    assert walk.permissions.short() == "RW-/---"


def test_x86_2m_leaf_with_pat_bit12_keeps_pa():
    # bit 12 is PAT in a 2M leaf: it must not leak into the physical address
    mem = DictMemory()
    va = 0xFFFF888000000000 + 0x40000000 + 0x345678
    chain(mem, va, X86_SHIFTS4[:3], NINE, (0x1000, 0x2000, 0x3000),
          (0x2063, 0x3063, 0x40000000 | (1 << 12) | 0x80 | 0x08 | 0x63))
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va)
    assert walk.pa == 0x40000000 + 0x145678 and walk.page_size == 2 << 20
    # PAT index = PAT<<2 | PCD<<1 | PWT = 5, which Linux's default IA32_PAT makes WP
    assert "PAT" in walk.steps[-1].flags and "WP" in walk.steps[-1].flags


def test_x86_1g_leaf_5level():
    mem = DictMemory()
    va = 0xFF11000000000000 + (3 << 30) + 0x1234567
    chain(mem, va, (48, 39, 30), NINE, (0x1000, 0x2000, 0x3000), (0x2063, 0x3063, (5 << 30) | 0xE3))
    walk = Walker(x86_64.paging_format(5), mem, 0x1000).walk(va)
    assert walk.pa == (5 << 30) + 0x1234567 and walk.page_size == 1 << 30
    assert [s.level for s in walk.steps] == ["PGD", "P4D", "PUD"]


def test_x86_sme_cbit_removed_from_tables_and_leaf():
    c = 1 << 47
    mem = DictMemory()
    va = 0xFFFFC90000001000
    chain(mem, va, X86_SHIFTS4, NINE, (0x1000, 0x2000, 0x3000, 0x4000),
          (c | 0x2063, c | 0x3063, c | 0x4063, c | 0x9000 | 0x63))
    walk = Walker(x86_64.paging_format(4, phys_bits=48, sme_mask=c), mem, 0x1000).walk(va)
    assert walk.pa == 0x9000
    assert "ENC" in walk.steps[-1].flags


def test_x86_reserved_bits_above_maxphyaddr_fault():
    mem = DictMemory()
    va = 0xFFFFC90000001000
    chain(mem, va, X86_SHIFTS4, NINE, (0x1000, 0x2000, 0x3000, 0x4000),
          (0x2063, (1 << 47) | 0x3063, 0x4063, 0x9063))
    walk = Walker(x86_64.paging_format(4, phys_bits=46), mem, 0x1000).walk(va)
    assert walk.fault.reason == "reserved-bits" and walk.fault.level == "PUD"
    assert walk.fault.entry_pa == 0x2000 + ((va >> 30) & 511) * 8


def test_x86_ps_in_pml4_is_reserved():
    mem = DictMemory()
    va = 0xFFFF888000000000
    chain(mem, va, X86_SHIFTS4, NINE, (0x1000,), (0x2000 | 0xE3,))
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va)
    assert walk.fault.reason == "reserved-bits" and walk.fault.level == "PGD"


def test_x86_prot_none_and_swap_entries():
    frame = 0x12345
    mem = DictMemory()
    va_user = 0x7F0000001000
    protnone = ((~(frame << 12)) & 0x000FFFFFFFFFF000) | 0x100 | 0x24
    chain(mem, va_user, X86_SHIFTS4, NINE, (0x1000, 0x2000, 0x3000, 0x4000),
          (0x2067, 0x3067, 0x4067, protnone))
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va_user)
    assert walk.fault.reason == "prot-none" and "0x12345" in walk.fault.detail
    # swap: type 3 in bits 59..63, offset 0x777 stored inverted from bit 9
    offset, swp_type = 0x777, 3
    raw = (swp_type << 59) | ((~offset << 9) & ((1 << 59) - 1) & ~0x1FF)
    mem.put(0x4000 + ((va_user >> 12) & 511) * 8, raw)
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va_user)
    assert walk.fault.reason == "swap"
    assert "type 3 offset 0x777" in walk.fault.detail


def test_x86_effective_permissions_and_or():
    mem = DictMemory()
    va = 0x400000
    # user pages: US everywhere; RW cleared at PMD -> read-only; NX only at PUD -> NX
    chain(mem, va, X86_SHIFTS4, NINE, (0x1000, 0x2000, 0x3000, 0x4000),
          (0x2067, (1 << 63) | 0x3067, 0x4065, 0x9067))
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va)
    p = walk.permissions
    assert (p.user_read, p.user_write, p.user_exec, p.kernel_write, p.kernel_exec) == \
        (True, False, False, False, False)


def test_arm64_lpa2_4k_block_at_level1_maps_52bit_pa():
    pa = 0xF_1234_4000_0000 | (0b11 << 50)   # a 1G-aligned 52-bit PA
    pa &= (1 << 52) - 1
    raw = (pa & ((1 << 50) - 1)) | (((pa >> 50) & 3) << 8) | (1 << 10) | 0b01
    mem = DictMemory()
    va = 0xFFF0000000000000 + (7 << 30) + 0x12345
    # 4K LPA2: L-1 bits 51:48, L0 47:39, L1 38:30
    chain(mem, va, (48, 39, 30), (4, 9, 9), (0x1000, 0x2000, 0x3000), (0x2003, 0x3003, raw))
    fmt = arm64.paging_format(4096, 52, 12)
    walk = Walker(fmt, mem, 0x1000).walk(va)
    assert walk.pa == pa + 0x12345 and walk.page_size == 1 << 30
    assert [s.level for s in walk.steps] == ["L-1", "L0", "L1"]


def test_arm64_lpa2_table_pointer_above_4pb():
    # a table itself above 2^50: PA[51:50] in bits 9:8 of the table descriptor
    table_pa = (1 << 51) | 0x5000
    mem = DictMemory()
    va = 0xFFFF800000001000
    chain(mem, va, (48, 39, 30, 21, 12), (4, 9, 9, 9, 9), (0x1000, 0x2000, 0x3000, table_pa, 0x4000),
          (0x2003, 0x3003, (table_pa & ((1 << 50) - 1)) | (0b10 << 8) | 3, 0x4003, 0x7000 | 0x403))
    walk = Walker(arm64.paging_format(4096, 52, 12), mem, 0x1000).walk(va)
    assert walk.pa == 0x7000 and walk.steps[3].table_pa == table_pa


def test_arm64_52bit_kernel_on_48bit_cpu_keeps_sh_bits_as_shareability():
    # TCR_EL1.T1SZ = 16: 48-bit walk, descriptors carry SH=0b11 in bits 9:8
    mem = DictMemory()
    va = 0xFFFF000012345678
    raw = 0x40000000 | (0b11 << 8) | (1 << 10) | 0b01   # 1G block at L1
    chain(mem, va, (39, 30), (9, 9), (0x1000, 0x2000), (0x2003, raw))
    walk = Walker(arm64.paging_format(4096, 52, 16), mem, 0x1000).walk(va)
    assert walk.pa == 0x40000000 + (va & ((1 << 30) - 1))
    assert "ISH" in walk.steps[-1].flags


def test_arm64_64k_lpa_page_high_bits_in_15_12():
    pa = (0xA << 48) | 0x1234_0000
    raw = (pa & 0x0000FFFFFFFF0000) | (((pa >> 48) & 0xF) << 12) | (1 << 10) | 0b11
    mem = DictMemory(65536)
    va = 0xFFF0000000000000 + 0x10000 * 5 + 0x42
    chain(mem, va, (42, 29, 16), (10, 13, 13), (0x10000, 0x20000, 0x30000), (0x20003, 0x30003, raw))
    walk = Walker(arm64.paging_format(65536, 52, 12), mem, 0x10000).walk(va)
    assert walk.pa == pa + 0x42 and walk.page_size == 65536


def test_arm64_block_where_not_allowed_and_page_type_01_fault():
    mem = DictMemory()
    va = 0xFFFF800000000000
    chain(mem, va, (39,), (9,), (0x1000,), (0x40000000 | 0x401,))   # block at L0 without DS
    walk = Walker(arm64.paging_format(4096, 48), mem, 0x1000).walk(va)
    assert walk.fault.reason == "reserved-bits" and walk.fault.level == "L0"
    chain(mem, va, (39, 30, 21, 12), (9,) * 4, (0x1000, 0x2000, 0x3000, 0x4000),
          (0x2003, 0x3003, 0x4003, 0x9000 | 0x401))   # type 01 at L3
    walk = Walker(arm64.paging_format(4096, 48), mem, 0x1000).walk(va)
    assert walk.fault.reason == "reserved-bits" and walk.fault.level == "L3"


def test_arm64_table_pxn_makes_leaf_non_executable_for_kernel():
    mem = DictMemory()
    va = 0xFFFF000000200000
    leaf = 0x200000 | (1 << 10) | 0b01 | (1 << 51)          # RW kernel block, PXN clear
    chain(mem, va, (39, 30, 21), (9, 9, 9), (0x1000, 0x2000, 0x3000),
          (0x2003, (1 << 59) | 0x3003, leaf))
    walk = Walker(arm64.paging_format(4096, 48), mem, 0x1000).walk(va)
    assert walk.permissions.kernel_exec is False and walk.permissions.kernel_write is True
    assert "PXNTable" in walk.steps[1].flags


def test_table_loop_at_another_level_is_a_fault_and_shared_table_is_not():
    mem = DictMemory()
    va = 0xFFFFC90000000000
    # PGD -> PUD table which points back at the PGD page
    chain(mem, va, X86_SHIFTS4, NINE, (0x1000, 0x2000), (0x2063, 0x1063))
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va)
    assert walk.fault.reason == "table-loop" and walk.fault.level == "PMD"


def test_unreadable_table_and_misaligned_root_name_level_and_pa():
    mem = DictMemory()
    va = 0xFFFFC90000000000
    chain(mem, va, X86_SHIFTS4, NINE, (0x1000,), (0xDEAD000 | 0x63,))
    walk = Walker(x86_64.paging_format(4), mem, 0x1000).walk(va)
    assert walk.fault.reason == "table-unreadable" and walk.fault.level == "PUD"
    assert walk.fault.table_pa == 0xDEAD000
    walk = Walker(x86_64.paging_format(4), mem, 0x1008).walk(va)
    assert walk.fault.reason == "root-misaligned" and walk.fault.table_pa == 0x1008
