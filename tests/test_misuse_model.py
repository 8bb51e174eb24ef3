"""The three forms of stored virt_to_phys()/virt_to_page() misuse, on the MMU model of every mode.

Oracle: the model's own layout parameters and ground truth.  The expected
bogus values are computed here from the model's parameters with the
kernel's formulas (x86-64: ``__pa()`` = ``va - page_offset_base`` and
``vmemmap + (pa >> PAGE_SHIFT)``; arm64: ``va - kimage_voffset`` and
``VMEMMAP_START + (va - PAGE_OFFSET) / PAGE_SIZE * sizeof(struct page)``),
never with kmemdbg's code; true frames come from ``model.truth()``.
"""
from __future__ import annotations

import pytest

import kmemdbg
from kmemdbg.audit import Area, AuditContext, run_audit
from kmemdbg.model import MODES, build_kernel
from kmemdbg.model.layout import STRUCT_PAGE

M64 = (1 << 64) - 1
SG_END = 0x2


def _pa(m, va):
    p = m.params
    if p["arch"] == "x86_64":
        return (va - p["page_offset"]) & M64
    return (va - p["kimage_voffset"]) & M64


def _page(m, va):
    p = m.params
    if p["arch"] == "x86_64":
        return (p["vmemmap_start"] + (_pa(m, va) >> p["page_shift"]) * STRUCT_PAGE) & M64
    return (p["vmemmap_start"] + (((va - p["page_offset"]) & M64) >> p["page_shift"]) * STRUCT_PAGE) & M64


def _true_page(m, va):
    p = m.params
    base = p["vmemmap_start"] if p["arch"] == "x86_64" else p["vmemmap"]
    return (base + (m.truth(va).pa >> p["page_shift"]) * STRUCT_PAGE) & M64


def _build(tmp_path, mode):
    m = build_kernel(mode, seed=7)
    ps = m.params["page_size"]
    src = m.vmalloc(4 * ps)
    areas = [Area(src, src + 5 * ps, src + 4 * ps, "test vmalloc", ("vmalloc",))]
    data = m.kmalloc(ps)
    base = m.truth(data).pa
    words = {
        # (word index): value; a driver keeps the pointer beside what it computed from it
        0: src + 0x123, 1: _pa(m, src + 0x123),                                   # virt_to_phys
        4: src + ps, 5: _page(m, src + ps),                                       # virt_to_page
        8: _page(m, src + 2 * ps) | SG_END, 9: (0x80 << 32) | 0x10, 10: src + 2 * ps,   # sg_init_one
        14: src + 3 * ps, 15: m.truth(src + 3 * ps).pa + 0x40,                    # control: true pa
        18: src, 19: _true_page(m, src),                                          # control: true page
        40: _pa(m, src),                                                          # alone, area start
    }
    for idx, value in words.items():
        m.memory.write_u64(base + 8 * idx, value)
    path = tmp_path / f"{mode}.core"
    m.write_vmcore(str(path))
    k = kmemdbg.open(core=str(path))
    ctx = AuditContext(k, areas=areas, sections={}, module_sections=[],
                       static_data=[(data, data + ps, "model data page")])
    return m, k, ctx, data, src


@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_misuse_form_is_found_with_its_evidence_and_no_control_is(tmp_path, mode):
    m, k, ctx, data, src = _build(tmp_path, mode)
    ps = m.params["page_size"]
    report = run_audit(k, ["virt-to-phys-misuse"], context=ctx)
    assert not report.errors, report.errors
    found = {f.start: f for f in report.findings if f.kind in ("bogus-pa", "bogus-page")}
    expect = {1: ("virt_to_phys", "high", src + 0x123, m.truth(src).pa + 0x123),
              5: ("virt_to_page", "high", src + ps, m.truth(src + ps).pa),
              8: ("sg_page_link", "high", src + 2 * ps, m.truth(src + 2 * ps).pa),
              40: ("virt_to_phys", "medium", src, m.truth(src).pa)}
    for idx, (form, sev, source, true_pa) in expect.items():
        f = found.get(data + 8 * idx)
        assert f is not None, (mode, form, [g.explanation for g in report.findings])
        ev = f.evidence_dict()
        assert (ev["form"], f.severity) == (form, sev), f.explanation
        assert int(ev["source_va"], 16) == source
        assert int(ev["true_pa"], 16) == true_pa
        assert ev["memory_kind"] == "image"          # the override's static range
    # the true frame and the true struct page beside their pointers are correct values
    assert data + 8 * 15 not in found and data + 8 * 19 not in found
    others = [f for f in report.at_least("low") if f.kind != "incomplete" and f.start not in
              {data + 8 * i for i in expect}]
    assert others == [], [f.explanation for f in others]


@pytest.mark.parametrize("mode", ["x86_64-4level", "x86_64-5level", "arm64-4k-48", "arm64-16k-47"])
def test_a_lone_value_that_only_equals_pa_of_a_vmalloc_byte_stays_info(tmp_path, mode):
    """__pa() of a byte inside (not at the start of) a vmalloc area, alone in memory with no
    pointer beside it and no type: a number that happens to be equal, kept at info."""
    m = build_kernel(mode, seed=3)
    ps = m.params["page_size"]
    src = m.vmalloc(2 * ps)
    data = m.kmalloc(ps)
    m.memory.write_u64(m.truth(data).pa + 0x100, _pa(m, src + ps + 0x10))
    path = tmp_path / "m.core"
    m.write_vmcore(str(path))
    k = kmemdbg.open(core=str(path))
    ctx = AuditContext(k, areas=[Area(src, src + 3 * ps, src + 2 * ps, "t", ("vmalloc",))],
                       sections={}, module_sections=[], static_data=[(data, data + ps, "model data page")])
    report = run_audit(k, ["virt-to-phys-misuse"], context=ctx)
    hits = [f for f in report.findings if f.start == data + 0x100]
    assert len(hits) == 1 and hits[0].severity == "info", [f.explanation for f in hits]
    assert "only numerically equal" in hits[0].explanation
    assert int(hits[0].evidence_dict()["source_va"], 16) == src + ps + 0x10
