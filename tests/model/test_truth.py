"""Ground truth, planting and the kernel builder.  Oracle: the model's own records,
checked against the raw entries it wrote (which an independent oracle, drgn,
checks in test_drgn_oracle.py)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmemdbg.model import MODES, AddressSpace, FrameAllocator, SparseMemory, build_kernel
from kmemdbg.model import arm64 as a64
from kmemdbg.model import x86
from kmemdbg.model.geometry import arm64_geometry, x86_geometry

G, M = 1 << 30, 1 << 20
PARAM_KEYS = {"arch", "levels", "page_size", "va_bits", "runtime_va_bits", "phys_bits",
              "sme_mask", "pa_encoding", "root_pa", "root_va", "kimage_voffset", "PHYS_OFFSET",
              "phys_base", "page_offset", "vmalloc_start", "vmalloc_end", "vmemmap_start",
              "vmemmap_end", "modules_vaddr", "modules_end", "KERNELOFFSET", "ttbr1_pa"}


def _x86_space(sme_mask=0):
    ram = [(0, 256 * M)]
    mem = SparseMemory(ram)
    enc = x86.X86Encoder(phys_bits=46, sme_mask=sme_mask)
    return AddressSpace(x86_geometry(False), enc, mem, FrameAllocator(ram), canonical_bits=48)


def test_truth_statuses_x86():
    sp = _x86_space()
    sp.map(0xFFFFC90000000000, 0x200000, 0x3000, 4096)
    t = sp.truth(0xFFFFC90000001234)
    assert (t.status, t.pa, t.level, t.page_size) == ("mapped", 0x201234, "PTE", 4096)
    assert t.writable and not t.executable and not t.user
    assert sp.memory.read_u64(t.entry_pa) == t.raw
    assert sp.truth(0xFFFFC90000003000).status == "unmapped"
    assert sp.truth(0xFFFFC90000003000).level == "PTE"
    assert sp.truth(0x0000800000000000).status == "non-canonical"
    sp.set_prot_none(0x7F0000001000, 0x300000)
    assert sp.truth(0x7F0000001010).status == "prot-none"
    assert sp.truth(0x7F0000001010).pa == 0x300010
    sp.set_swap(0x7F0000002000, 2, 77)
    t = sp.truth(0x7F0000002000)
    assert (t.status, t.swap_type, t.swap_offset) == ("swap", 2, 77)
    assert x86.swap_decode(t.raw) == (2, 77)
    sp.set_not_present(0x7F0000003000, 0x301000)
    assert sp.truth(0x7F0000003000).status == "not-present"


def test_overlapping_mappings_are_refused():
    sp = _x86_space()
    sp.map(0xFFFF888000000000, 0, 2 * M, 2 * M)
    with pytest.raises(ValueError):
        sp.map(0xFFFF888000001000, 0x1000, 4096, 4096)
    with pytest.raises(ValueError):
        sp.map(0xFFFF888000200000, 0x1000, 4096, 4096 * 3)   # bad page size


def test_effective_permissions_combine_table_bits():
    sp = _x86_space()
    sp.map(0x400000, 0x100000, 4096, 4096, frozenset({"P", "RW", "US"}),
           table_flags=x86.KERNEL_TABLE)
    t = sp.truth(0x400000)
    assert t.writable and not t.user and t.executable        # US missing in the tables
    ram = [(0x40000000, 0x50000000)]
    mem = SparseMemory(ram)
    asp = AddressSpace(arm64_geometry(12, 48, False), a64.Arm64Encoder(12, "48"), mem,
                       FrameAllocator(ram), half="upper")
    asp.map(0xFFFF000000000000, 0x40000000, 4096, 4096, a64.PAGE_KERNEL_EXEC,
            table_flags=a64.LINEAR_TABLE)
    assert not asp.truth(0xFFFF000000000000).executable      # PXNTable above
    assert asp.truth(0xFFFF000000000000).writable


def test_contiguous_runs_only_where_aligned():
    ram = [(0x40000000, 0x50000000)]
    mem = SparseMemory(ram)
    sp = AddressSpace(arm64_geometry(14, 47, False), a64.Arm64Encoder(14, "48"), mem,
                      FrameAllocator(ram), half="upper")
    base = 0xFFFF800000000000
    # 2 MiB + 3 pages: one full 128-entry CONT run, three plain pages
    sp.map(base, 0x40000000, 2 * M + 3 * 16384, 16384, cont=True)
    assert sp.truth(base).contiguous_size == 2 * M and sp.truth(base).raw >> 52 & 1
    tail = sp.truth(base + 2 * M)
    assert tail.contiguous_size is None and not tail.raw >> 52 & 1


def test_plant_loop_and_garbage():
    sp = _x86_space()
    sp.map(0xFFFFC90000000000, 0x200000, 4096, 4096)
    # a PMD entry pointing back at the root table: a cycle a walker must catch
    entry_pa = sp.plant(0xFFFFC90000000000, "PMD", sp.encoder.table(sp.root_pa))
    assert sp.memory.read_u64(entry_pa) == sp.encoder.table(sp.root_pa)
    t = sp.truth(0xFFFFC90000000000)
    assert t.status == "raw" and t.level == "PMD"
    sp.plant(0xFFFF900000000000, "PGD", 0xDEADBEEF00000001)   # table into nowhere
    assert sp.truth(0xFFFF900000001000).status == "raw"
    assert sp.truth(0xFFFFC900001FF000).status == "raw"          # same PMD entry
    assert sp.truth(0xFFFFC90000200000).status == "unmapped"     # the next one


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(MODES)), st.integers(0, 2**32), st.floats(0, 1, exclude_max=True))
def test_truth_matches_entries_in_memory(mode, seed, where):
    """Every mapped truth names an entry whose raw value is in memory, and the
    leaf's physical address is consistent with the mapping run it came from."""
    model = build_kernel(mode, seed=seed % 4, ram_bytes=256 * M + 12 * 4096 * 16)
    ranges = list(model.mapped_ranges())
    r = ranges[int(where * len(ranges))]
    off = int(where * r.size) & ~7
    t = model.truth(r.va + off)
    assert t.status == "mapped" and t.pa == r.pa + off and t.page_size == r.page_size
    assert model.memory.read_u64(t.entry_pa) == t.raw


