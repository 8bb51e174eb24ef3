"""The probe module's own printout on real kernels: translations and __pa().

Oracle: the guest kernel itself, through the probe module loaded before the
dump (vmcores/probe): ``slow_virt_to_phys()`` and ``vmalloc_to_pfn()`` for
the true frames, and ``virt_to_phys()`` for the kernel's own __pa()
arithmetic, including the planted bug (virt_to_phys of a vmalloc pointer).
"""
from __future__ import annotations

import pytest

import kmemdbg

from realdumps import all_dumps

DUMPS = all_dumps()


def _probe(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    truth = dump.truth()
    records = truth.get("probe") or []
    if not records:
        pytest.skip(f"{dump.recipe}: no probe printout in truth.json (rebuild with vmcores/build.py)")
    return kmemdbg.open(core=dump.path), records


def _int(rec, key):
    return int(rec[key], 16) if rec.get(key) is not None else None


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_every_probe_buffer_page_maps_where_the_kernel_says(dump):
    k, records = _probe(dump)
    page = k.tables.format.page_size
    checked = 0
    for rec in records:
        va = _int(rec, "va")
        if va is None or rec["name"] in ("begin", "end"):
            continue
        if rec.get("slow_virt_to_phys"):
            want = _int(rec, "slow_virt_to_phys")
        elif rec.get("vmalloc_to_pfn"):
            want = _int(rec, "vmalloc_to_pfn") * page + va % page
        elif rec.get("virt_to_phys") and rec.get("virt_addr_valid") == "0x1":
            want = _int(rec, "virt_to_phys")
        else:
            continue
        pages = _int(rec, "pages") or 1 if rec["name"].endswith(".run") else 1
        for i in range(pages):
            got = k.translate(va + i * page).pa
            assert got == want + i * page, f"{rec['line']}: page {i}: kmemdbg {got and hex(got)}"
        checked += 1
    assert checked >= 10


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_pa_arithmetic_matches_the_kernels_own_virt_to_phys(dump):
    k, records = _probe(dump)
    n = 0
    for rec in records:
        if rec.get("virt_to_phys") and rec.get("va") and rec["name"] not in ("desc_fields",):
            check = k.check_virt_to_phys(_int(rec, "va"))
            assert check.linear_pa == _int(rec, "virt_to_phys"), rec["line"]
            assert check.verdict == "ok", check.explanation
            n += 1
    assert n >= 4


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_planted_virt_to_phys_of_vmalloc_is_explained_as_a_mismatch(dump):
    k, records = _probe(dump)
    bogus = next(r for r in records if r["name"] == "bogus_global")
    source_va, value = _int(bogus, "source_va"), _int(bogus, "value")
    page = k.tables.format.page_size
    check = k.check_virt_to_phys(source_va, claimed_pa=value)
    assert check.verdict == "mismatch"
    # kmemdbg's __pa() arithmetic is exactly the value the kernel's virt_to_phys() produced
    assert check.linear_pa == value
    # and the true frame is the kernel's own vmalloc_to_pfn()
    assert check.walk_pa // page == _int(bogus, "source_pfn")
    assert check.region.kind == "vmalloc"
    assert "virt_to_phys() used on a non-linear address" in check.explanation
    # the descriptor's valid physical address next to it checks out
    fields = next(r for r in records if r["name"] == "desc_fields")
    good = kmemdbg.open(core=dump.path).check_virt_to_phys(_int(fields, "good_va"),
                                                           claimed_pa=_int(fields, "good_pa"))
    assert good.verdict == "ok", good.explanation


@pytest.mark.real
@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "full"],
                         ids=[d.id for d in DUMPS if d.kind == "full"])
def test_kmalloc_buffers_classify_as_slab_objects_of_a_kmalloc_cache(dump):
    """Oracle: the probe's kmalloc() returned these addresses, so each is an
    object start, in a kmalloc cache at least as large as the request."""
    k, records = _probe(dump)
    n = 0
    for rec in records:
        if rec["name"].startswith("kmalloc") and rec.get("size") and int(rec["size"], 16) <= 8192:
            va, size = _int(rec, "va"), _int(rec, "size")
            alloc = k.classify(va).allocation
            assert alloc is not None and alloc.kind == "slab-object", rec["line"]
            assert alloc.start == va, (rec["line"], hex(alloc.start))
            assert alloc.name.startswith("kmalloc") and alloc.end - alloc.start >= size, alloc
            n += 1
    assert n >= 3
