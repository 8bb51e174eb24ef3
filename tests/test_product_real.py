"""kmemdbg.open() on real Debian kernels: vtop, classify and check.

Oracles: drgn's C page-table walker for every translation; the guest
kernel's own /proc/vmallocinfo, /proc/modules, /proc/kallsyms and /proc/iomem
(in truth.json) for what each address is.
"""
from __future__ import annotations

import pytest

from kmemdbg import render

from realdumps import all_dumps, open_dump
from test_real_walker import linear_offset

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")

DUMPS = all_dumps()


def _open(dump):
    k, prog = open_dump(dump)
    return k, prog, dump.truth()


def _module_memory_area(area):
    return (area.get("caller") or "").startswith(("load_module", "module_alloc", "execmem_alloc",
                                                  "module_memory_alloc"))


def _image_vmalloc_area(area):
    # arm64 registers the kernel image segments (and the freed init segment)
    # as vm areas inside the vmalloc range (declare_vma / paging_init)
    return (area.get("caller") or "").startswith(("paging_init", "declare_kernel_vmas", "map_kernel"))


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_vtop_json_agrees_with_drgn_and_classify_with_the_guest(dump):
    k, prog, truth = _open(dump)
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    module_ranges = [(int(m["address"], 16), int(m["address"], 16) + m["size"]) for m in truth["modules"]]
    checked = 0
    for area in truth["vmalloc_areas"]:
        va = int(area["start"], 16)
        obj = render.vtop_json(k.translate(va), k.classify(va))
        try:
            want = _drgn._linux_helper_follow_phys(prog, pgd, va)
        except drgn.FaultError:
            want = None
        assert obj["pa"] == (None if want is None else f"0x{want:x}")
        kind = obj["region"]["kind"]
        if any(lo <= va < hi for lo, hi in module_ranges) or _module_memory_area(area):
            # module memory: /proc/modules gives only the base of the text
            # range; the other module_memory ranges are separate vm areas
            assert kind == "module", f"{area['line']}: {kind}"
        elif k.arch == "x86_64" and va >= 0xFFFFFFFF80000000 + k.info.number("KERNEL_IMAGE_SIZE"):
            # x86-64 execmem (6.10+) puts BPF packs and kprobe pages in the
            # module window [MODULES_VADDR, MODULES_END) too
            assert kind == "module", f"{area['line']}: {kind}"
        elif _image_vmalloc_area(area):
            assert kind in ("kernel-image", "vmalloc"), f"{area['line']}: {kind}"
        else:
            assert kind == "vmalloc", f"{area['line']}: classified {kind}"
        checked += 1
    assert checked > 10
    for m in truth["modules"]:
        va = int(m["address"], 16)
        assert k.classify(va).region.kind == "module", f"module {m['name']} at 0x{va:x}"
    # _end is the first byte after the image, not inside it
    image = [int(s["address"], 16) for n, s in truth["kallsyms"].items()
             if s.get("module") is None and n != "_end"]
    for va in image:
        assert k.classify(va).region.kind in ("kernel-image", "percpu"), hex(va)


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_check_is_ok_for_linear_and_mismatch_for_mapped_vmalloc(dump):
    k, prog, truth = _open(dump)
    offset = linear_offset(prog)
    ram = [r for r in truth["iomem"] if r["name"] == "System RAM" and r["depth"] == 0]
    linear_checked = 0
    for r in ram:
        lo, hi = int(r["start"], 16), int(r["end"], 16) + 1
        for pa in (lo, (lo + hi) // 2 & ~0xFFF, hi - 4096):
            va = (pa + offset) & (2**64 - 1)
            check = k.check_virt_to_phys(va + 8)
            if check.walk_pa is None:
                # linear pages the kernel unmapped on purpose (KFENCE guards,
                # secretmem) or never mapped (arm64 NOMAP): the walk must say so
                assert check.verdict == "unmapped", check.explanation
                continue
            assert check.verdict == "ok", check.explanation
            assert check.walk_pa == pa + 8
            linear_checked += 1
    assert linear_checked >= len(ram)
    vm_checked = 0
    for area in truth["vmalloc_areas"]:
        if "vmalloc" not in area["flags"] or _image_vmalloc_area(area):
            continue
        va = int(area["start"], 16)
        check = k.check_virt_to_phys(va)
        if check.walk_pa is None:
            continue
        assert check.verdict == "mismatch", check.explanation
        assert check.region.kind in ("vmalloc", "module")
        assert check.walk_pa != check.linear_pa
        vm_checked += 1
    assert vm_checked > 0


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_ptov_finds_the_linear_alias_and_the_vmalloc_mapping(dump):
    k, prog, truth = _open(dump)
    offset = linear_offset(prog)
    for area in truth["vmalloc_areas"]:
        if "vmalloc" not in area["flags"] or _image_vmalloc_area(area):
            continue
        va = int(area["start"], 16)
        walk = k.translate(va)
        if walk.pa is None:
            continue
        maps = k.phys_to_virts(walk.pa)
        vas = {m.va for m in maps}
        assert va in vas
        linear = (walk.pa + offset) & (2**64 - 1)
        assert linear in vas or k.translate(linear).pa is None
        break
    else:
        pytest.skip("no mapped vmalloc area in this dump")


@pytest.mark.real
def test_layout_reports_the_unreachable_52bit_linear_range_on_a_48bit_cpu():
    dump = next(d for d in DUMPS if d.recipe == "arm64-6.12-48bit" and d.kind == "trimmed")
    k, _prog, _truth = _open(dump)
    assert k.info.number("VA_BITS") == 52 and k.info.number("TCR_EL1_T1SZ") == 16
    region = k.classify(0xFFF0000000001000).region
    assert region.kind == "non-canonical" and "48 bits" in region.note
    check = k.check_virt_to_phys(0xFFF0000000001000)
    assert check.verdict == "not-applicable"