@pytest.mark.parametrize("mode", sorted(MODES))
def test_builder_params_and_allocations(mode):
    model = build_kernel(mode, seed=7)
    p = model.params
    assert PARAM_KEYS <= set(p)
    va = model.kmalloc(5000)
    t = model.truth(va)
    assert t.mapped and model.memory.read(t.pa, 8) == struct.pack("<Q", va)
    assert va == model.linear_va(t.pa)
    va = model.vmalloc(3 * p["page_size"])
    assert all(model.truth(va + i * p["page_size"]).page_size == p["page_size"] for i in range(3))
    va = model.vmalloc(4 * M, huge=True)
    t = model.truth(va + 3 * M)
    # huge vmalloc: PMD leaves with 4K pages, 2 MiB CONT-PTE runs with 16K/64K
    assert t.mapped and (t.page_size == 2 * M or t.contiguous_size == 2 * M)
    assert t.pa % (2 * M) == (3 * M) % (2 * M) or t.page_size != 2 * M
    assert model.truth(p["text_va"]).executable
    assert not model.truth(p["text_va"]).writable
    # the root table lives in the image: its pa follows from phys_base / kimage_voffset
    if p["arch"] == "x86_64":
        assert p["root_va"] - 0xFFFFFFFF80000000 + p["phys_base"] == p["root_pa"]
    else:
        assert (p["root_va"] - p["kimage_voffset"]) % (1 << 64) == p["root_pa"]
    # KFENCE-like guard pages are non-present and carry their frame
    guard = model.truth(p["kfence_pool_va"])
    assert guard.status == "not-present" and guard.pa == p["kfence_pool_pa"]
    assert model.user.truth(0x400000 if p["page_size"] < 65536 else 0x4000000).mapped


def test_vmalloc_pages_are_scattered():
    model = build_kernel("x86_64-4level", seed=3)
    va = model.vmalloc(64 * 4096)
    pas = [model.truth(va + i * 4096).pa for i in range(64)]
    assert sum(b - a == 4096 for a, b in zip(pas, pas[1:])) < 8
    assert model.truth(va + 64 * 4096).status == "unmapped"          # guard page


def test_high_bank_uses_52bit_encodings():
    for mode in ("arm64-4k-52", "arm64-16k-52", "arm64-64k-52", "x86_64-5level"):
        model = build_kernel(mode, seed=1)
        t = model.truth(model.linear_va(0xB000000000000 + 0x10000))
        assert t.mapped and t.pa == 0xB000000010000


