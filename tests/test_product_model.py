"""classify / check / layout on model kernels of every paging mode and era.

Oracle: the MMU model's own ground truth (``m.truth``, ``m.params``,
``m.regions``), which is built by encoders independent of kmemdbg/arch.
The model's vmcore carries only VMCOREINFO (no kallsyms), so these tests
also cover kmemdbg without symbols.
"""
from __future__ import annotations

import pytest

import kmemdbg
from kmemdbg.model import MODES, build_kernel

CASES = [(mode, "6.9", True) for mode in MODES]
CASES += [("x86_64-4level", "6.9", False), ("x86_64-5level", "6.9", False),
          ("arm64-4k-48", "5.11", True), ("arm64-4k-48", "5.4", True), ("arm64-4k-39", "5.4", True),
          ("arm64-4k-48", "4.x", True), ("arm64-64k-48", "4.x", True)]


def _model(mode, era, kaslr):
    kwargs = {"kaslr": kaslr}
    if mode.startswith("arm64"):
        kwargs["era"] = era
    try:
        return build_kernel(mode, seed=11, **kwargs)
    except (ValueError, TypeError) as err:
        pytest.skip(f"model cannot build {mode} {era}: {err}")


def _open(tmp_path, m):
    """Write the model's vmcore (after its allocations) and open it with kmemdbg."""
    path = tmp_path / "model.core"
    m.write_vmcore(str(path))
    return kmemdbg.open(core=str(path))


def _kernel(tmp_path, mode, era, kaslr):
    m = _model(mode, era, kaslr)
    return m, _open(tmp_path, m)


@pytest.mark.parametrize("mode,era,kaslr", CASES, ids=[f"{m}-{e}-{'kaslr' if k else 'nokaslr'}" for m, e, k in CASES])
def test_model_classify_and_check_follow_ground_truth(tmp_path, mode, era, kaslr):
    m = _model(mode, era, kaslr)
    kmalloc_va = m.kmalloc(3000)
    vmalloc_va = m.vmalloc(5 * m.params["page_size"]) + 0x10
    k = _open(tmp_path, m)
    text_va = m.params["text_va"] + 0x123
    # linear map: __pa() is right
    t = m.truth(kmalloc_va)
    c = k.check_virt_to_phys(kmalloc_va)
    assert k.classify(kmalloc_va).region.kind == "linear", c.explanation
    assert c.verdict == "ok" and c.walk_pa == t.pa and c.linear_pa == t.pa, c.explanation
    # vmalloc: __pa() is wrong, the walk is right
    t = m.truth(vmalloc_va)
    c = k.check_virt_to_phys(vmalloc_va)
    assert k.classify(vmalloc_va).region.kind == "vmalloc", c.explanation
    assert c.verdict == "mismatch" and c.walk_pa == t.pa and c.linear_pa != t.pa, c.explanation
    # kernel image: __pa() takes the image branch and is right
    t = m.truth(text_va)
    c = k.check_virt_to_phys(text_va)
    assert k.classify(text_va).region.kind == "kernel-image", k.classify(text_va).region
    assert c.verdict == "ok" and c.walk_pa == t.pa, c.explanation
    # a range over scattered vmalloc pages lists every true frame
    page = m.params["page_size"]
    c = k.check_virt_to_phys(vmalloc_va, size=3 * page)
    assert [p for _, p in c.true_pages] == [m.truth(v).pa for v, _ in c.true_pages]
    # non-canonical
    hole = 1 << (m.params["walk_va_bits"] + 1) if m.params["walk_va_bits"] < 62 else None
    if hole is not None:
        assert k.classify(hole).region.kind == "non-canonical"
        assert k.check_virt_to_phys(hole).verdict == "not-applicable"


@pytest.mark.parametrize("mode,era,kaslr", CASES, ids=[f"{m}-{e}-{'kaslr' if k else 'nokaslr'}" for m, e, k in CASES])
def test_model_layout_bounds_match_the_model(tmp_path, mode, era, kaslr):
    m, k = _kernel(tmp_path, mode, era, kaslr)
    p = m.params
    vmalloc = k.layout.region_of(p["vmalloc_start"])
    assert vmalloc.kind == "vmalloc" and vmalloc.start == p["vmalloc_start"], vmalloc
    assert k.layout.region_of(p["vmalloc_start"] - 1).kind != "vmalloc" or \
        k.layout.region_of(p["vmalloc_start"] - 1).name != vmalloc.name
    assert k.layout.region_of(p["vmemmap_start"] + 0x1000).kind == "vmemmap" or \
        k.layout.region_of(p["vmemmap_end"] - 0x1000).kind == "vmemmap"
    lin = k.layout.region_of(m.linear_va(p["ram"][-1][0]))
    assert lin.kind == "linear"
    assert not k.layout.disagreements, [d.message() for d in k.layout.disagreements]


@pytest.mark.parametrize("mode", MODES)
def test_model_ptov_finds_linear_alias_and_vmalloc_mapping(tmp_path, mode):
    m = _model(mode, "6.9", True)
    va = m.vmalloc(2 * m.params["page_size"])
    k = _open(tmp_path, m)
    pa = m.truth(va).pa
    vas = {x.va for x in k.phys_to_virts(pa)}
    assert va in vas
    assert m.linear_va(pa) in vas
