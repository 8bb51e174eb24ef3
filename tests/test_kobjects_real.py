"""Vmap areas and modules read with no debug info, against the guest kernel's own reports.

Oracle: the guest kernel's /proc/vmallocinfo and /proc/modules, printed by
the guest just before the dump (truth.json ``vmalloc_areas`` and
``modules``).  kmemdbg reads the same objects from the dump through its own
page-table walker, with types from BTF and symbols from kallsyms.
"""
from __future__ import annotations

import types
from typing import Dict

import pytest

from kmemdbg.errors import KmemdbgError
from kmemdbg.kobjects import (BTF_NOTE, CorruptStructureError, KernelObjects, NoTypeInfoError,
                              load_btf, open_kernel_objects)
from kmemdbg.vmcoreinfo import VmcoreInfo
from realdumps import all_dumps

pytestmark = pytest.mark.real
DUMPS = all_dumps()
_open: Dict[str, KernelObjects] = {}


def kernel(dump) -> KernelObjects:
    if dump.missing():
        pytest.skip(dump.missing())
    if dump.id not in _open:
        k = open_kernel_objects(dump.path)
        if dump.kind == "trimmed" and k.session.memory.note(BTF_NOTE) is None:
            pytest.skip(f"fixture {dump.recipe} predates the KMEMDBG_BTF note: "
                        f"run python3 vmcores/fixtures/make.py {dump.recipe}")
        _open[dump.id] = k
    return _open[dump.id]


def expected_caller(area: dict) -> str:
    """vmallocinfo's %pS text: the truth parser keeps ``[module]`` apart, in ``other``."""
    mods = [w for w in area.get("other") or [] if w.startswith("[") and w.endswith("]")]
    return " ".join([area["caller"]] + mods) if area["caller"] else None


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_every_vmallocinfo_area_is_found_with_same_range_caller_and_flags(dump):
    k = kernel(dump)
    truth = dump.truth()["vmalloc_areas"]
    k.vmap_areas()
    lazy_missing = [u for u in k.unavailable if u.startswith("lazy")]
    checked = 0
    for t in truth:
        start, end = int(t["start"], 16), int(t["end"], 16)
        if t["flags"] == ["unpurged", "vm_area"] and lazy_missing:
            # the kernel keeps these on a list no symbol names here (no KALLSYMS_ALL)
            assert "purge_vmap_area_list" in lazy_missing[0]
            continue
        a = k.find_vmap_area(start)
        assert a is not None, f"{dump.id}: {t['line']!r} not found"
        assert (a.start, a.end, a.size) == (start, end, t["size"]), t["line"]
        assert list(a.flags) == t["flags"], t["line"]
        assert a.caller_name == expected_caller(t), t["line"]
        if t["pages"] is not None:
            assert a.nr_pages == int(t["pages"]), t["line"]
        if t["phys"] is not None:
            assert a.phys_addr == int(t["phys"], 16), t["line"]
        assert k.find_vmap_area(end - 1) == a
        checked += 1
    assert checked >= len(truth) - 1 - 20 and checked > 50


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_every_proc_modules_entry_has_same_name_base_and_size(dump):
    """/proc/modules prints the first text base and the sum of every memory range's size
    (``core_layout.size + init_layout.size`` before struct module_memory)."""
    k = kernel(dump)
    truth = dump.truth()["modules"]
    got = {m.name: m for m in k.modules()}
    assert sorted(got) == sorted(t["name"] for t in truth)
    for t in truth:
        m = got[t["name"]]
        assert (m.base, m.size) == (int(t["address"], 16), t["size"]), t
        assert m.state == t["state"].lower()
        assert k.find_module(m.base) == (m, "text")
        assert sum(s.size for s in m.sections) == m.size


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "full"], ids=lambda d: d.id)
def test_cyclic_area_list_is_a_one_line_error_not_a_hang(dump):
    k = kernel(dump)
    areas = [a for a in k.vmap_areas() if a.state == "busy"]
    list_off = k.btf.offset("vmap_area", "list")
    third = areas[3].vmap_area_va + list_off
    loop_to = areas[1].vmap_area_va + list_off
    read = k.session.read

    def corrupt(va: int, size: int) -> bytes:
        data = read(va, size)
        if va == third:  # the third node's next goes back to the first: a cycle
            return loop_to.to_bytes(8, "little") + data[8:]
        return data

    broken = KernelObjects(k.session, k.symbol, None, btf=k.btf, read=corrupt)
    with pytest.raises(CorruptStructureError) as err:
        broken.vmap_areas()
    assert "\n" not in str(err.value) and "0x" in str(err.value)


def test_no_type_information_names_what_is_missing():
    session = types.SimpleNamespace(memory=types.SimpleNamespace(note=lambda name: None),
                                    info=VmcoreInfo(), read=lambda va, n: b"")
    with pytest.raises(NoTypeInfoError, match="KMEMDBG_BTF note.*__start_BTF"):
        load_btf(session, lambda name: None)
    assert issubclass(NoTypeInfoError, KmemdbgError)