def test_52_on_48_phys_offset_is_negative_and_linear_map_usable():
    model = build_kernel("arm64-4k-52on48", seed=1, kaslr=False)
    p = model.params
    assert p["PHYS_OFFSET"] >> 63                    # "negative" memstart_addr
    assert p["page_offset"] == 0xFFF0000000000000
    assert model.linear_va(0x40000000) == 0xFFFF000000000000
    assert model.truth(0xFFF0000000001000).status == "non-canonical"
    assert "NUMBER(TCR_EL1_T1SZ)=0x10" in model.vmcoreinfo()
    m64 = build_kernel("arm64-64k-52on48", seed=1)
    assert m64.params["ttbr1_pa"] == m64.params["root_pa"] + 8 * (1024 - 64)


def test_vmcoreinfo_radixes():
    model = build_kernel("x86_64-4level", seed=11, sme_mask=1 << 47)
    info = dict(line.split("=", 1) for line in model.vmcoreinfo().splitlines())
    p = model.params
    assert int(info["NUMBER(phys_base)"]) == p["phys_base"]            # signed decimal
    assert int(info["SYMBOL(swapper_pg_dir)"], 16) == p["root_va"]     # hex, no 0x
    assert int(info["KERNELOFFSET"], 16) == p["KERNELOFFSET"]
    assert info["NUMBER(sme_mask)"] == str(1 << 47)
    assert info["NUMBER(pgtable_l5_enabled)"] == "0"
    a = dict(line.split("=", 1) for line in build_kernel("arm64-4k-48").vmcoreinfo().splitlines())
    assert a["NUMBER(VA_BITS)"] == "48" and a["NUMBER(kimage_voffset)"].startswith("0x")
    old = build_kernel("arm64-4k-48", era="4.x").vmcoreinfo()
    assert "TCR_EL1_T1SZ" not in old and "MODULES_VADDR" not in old


def test_negative_phys_base_is_possible():
    values = {build_kernel("x86_64-4level", seed=s).params["phys_base"] for s in range(12)}
    assert any(v < 0 for v in values) and any(v > 0 for v in values)


@pytest.mark.parametrize("era", ["6.9", "5.11", "5.4", "4.x"])
def test_arm64_eras_place_the_linear_map(era):
    model = build_kernel("arm64-4k-48", seed=1, era=era, kaslr=False)
    lin = model.linear_va(0x40000000)
    assert lin >> 47 == (0x1FFFF if era == "4.x" else 0x1FFFE)
    assert model.truth(lin).pa == 0x40000000


def test_table_pointing_into_a_hole_reads_as_an_error():
    from kmemdbg.errors import PhysicalReadError
    sp = _x86_space()
    hole_pa = 0x7FF000000                                   # beyond the 256 MiB of RAM
    entry_pa = sp.plant(0xFFFFC90000000000, "PMD", sp.encoder.table(hole_pa))
    assert sp.truth(0xFFFFC90000000000).status == "raw"
    with pytest.raises(PhysicalReadError):
        sp.memory.read(hole_pa, 4096)
    assert sp.memory.read_u64(entry_pa) & ~0xFFF == hole_pa


def test_mapped_ranges_unpack_as_tuples():
    sp = _x86_space()
    sp.map(0xFFFF888000000000, 0, 4 * 4096, 4096)
    sp.map(0xFFFF888000004000, 0x4000, 4096, 4096)          # coalesces with the first
    assert [tuple(r) for r in sp.mapped_ranges()] == [(0xFFFF888000000000, 5 * 4096, 0, 4096)]


def test_sparse_memory_serves_the_library_table_cache():
    from kmemdbg.memory import TableCache
    model = build_kernel("arm64-16k-47", seed=1)
    cache = TableCache(model.memory)
    entries = cache.table(model.params["root_pa"], model.params["page_size"])
    top = model.mode.geometry().levels[0]
    idx = (model.params["text_va"] >> top.shift) & (top.entries - 1)
    assert entries[idx] & 3 == 3                            # a table descriptor


def test_model_does_not_import_the_code_it_tests():
    import ast
    import pathlib
    import kmemdbg.model as pkg
    for path in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                assert not mod.startswith("..") or mod in ("..errors", "..memory"), (path, mod)
                assert "arch" not in mod.split(".") and not any(
                    p.startswith("walk") for p in mod.split(".")), (path, mod)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("kmemdbg"), (path, alias.name)
