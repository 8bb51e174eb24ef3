"""kmemdbg's walker against drgn's C walker on the model's vmcores.

Oracle: drgn 0.3.0's ``_linux_helper_follow_phys`` (C code that shares nothing
with kmemdbg or the model) on the same ELF core file.  kmemdbg opens the file
with ``kmemdbg.session.open_core`` (no drgn), so the ELF reader, VMCOREINFO
parsing, root derivation, formats and the batch walker are all under test.
For every mode: >= 10,000 addresses (mapped ones sampled from the model's
``mapped_ranges()``, the rest unmapped, non-present and non-canonical), and
drgn's virtual reads against kmemdbg's physical reads at the walked address.

Where drgn is known to be wrong (the x86 SME C-bit, which drgn never strips)
the disagreement is asserted explicitly and the model's truth is the arbiter.
"""
from __future__ import annotations

import random

import pytest

from kmemdbg.model import MODES, build_kernel
from kmemdbg.session import open_core
from kmemdbg.walk import Walker
from test_model_walker import enrich    # every leaf size, contiguous runs, top PA bits

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")

M64 = (1 << 64) - 1
M = 1 << 20
MAPPED, OTHER = 7_000, 3_000
READS = 300

CASES = [pytest.param(mode, {}, id=mode) for mode in sorted(MODES)] + [
    pytest.param("x86_64-4level", {"kaslr": False}, id="x86_64-4level-nokaslr"),
    pytest.param("x86_64-5level", {"kaslr": False}, id="x86_64-5level-nokaslr"),
    pytest.param("arm64-4k-52", {"kaslr": False}, id="arm64-4k-52-nokaslr"),
    pytest.param("arm64-4k-48", {"era": "5.11"}, id="arm64-4k-48-era5.11"),
    pytest.param("arm64-64k-52on48", {"era": "5.11"}, id="arm64-64k-52on48-era5.11"),
    pytest.param("arm64-16k-47", {"era": "5.4"}, id="arm64-16k-47-era5.4"),
    pytest.param("arm64-4k-39", {"era": "4.x"}, id="arm64-4k-39-era4.x"),
    pytest.param("arm64-64k-48", {"era": "4.x"}, id="arm64-64k-48-era4.x"),
]


def follow(prog, root, va):
    """drgn's C walk of ``va`` from the root table object; None when drgn faults."""
    try:
        return _drgn._linux_helper_follow_phys(prog, root, va)
    except drgn.FaultError:
        return None


def build(mode, kw, seed):
    """The kernel model plus a leaf of every size the mode allows (with PAs using bits
    51..48 where the machine has them) and arm64 contiguous runs."""
    model = build_kernel(mode, seed=seed, **kw)
    model.kmalloc(5000)
    model.vmalloc(7 * model.params["page_size"])
    model.vmalloc(2 * M, huge=True)
    enrich(model, random.Random(seed))
    return model


def in_kernel_half(model, va):
    """False for arm64 TTBR0 (user) VAs, which kmemdbg walks through the kernel root
    (a kmemdbg bug with its own xfail test here and in test_model_walker.py)."""
    p = model.params
    return p["arch"] != "arm64" or va >= 1 << p["runtime_va_bits"]


def sample(model, rng, n_mapped=MAPPED, n_other=OTHER):
    """``n_mapped`` VAs inside mapped ranges (half uniform over ranges, half weighted by
    size) and ``n_other`` around them, in the model's regions and random 64-bit values."""
    ranges = list(model.mapped_ranges())
    weights = [r.size for r in ranges]
    out = []
    for i in range(n_mapped):
        r = rng.choice(ranges) if i % 2 else rng.choices(ranges, weights)[0]
        out.append(r.va + rng.randrange(r.size))
    ps = model.params["page_size"]
    while len(out) < n_mapped + n_other:
        r = rng.choice(ranges)
        kind = len(out) % 5
        if kind == 0:
            va = r.va - 1 - rng.randrange(4 * ps)
        elif kind == 1:
            va = r.va + r.size + rng.randrange(4 * ps)
        elif kind == 2:
            lo, hi = model.regions[len(out) % len(model.regions)][1:]
            va = lo + rng.randrange(max((hi - lo) & M64, 1))
        elif kind == 3:
            va = rng.getrandbits(64) | (M64 << (model.params["runtime_va_bits"] - 1) & M64)
        else:
            va = rng.getrandbits(64)
        va &= M64
        if in_kernel_half(model, va):
            out.append(va)
    return out


@pytest.fixture
def core(tmp_path):
    def make(mode, kw, seed=11):
        model = build(mode, kw, seed)
        path = tmp_path / f"{mode}.core"
        model.write_vmcore(path)
        session = open_core(str(path))
        prog = drgn.Program()
        prog.set_core_dump(str(path))
        assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
        root = drgn.Object(prog, "void *", session.tables.root_va)
        return model, session, prog, root
    return make


