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
from vmcores.truth import PLANT_MEMORY_KIND as KIND_OF_PLANT

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




def _plants(dump):
    _probe(dump)
    plants = (dump.truth().get("plants") or {}).get("plants")
    if not plants:
        pytest.skip(f"{dump.id}: truth.json has no plants (rebuild the recipe with the current probe)")
    return dump.truth()["plants"]


@pytest.mark.parametrize("dump", ALL, ids=[d.id for d in ALL])
def test_every_planted_misuse_is_found_with_its_owner_and_no_control_is_flagged(dump):
    """Oracle: the guest kernel's own printout of every plant (probe lines plant.*): where the
    word is, the value the kernel computed with virt_to_phys()/virt_to_page()/sg_init_one(),
    the source address and its true frame (vmalloc_to_pfn()).  Every plant keeps its source
    pointer in the word before it, as drivers do, so each must be found at high on any boot;
    every control (a correct value in the same shape) must not be reported at all."""
    info = _plants(dump)
    k, report = _audit(dump)
    assert not [e for e in report.errors if e[0] == "virt-to-phys-misuse"], report.errors
    page = k.tables.format.page_size
    found = {f.start: f for f in report.findings if f.rule == "virt-to-phys-misuse" and f.start is not None}
    incomplete = {f.evidence_dict()["memory_kind"] for f in report.findings if f.kind == "incomplete"}
    stack_pid = int(info["stack_thread"]["pid"], 16) if info.get("stack_thread") else None
    checked = unscanned = 0
    for p in info["plants"]:
        word = int(p["word_va"], 16)
        kind = KIND_OF_PLANT[p["kind"]]
        f = found.get(word)
        if p["control"]:
            assert f is None, f"control {p['id']} reported: {f.explanation}"
            continue
        if f is None and (dump.kind == "trimmed" or kind in incomplete):
            # a slice keeps some pages only, and arm64 6.1 has no data symbols in kallsyms (no
            # __per_cpu_offset): a plant the rule could not scan must be said to be missing
            assert kind in incomplete or not _readable(k, word), (p["id"], sorted(incomplete))
            unscanned += 1
            continue
        assert f is not None, f"{p['id']} ({p['kind']}, {p['form']}) not found"
        checked += 1
        ev = f.evidence_dict()
        assert f.severity == "high", f.explanation
        named = ev["memory_kind"]
        if kind == "stack" and "stack" in incomplete and named == "vmalloc":
            # no task list (a slice's BTF subset, arm64 6.1's kallsyms): said, and scanned as vmalloc
            named = "stack"
        assert ev["form"] == p["form"] and named == kind, (p["id"], ev)
        assert int(ev["value"], 16) == int(p["value"], 16)
        source = int(p["source_va"], 16)
        assert int(ev["source_va"], 16) == (source if p["form"] == "virt_to_phys" else source - source % page)
        true = int(p["source_pfn"], 16) * page + (source % page if p["form"] == "virt_to_phys" else 0)
        assert int(ev["true_pa"], 16) == true, p["id"]
        assert ev["source_region"].kind in ("vmalloc", "module"), ev
        owner = f.owner or ""
        if kind == "module":
            assert "kmemdbg_probe" in owner, owner
        elif kind == "slab":
            assert owner.startswith("slab cache kmalloc-"), owner
        elif kind == "stack" and stack_pid is not None and ev["memory_kind"] == "stack":
            assert f"pid {stack_pid} " in owner, owner
        elif p["kind"] == "percpu-static":
            assert owner.startswith(f"per-cpu area of cpu {p['cpu']}+"), owner
        elif kind == "page":
            assert owner.startswith("a page-allocator page"), owner
    if dump.kind == "full":
        assert checked + unscanned == len([p for p in info["plants"] if not p["control"]])
        assert checked >= len(info["plants"]) // 4
    # nothing else above info: the plants and the probe's two older values are all there is
    olds = set()
    probe = _probe(dump)
    if "bogus_global" in probe:
        olds.add(int(probe["bogus_global"]["va"], 16))
        d = probe["desc_fields"]
        olds.add(int(d["va"], 16) + int(d["bogus_pa_offset"], 16))
    words = {int(p["word_va"], 16) for p in info["plants"]}
    others = [f for f in report.findings if f.rule == "virt-to-phys-misuse" and f.severity != "info"
              and f.kind != "incomplete" and f.start not in words | olds]
    assert others == [], [f.explanation for f in others]
    if dump.kind == "full" and k.symbols.address("__per_cpu_offset") is not None:
        assert not incomplete, [f.explanation for f in report.findings if f.kind == "incomplete"]


def _readable(k, va):
    try:
        k.read(va, 8)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.parametrize("dump", ALL, ids=[d.id for d in ALL])
def test_virt_to_phys_misuse_finds_the_probes_first_two_values_and_names_both_owners(dump):
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

