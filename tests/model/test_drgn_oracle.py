"""The independent oracle: drgn 0.3.0's C page-table walker on the model's vmcores.

For every mode, the model writes an ELF vmcore; drgn opens it as a Linux
kernel core and ``_linux_helper_follow_phys`` translates >= 10,000 addresses
(mapped ones sampled from mapped_ranges(), plus unmapped and non-present ones).
drgn and the model share no code, so agreement checks the model's encoders,
layouts, VMCOREINFO and ELF writer at once.
"""
from __future__ import annotations

import random

import pytest

from kmemdbg.model import MODES, build_kernel

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")

M64 = (1 << 64) - 1
SAMPLES = 10_000

CASES = [pytest.param(mode, {}, id=mode) for mode in sorted(MODES)] + [
    pytest.param("x86_64-4level", {"kaslr": False}, id="x86_64-4level-nokaslr"),
    pytest.param("arm64-4k-52", {"kaslr": False}, id="arm64-4k-52-nokaslr"),
    pytest.param("arm64-4k-48", {"era": "5.11"}, id="arm64-4k-48-era5.11"),
    pytest.param("arm64-16k-47", {"era": "5.4"}, id="arm64-16k-47-era5.4"),
    pytest.param("arm64-64k-42", {"era": "5.4"}, id="arm64-64k-42-era5.4"),
    pytest.param("arm64-4k-39", {"era": "4.x"}, id="arm64-4k-39-era4.x"),
    pytest.param("arm64-64k-48", {"era": "4.x"}, id="arm64-64k-48-era4.x"),
]


def _follow(prog, root, va):
    try:
        return _drgn._linux_helper_follow_phys(prog, root, va)
    except drgn.FaultError:
        return None


def _sample(model, rng, n_mapped, n_other):
    """Mapped VAs (half by range, half by size) and other VAs near and far from mappings."""
    ranges = list(model.mapped_ranges())
    weights = [r.size for r in ranges]
    out = []
    for i in range(n_mapped):
        r = rng.choice(ranges) if i % 2 else rng.choices(ranges, weights)[0]
        out.append(r.va + rng.randrange(r.size))
    bits = model.params["runtime_va_bits"]
    for i in range(n_other):
        r = rng.choice(ranges)
        kind = i % 4
        if kind == 0:
            out.append((r.va - 1 - rng.randrange(4 * r.page_size)) & M64)
        elif kind == 1:
            out.append((r.va + r.size + rng.randrange(4 * r.page_size)) & M64)
        elif kind == 2:
            out.append(rng.randrange(1 << 64) | (M64 << (bits - 1) & M64))
        else:
            lo, hi = model.regions[i % len(model.regions)][1:]
            out.append(lo + rng.randrange(max(hi - lo, 1)))
    return out


def _open(model, tmp_path):
    path = tmp_path / "model.core"
    model.write_vmcore(path)
    prog = drgn.Program()
    prog.set_core_dump(str(path))
    assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
    return prog


@pytest.mark.parametrize("mode,kw", CASES)
def test_drgn_walker_agrees_with_model(mode, kw, tmp_path):
    model = build_kernel(mode, seed=sum(map(ord, mode)) + len(kw), **kw)
    planted = [model.kmalloc(3000), model.vmalloc(5 * model.params["page_size"]),
               model.vmalloc(2 << 20, huge=True)]
    prog = _open(model, tmp_path)
    root = drgn.Object(prog, "void *", model.params["root_va"])
    rng = random.Random(mode)
    addrs = _sample(model, rng, 7_000, 3_000)
    statuses = {}
    disagree = []
    for va in addrs:
        t = model.truth(va)
        statuses[t.status] = statuses.get(t.status, 0) + 1
        got = _follow(prog, root, va)
        if got != t.pa if t.mapped else got is not None:
            disagree.append((hex(va), t.status, t.level, got and hex(got), t.pa and hex(t.pa)))
    assert len(addrs) >= SAMPLES and statuses.get("mapped", 0) >= 7_000
    assert not disagree, disagree[:10]
    # virtual reads through drgn (its walker, or kexec-style p_vaddr segments for
    # the linear map) return the bytes the model stored at the true frame
    readable = [va & ~7 for va in addrs if model.truth(va).mapped
                and model.memory.is_stored(model.truth(va).pa)][:300] + planted
    for va in readable:
        pa = model.truth(va).pa
        assert prog.read(va, 8) == model.memory.read(pa, 8), hex(va)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_drgn_walks_user_space_and_faults_on_non_present(mode, tmp_path):
    model = build_kernel(mode, seed=3)
    prog = _open(model, tmp_path)
    user = model.user
    pgd = drgn.Object(prog, "void *", model.linear_va(user.root_pa))
    seen = set()
    for level, va, raw, kind in user.entries():
        t = user.truth(va + 8)
        seen.add(t.status)
        got = _follow(prog, pgd, va + 8)
        assert got == (t.pa if t.mapped else None), (hex(va), t.status, hex(raw))
    assert {"mapped", "prot-none", "swap"} <= seen


@pytest.mark.parametrize("mode", ["x86_64-4level", "x86_64-5level", "arm64-4k-52",
                                  "arm64-16k-52on47", "arm64-64k-52on48"])
def test_drgn_custom_program_without_a_file(mode):
    model = build_kernel(mode, seed=9)
    va = model.vmalloc(3 * model.params["page_size"])
    prog = model.drgn_program()
    root = drgn.Object(prog, "void *", model.params["root_va"])
    rng = random.Random(5)
    for addr in _sample(model, rng, 1_500, 500) + [va]:
        t = model.truth(addr)
        got = _follow(prog, root, addr)
        assert got == (t.pa if t.mapped else None), hex(addr)
    assert prog.read(va, 8) == model.memory.read(model.truth(va).pa, 8)


@pytest.mark.parametrize("mode,sme_mask,phys_bits", [
    ("x86_64-4level", 1 << 47, None), ("x86_64-5level", 1 << 51, 48)])
def test_drgn_does_not_strip_sme_mask(mode, sme_mask, phys_bits, tmp_path):
    """Known drgn limitation, not a model bug.

    drgn's x86-64 walker masks entries with bits 12..51 and never removes
    NUMBER(sme_mask) (layout.md §1.3), so with the C-bit set in table entries
    (as the kernel sets it) it reads the next table at ``pa | sme_mask``,
    beyond RAM, and every walk faults.  The model's own truth is checked by
    the other tests; here we pin drgn's behaviour so a fixed drgn shows up.
    Linear-map reads still work through the kexec-style p_vaddr segments.
    """
    model = build_kernel(mode, seed=4, sme_mask=sme_mask, phys_bits=phys_bits)
    prog = _open(model, tmp_path)
    root = drgn.Object(prog, "void *", model.params["root_va"])
    rng = random.Random(2)
    addrs = _sample(model, rng, 7_000, 3_000)
    mapped = [va for va in addrs if model.truth(va).mapped]
    results = [_follow(prog, root, va) for va in mapped]
    assert all(r is None for r in results)
    # Without the C-bit the same layout walks fine (control).
    plain = build_kernel(mode, seed=4, phys_bits=phys_bits or 46)
    proot = drgn.Object(plain.drgn_program(), "void *", plain.params["root_va"])
    va = next(iter(plain.mapped_ranges())).va
    assert _drgn._linux_helper_follow_phys(proot.prog_, proot, va) == plain.truth(va).pa
    lin = model.kmalloc(64)
    prog2 = _open(model, tmp_path)
    assert prog2.read(lin, 8) == model.memory.read(model.truth(lin).pa, 8)
