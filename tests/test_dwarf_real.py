"""kmemdbg with DWARF (--vmlinux) gives the same answers as without, on a real kernel.

Opt-in: needs the recipe kernel's debug vmlinux (about 1 GB per kernel; see
tests/realdumps.py ``debug_vmlinux`` for how to fetch it); skipped otherwise.
Oracles: drgn's own DWARF-based helpers on the same dump (``follow_phys``
from ``init_mm``, ``identify_address``, symbol values), and the probe's
printout.
"""
from __future__ import annotations

import pytest

import kmemdbg

from realdumps import all_dumps, debug_vmlinux

drgn = pytest.importorskip("drgn")

FULL = [d for d in all_dumps() if d.kind == "full"]


@pytest.mark.real
@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_with_and_without_debug_info_agree(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    vmlinux = debug_vmlinux(dump.recipe)
    if vmlinux is None:
        pytest.skip(f"no debug vmlinux for {dump.recipe} (see tests/realdumps.py debug_vmlinux)")
    from drgn.helpers.common.memory import identify_address
    from drgn.helpers.linux.mm import follow_phys

    plain = kmemdbg.open(core=dump.path)
    dwarf = kmemdbg.open(core=dump.path, vmlinux=vmlinux)
    assert dwarf.symbols.source.startswith("DWARF"), dwarf.notes
    prog = dwarf.prog
    # layout values read through symbols agree with drgn's typed reads
    assert dwarf.layout.value("page_offset_base") == prog["page_offset_base"].value_()
    assert not dwarf.layout.disagreements
    init_mm = prog["init_mm"].address_of_()
    probe = dump.truth().get("probe") or []
    vas = [int(p["va"], 16) for p in probe if p.get("va")]
    vas += [int(a["start"], 16) for a in dump.truth()["vmalloc_areas"]][:50]
    assert len(vas) > 20
    for va in vas:
        try:
            want = follow_phys(init_mm, va).value_()
        except drgn.FaultError:
            want = None
        assert dwarf.translate(va).pa == plain.translate(va).pa == want, hex(va)
        a, b = plain.classify(va), dwarf.classify(va)
        assert a.region.kind == b.region.kind, hex(va)
        c1, c2 = plain.check_virt_to_phys(va), dwarf.check_virt_to_phys(va)
        assert (c1.verdict, c1.linear_pa, c1.walk_pa) == (c2.verdict, c2.linear_pa, c2.walk_pa), hex(va)
        ident = identify_address(prog, va) or ""
        if b.allocation is not None and b.allocation.kind == "slab-object" and ident.startswith("slab object"):
            assert b.allocation.name in ident, (ident, b.allocation)
