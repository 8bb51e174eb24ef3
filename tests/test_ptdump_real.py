"""ptdump on the real Debian kernels.

Why not the kernel's own ptdump: the Debian kernels are built without
CONFIG_PTDUMP_DEBUGFS, and a probe module cannot call the kernel's walker
instead, because ``ptdump_walk_pgd()`` is not exported to modules (nor are
the arch ``note_page`` helpers).  So the oracles are:

- drgn's C page-table walker (``follow_phys``, independent code) at the first,
  middle and last byte of every JSON range, which checks both the ranges and
  the ``pa + (va - start)`` promise of the JSON form;
- the guest kernel's own reports in the same boot (truth.json ``probe``):
  ``lookup_address()``'s level for every probe buffer (x86: 1 = 4K, 2 = 2M)
  against the range's page size, the frames of every vmalloc/vmap run, and the
  pgprot the probe asked for its vmap'd page against the range's flags;
- /proc/vmallocinfo for the owner names of vmalloc ranges.

Attributes beyond those are checked against the model's ground truth in
tests/test_ptdump_model.py.
"""
from __future__ import annotations

import pytest

from kmemdbg import render
from kmemdbg.ptdump import ptdump
from realdumps import all_dumps, open_dump

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")
pytestmark = pytest.mark.real
DUMPS = all_dumps()


def _open(dump):
    return open_dump(dump)


def _drgn_pa(prog, pgd, va):
    try:
        return _drgn._linux_helper_follow_phys(prog, pgd, va)
    except drgn.FaultError:
        return None


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_json_ranges_agree_with_drgn_at_start_middle_and_end(dump):
    k, prog = _open(dump)
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    ranges = ptdump(k, split_pa=True)
    assert len(ranges) > 50
    prev_end = 0
    for r in ranges:
        # region and owner boundaries (per-cpu areas, _edata) may cut a leaf anywhere
        assert r.start >= prev_end and r.end > r.start
        prev_end = r.end
        obj = render.ptrange_json(r)
        pa0 = int(obj["pa"], 16)
        for va in (r.start, r.start + (r.size // 2 // r.page_size) * r.page_size + 8, r.end - 1):
            off = va - r.start
            want = pa0 + (off % r.pa_period if obj["pa_rule"] == "repeat" else off)
            assert _drgn_pa(prog, pgd, va) == want, f"{obj}: 0x{va:x}"
    # every byte between two ranges is unmapped for drgn too (sampled at each gap's start)
    for a, b in zip(ranges, ranges[1:]):
        if a.end < b.start and k.tables.format.in_range(a.end):
            assert _drgn_pa(prog, pgd, a.end) is None, f"gap at 0x{a.end:x}"


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_ptdump_agrees_with_the_probes_own_reports(dump):
    k, _ = _open(dump)
    probe = dump.truth().get("probe") or []
    if not probe:
        pytest.skip(f"{dump.id}: truth.json has no probe report yet")
    ranges = ptdump(k, split_pa=True)
    starts = [r.start for r in ranges]
    import bisect

    def at(va):
        i = bisect.bisect_right(starts, va) - 1
        assert i >= 0 and ranges[i].start <= va < ranges[i].end, f"0x{va:x} not in any range"
        return ranges[i]

    page = k.tables.format.page_size
    checked = 0
    for p in probe:
        if "va" not in p:
            continue
        va = int(p["va"], 16)
        r = at(va)
        if "level" in p and int(p["level"], 16):
            # x86 lookup_address(): 1 = 4K, 2 = 2M, 3 = 1G
            assert r.page_size == {1: 4096, 2: 2 << 20, 3: 1 << 30}[int(p["level"], 16)], p["line"]
        if p["name"].endswith(".run"):
            pfn, pages = int(p["vmalloc_to_pfn"], 16), int(p["pages"], 16)
            for i in range(pages):
                ri = at(va + i * page)
                assert ri.pa + (va + i * page - ri.start) == (pfn + i) * page, p["line"]
            checked += 1
        if p["name"] == "wx_page":
            # the probe cleared NX (x86) / PXN (arm64) in this PTE itself and
            # printed the entry it left: ptdump must show that very entry, W+X
            pte = int(p["pte"], 16)
            r_walk = k.translate(va)
            assert r_walk.steps[-1].raw == pte, p["line"]
            if k.arch == "x86_64":
                assert {"P", "RW", "G"} <= set(r.flags) and "NX" not in r.flags, r.flags
            else:
                assert "PXN" not in r.flags and "RDONLY" not in r.flags, r.flags
            assert r.permissions.short().startswith("RWX")
            assert r.owner is not None and r.owner.startswith("vmap ")
    assert checked >= 3


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_text_view_merges_and_marks_regions(dump):
    k, _ = _open(dump)
    text = render.ptdump_text(ptdump(k))
    markers = [l for l in text if l.startswith("---[ ")]
    kinds = {m.split()[1].rstrip(":") for m in markers}
    assert {"linear", "vmalloc", "kernel-image"} <= kinds, markers
    # the ESPFIX area (x86) prints at most 16 ranges then a count, as the kernel's ptdump does
    espfix = [r for r in ptdump(k, 0xFFFFFF0000000000, 0xFFFFFF8000000000, owners=False)]
    if k.arch == "x86_64":
        assert all(r.region.kind == "espfix" for r in espfix)
    if len(espfix) > 16:
        assert any(l.startswith("... ") and "skipped" in l for l in text)
    areas = {a["caller"] for a in dump.truth()["vmalloc_areas"] if a.get("caller")}
    owned = [l for l in text if "  vmap " in l]
    assert owned and sum(any(c.split("+")[0] in l for c in areas) for l in owned) >= len(owned) // 2
