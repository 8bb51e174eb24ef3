"""Audits of the real Debian kernels, against what the guest kernel itself reported.

Oracles: the probe module's own printout (truth.json ``probe``: the planted
``virt_to_phys()`` of a vmalloc buffer, where it stored it, the descriptor's
layout), the kernel's boot-time W+X check in dmesg ("Checked W+X mappings:
passed"), and /proc/vmallocinfo (truth.json ``vmalloc_areas``).
"""
from __future__ import annotations

import pytest

import kmemdbg
from kmemdbg.audit import run_audit
from realdumps import all_dumps

pytestmark = pytest.mark.real
DUMPS = all_dumps()
_reports = {}


def _audit(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    if dump.id not in _reports:
        k = kmemdbg.open(core=dump.path)
        _reports[dump.id] = (k, run_audit(k))
    return _reports[dump.id]


def _probe(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    probe = {p["name"]: p for p in dump.truth().get("probe") or []}
    if not probe:
        pytest.skip(f"{dump.id}: truth.json has no probe report yet (rebuild the recipe with the probe module)")
    return probe


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_linear_and_vmalloc_integrity_report_only_explained_findings(dump):
    k, report = _audit(dump)
    assert not [e for e in report.errors if e[0] in ("linear-integrity", "vmalloc-integrity")], report.errors
    for f in report.findings:
        if f.rule not in ("linear-integrity", "vmalloc-integrity"):
            continue
        # info: holes (gaps in RAM, KFENCE guards), split huge pages, set_memory
        # permission changes (read-only aliases of kernel/module text), percpu chunks
        # populated on demand, arm64's init segment unmapped after boot with its vm
        # area left declared; statistics.  Nothing else is expected on a healthy kernel.
        assert f.severity == "info", f.explanation
        assert f.kind in ("hole", "split", "set-memory", "sparse-percpu", "freed-init", "statistics"), f.kind
    stats = [f for f in report.findings if f.rule == "vmalloc-integrity" and f.kind == "statistics"][0]
    areas = [a for a in dump.truth()["vmalloc_areas"] if "vmalloc" in a["flags"]]
    assert stats.evidence_dict()["areas"] >= len(areas) // 2


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_the_sweep_reads_each_table_page_once(dump):
    k, report = _audit(dump)
    assert report.table_reads <= len(k.walker.cache)
    assert not [f for f in report.findings if f.rule == "page-tables"], \
        [f.explanation for f in report.findings if f.rule == "page-tables"]


X86 = [d for d in DUMPS if d.recipe.startswith("x86_64")]
ALL = DUMPS


@pytest.mark.parametrize("dump", ALL, ids=[d.id for d in ALL])
def test_virt_to_phys_misuse_finds_the_planted_values_and_names_both_owners(dump):
    probe = _probe(dump)
    k, report = _audit(dump)
    g, d = probe["bogus_global"], probe["desc_fields"]
    value = int(g["value"], 16)
    assert value == int(d["bogus_pa"], 16)
    found = [f for f in report.findings if f.rule == "virt-to-phys-misuse" and f.kind == "bogus-pa"
             and f.severity != "info"]
    by_va = {f.start: f for f in found}
    global_va = int(g["va"], 16)
    desc_word = int(d["va"], 16) + int(d["bogus_pa_offset"], 16)
    if dump.kind == "trimmed" and desc_word not in by_va:
        # a slice keeps page tables, module memory and the probe's vmap areas, not the slab pages
        assert global_va in by_va
    else:
        assert desc_word in by_va, [f.explanation for f in found]
        fd = by_va[desc_word]
        assert fd.severity == "high"
        assert "slab cache kmalloc-" in fd.owner and f"object 0x{int(d['va'], 16):x}+0x10" in fd.owner
    fg = by_va[global_va]
    # a phys_addr_t in module .bss with no BTF for the module: at least the evidence that it
    # equals __pa() of the area's first byte and cannot be RAM; high when the compiler put a
    # pointer to the buffer beside it
    assert fg.severity in ("medium", "high"), fg.explanation
    assert "kmemdbg_probe" in fg.owner
    for f in (by_va[global_va],) + ((by_va[desc_word],) if desc_word in by_va else ()):
        ev = f.evidence_dict()
        assert int(ev["value"], 16) == value
        assert int(ev["source_va"], 16) == int(g["source_va"], 16)
        assert int(ev["true_pa"], 16) == int(g["source_pfn"], 16) * k.tables.format.page_size
    # nothing else above info: the probe's two values are the only ones in these kernels
    others = [f for f in found if f.start not in (global_va, desc_word)]
    assert others == [], [f.explanation for f in others]


@pytest.mark.parametrize("dump", ALL, ids=[d.id for d in ALL])
def test_wx_agrees_with_the_kernels_own_wx_check(dump):
    """The probe asks for a W+X vmap() with PAGE_KERNEL_EXEC, but vmap() adds NX itself:
    Linux kernel commit cca98e9f8b5e ("mm: enforce that vmap can't map pages
    executable") (in v5.8).  So the page is RW+NX in every dump and the kernel's own
    boot-time check passed: wx must report nothing, and the page must read as NX."""
    probe = _probe(dump)
    k, report = _audit(dump)
    wx = [f for f in report.findings if f.rule == "wx" and f.severity != "info"]
    page = int(probe["wx_page"]["va"], 16)
    walk = k.translate(page)
    assert walk.pa == int(probe["wx_page"]["page_to_pfn"], 16) * k.tables.format.page_size
    if walk.permissions.kernel_exec:
        assert any(f.start <= page < f.end for f in wx), "the planted W+X page is executable but not reported"
    else:
        assert walk.permissions.kernel_write
        assert wx == [], [f.explanation for f in wx]
        # arm64 with KPTI maps its entry trampoline text into the fixmap: reported as info
        assert all(f.kind == "fixmap-text" for f in report.findings if f.rule == "wx")
        pytest.skip("the probe's W+X vmap is mapped NX by vmap() itself (v5.8+): nothing W+X to find; "
                    "the probe must clear NX with apply_to_page_range() to plant one")

