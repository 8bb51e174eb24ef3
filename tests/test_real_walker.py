"""The walker on real Debian kernels agrees with drgn's own C page-table walker.

Oracles: drgn's ``_linux_helper_follow_phys`` (independent C code) for every
address, the guest kernel's own reports for which addresses to test
(``/proc/vmallocinfo``, ``/proc/modules``, ``/proc/kallsyms``, ``/proc/iomem``
for linear-map samples), and drgn's virtual reads for content.
"""
from __future__ import annotations

import pytest

from kmemdbg.errors import PhysicalReadError
from kmemdbg.session import open_core

from realdumps import all_dumps, fixture_truth, open_dump

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")

DUMPS = all_dumps()


def linear_offset(prog):
    """``VA - PA`` of the linear map by the dump's own values, read through drgn."""
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    info = dict(line.split("=", 1) for line in
                prog["VMCOREINFO"].string_().decode().splitlines() if "=" in line)
    if "NUMBER(VA_BITS)" in info:  # arm64: (pa - PHYS_OFFSET) | PAGE_OFFSET
        page_offset = -(1 << int(info["NUMBER(VA_BITS)"])) & (2**64 - 1)
        return page_offset - int(info["NUMBER(PHYS_OFFSET)"], 16)
    if "kallsyms" not in prog.registered_symbol_finders():
        prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
    return prog.read_u64(prog.symbol("page_offset_base").address)


def addresses(truth, recipe, prog):
    """(kind, va, expected pa or None) samples named by the guest's own reports."""
    out = []
    for a in truth.get("vmalloc_areas", []):
        start, end = int(a["start"], 16), int(a["end"], 16)
        for va in range(start, end, 4096):
            out.append(("vmalloc", va + 0x123, None))
    for m in truth.get("modules", []):
        start = int(m["address"], 16)
        for off in range(0, m["size"], 4096):
            out.append(("module", start + off, None))
    for name, sym in truth.get("kallsyms", {}).items():
        if sym.get("module") is None:
            out.append(("image", int(sym["address"], 16), None))
    offset = None
    for s in fixture_truth(recipe).get("slice", {}).get("linear_samples", []):
        offset = linear_offset(prog) if offset is None else offset
        pa = int(s["pa"], 16) + 0x48
        out.append(("linear", (pa + offset) & (2**64 - 1), pa))
    return out


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_walker_agrees_with_drgn_c_walker(dump):
    session, prog = open_dump(dump, open_core)
    truth = dump.truth()
    pgd = drgn.Object(prog, "void *", session.tables.root_va)
    samples = addresses(truth, dump.recipe, prog)
    assert len(samples) > 100, "the guest reported too little to test"
    mapped = {"vmalloc": 0, "module": 0, "image": 0, "linear": 0}
    batch = session.translate_many([va for _, va, _ in samples])
    for (kind, va, expect), pa in zip(samples, batch.pas):
        try:
            want = _drgn._linux_helper_follow_phys(prog, pgd, va)
        except drgn.FaultError:
            want = None
        walk = session.translate(va)
        assert walk.pa == want, f"{kind} 0x{va:x}: kmemdbg {walk.pa} drgn {want} ({walk.fault})"
        assert pa == want
        if expect is not None:
            assert walk.pa == expect, f"linear 0x{va:x} should map pa 0x{expect:x} (from /proc/iomem)"
        if want is not None:
            mapped[kind] += 1
    info = session.info
    where = f"{session.tables.format.name}, VA_BITS={info.number('VA_BITS')}, " \
            f"TCR_EL1_T1SZ={info.number('TCR_EL1_T1SZ')}, PHYS_OFFSET={info.text('NUMBER(PHYS_OFFSET)')}"
    for kind in ("vmalloc", "module", "image"):
        assert mapped[kind] > 0, f"no mapped {kind} address in {where}"
    if fixture_truth(dump.recipe):
        assert mapped["linear"] > 0, f"no linear sample mapped in {where}"


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_reads_through_own_translation_match_drgn_virtual_reads(dump):
    session, prog = open_dump(dump, open_core)
    truth = dump.truth()
    if dump.kind == "trimmed":
        kept = [int(v, 16) for v in truth.get("slice", {}).get("kept_va", [])]
    else:
        kept = [int(a["start"], 16) for a in truth.get("vmalloc_areas", [])]
        kept += [int(m["address"], 16) for m in truth.get("modules", [])]
    checked = 0
    for va in kept:
        walk = session.translate(va)
        if walk.fault is not None:
            continue
        try:
            ours = session.read(va, 64)
        except PhysicalReadError:
            # device memory (an ioremap of MMIO) is not in any dump
            with pytest.raises(drgn.FaultError):
                prog.read(va, 64)
            continue
        assert ours == prog.read(va, 64), f"0x{va:x}"
        checked += 1
    if kept:
        assert checked >= len(kept) // 2