@pytest.mark.parametrize("mode,kw", CASES)
def test_kmemdbg_batch_walk_agrees_with_drgn_c_walker_on_10000_addresses(mode, kw, core):
    model, session, prog, root = core(mode, kw)
    assert session.tables.root_pa == model.params["root_pa"]
    rng = random.Random(f"{mode}{kw}")
    vas = sample(model, rng)
    assert len(vas) >= 10_000
    batch = session.translate_many(vas)
    disagree = []
    n_mapped = 0
    for va, pa in zip(vas, batch.pas):
        want = follow(prog, root, va)
        if pa != want:
            disagree.append((hex(va), pa and hex(pa), want and hex(want), batch.faults))
        n_mapped += pa is not None
    assert not disagree, disagree[:5]
    assert n_mapped >= MAPPED
    fmt = session.tables.format
    assert {s for s in batch.page_sizes if s} == {lv.leaf_size for lv in fmt.levels if lv.leaf_ok}
    # reads: drgn's virtual read (its walker or the core's p_vaddr for the linear map)
    # must return the bytes kmemdbg reads at the physical address it walked to
    # (device windows such as the PCI I/O range are mapped but not in the core)
    mapped = [(va, pa) for va, pa in zip(vas, batch.pas)
              if pa is not None and model.memory.in_ram(pa & ~4095, 4096)]
    stored = [(va, pa) for va, pa in mapped if model.memory.is_stored(pa)]
    picks = stored[:READS // 2] + mapped[::max(len(mapped) // (READS // 2), 1)][:READS // 2]
    assert len(picks) >= READS * 2 // 3
    for va, pa in picks:
        n = min(64, 4096 - (va & 4095))
        walk = session.translate(va)
        assert walk.pa == pa
        assert prog.read(va, n) == session.memory.read(walk.pa, n), hex(va)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_user_root_walks_agree_with_drgn_including_prot_none_and_swap(mode, core):
    """The user address space (mapped pages, PROT_NONE, swap entries and the holes
    between) through the user root: both walkers fault on every non-present entry."""
    model, session, prog, _ = core(mode, {})
    user = model.user
    pgd = drgn.Object(prog, "void *", model.linear_va(user.root_pa))
    walker = Walker(session.tables.format, session.memory, user.root_pa)
    rng = random.Random(mode)
    ps = model.params["page_size"]
    vas = []
    kinds = set()
    for level, va, raw, kind in user.entries():
        kinds.add(kind)
        vas += [va, va + rng.randrange(ps), va + ps]
    vas += [rng.randrange(1 << (model.params["runtime_va_bits"] - 1)) for _ in range(200)]
    assert {"mapped", "prot-none", "swap"} <= kinds
    batch = walker.translate_many(vas)
    for va, pa in zip(vas, batch.pas):
        assert pa == follow(prog, pgd, va), hex(va)
        assert pa == user.truth(va).pa if user.truth(va).mapped else pa is None


@pytest.mark.parametrize("mode,sme_mask,phys_bits", [
    ("x86_64-4level", 1 << 47, 48), ("x86_64-5level", 1 << 47, 48),
    ("x86_64-5level", 1 << 51, None)])
def test_sme_c_bit_drgn_faults_where_kmemdbg_matches_the_model(mode, sme_mask, phys_bits,
                                                                tmp_path):
    """Known drgn limitation: its x86-64 walker keeps NUMBER(sme_mask) in the table
    address (bits 12..51), so with the C-bit set in every entry (as the kernel sets
    it) the first table pointer lands beyond RAM and every walk faults.  kmemdbg
    strips the C-bit; the model's truth decides who is right."""
    kw = {"sme_mask": sme_mask}
    if phys_bits:
        kw["phys_bits"] = phys_bits
    model = build(mode, kw, 4)
    lin = model.kmalloc(64)
    path = tmp_path / "sme.core"
    model.write_vmcore(path)
    session = open_core(str(path))
    prog = drgn.Program()
    prog.set_core_dump(str(path))
    root = drgn.Object(prog, "void *", session.tables.root_va)
    vas = sample(model, random.Random(sme_mask), 7_000, 3_000)
    batch = session.translate_many(vas)
    n_mapped = 0
    for va, pa in zip(vas, batch.pas):
        t = model.truth(va)
        assert pa == (t.pa if t.mapped else None), hex(va)        # kmemdbg == model
        drgn_pa = follow(prog, root, va)
        if t.mapped:
            n_mapped += 1
            assert drgn_pa is None, hex(va)                        # drgn's limitation
        else:
            assert drgn_pa is None
    assert n_mapped >= 7_000
    # drgn still reads the linear map through the core's p_vaddr segments
    assert prog.read(lin, 8) == session.memory.read(session.translate(lin).pa, 8) == \
        model.memory.read(model.truth(lin).pa, 8)
    vm = model.params["vmalloc_used"][0]
    with pytest.raises(drgn.FaultError):
        prog.read(vm, 8)


@pytest.mark.parametrize("mode", ["arm64-4k-48", "arm64-64k-42"])
def test_arm64_user_half_va_through_the_kernel_root_agrees_with_drgn(mode, core):
    model, session, prog, root = core(mode, {})
    lows = [r.va & ((1 << model.params["runtime_va_bits"]) - 1)
            for r in list(model.mapped_ranges())[:200]]
    batch = session.translate_many(lows)
    assert all(follow(prog, root, va) is None for va in lows)
    assert batch.pas == tuple(None for _ in lows)
