"""``page`` and ``vmap`` on real kernels, each checked against an oracle that is not kmemdbg.

Oracles:

- the guest kernel's own reports (truth.json): the probe module's
  ``vmalloc_to_page()``/``virt_to_page()`` struct page pointers and frames of
  its planted values (``plants``), ``page_to_pfn()``/``vmalloc_to_pfn()`` of
  its buffers (``probe``), and ``/proc/vmallocinfo`` (``vmalloc_areas``);
- drgn on the same file: its own page-table walker (``follow_phys``) and
  its own reads of the struct page bytes at the offsets VMCOREINFO gives;
- where the kernel's debug vmlinux is in the cache (x86_64-6.1-l4, fetched
  by .ci/setup for crash), drgn's mm and slab helpers on DWARF types:
  ``pfn_to_page``, ``decode_page_flags``, ``PageSlab``, ``PageHead``,
  ``PageTail``, ``compound_order``, ``slab_object_info``, the zones' free
  lists and ``for_each_vmap_area``.

Every address comes from truth.json or drgn on the same dump (KASLR).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict

import pytest

from kmemdbg.errors import KmemdbgError
from kmemdbg.pageinfo import page_info, resolve_frame
from kmemdbg.vmapinfo import vmap_listing
from realdumps import ROOT, all_dumps, debug_vmlinux, kernel_of

pytestmark = pytest.mark.real
DUMPS = all_dumps()
FULL = [d for d in DUMPS if d.kind == "full"]
_progs: Dict[str, object] = {}
_kernel = kernel_of


def _drgn(dump):
    """drgn on the same file, sharing nothing with kmemdbg (no debug info)."""
    import drgn

    if dump.id not in _progs:
        prog = drgn.Program()
        prog.set_core_dump(dump.path)
        _progs[dump.id] = prog
    return _progs[dump.id]


def _hex(rec, key):
    value = rec.get(key)
    return int(value, 16) if value is not None else None


def _vmcoreinfo_int(truth, key):
    text = (truth.get("vmcoreinfo_raw") or "")
    for line in text.splitlines():
        k, _, v = line.partition("=")
        if k == key:
            return int(v, 0)
    return None


def _plants(dump):
    plants = (dump.truth().get("plants") or {}).get("plants") or []
    if not plants:
        pytest.skip(f"{dump.recipe}: no planted values in truth.json")
    return plants


# -- which frame an argument names -----------------------------------------------------------
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_struct_page_of_every_planted_frame_is_the_guests_vmalloc_to_page(dump):
    """The guest printed, for each planted value, the frame and its struct page pointer
    (vmalloc_to_page() / virt_to_page() of the real address)."""
    k = _kernel(dump)
    checked = set()
    for p in _plants(dump):
        pfn, page_va, source_va = _hex(p, "source_pfn"), _hex(p, "source_page"), _hex(p, "source_va")
        if pfn is None or page_va is None or pfn in checked:
            continue
        assert page_info(k, resolve_frame(k, "pfn", pfn), mappings=False, tables=False).page_va == page_va
        by_page = resolve_frame(k, "page", page_va)
        assert (by_page.pfn, by_page.given) == (pfn, "page")
        # a plain va inside vmemmap is read as a struct page pointer, and said so
        by_va = resolve_frame(k, "va", page_va)
        assert by_va.pfn == pfn and "vmemmap" in by_va.how, by_va
        # the va the value was made from: walked through the tables to the same frame
        assert resolve_frame(k, "va", source_va).pfn == pfn, p["id"]
        checked.add(pfn)
    assert len(checked) >= 3


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_a_virt_to_page_of_a_vmalloc_pointer_is_refused_as_no_struct_page(dump):
    """virt_to_page() of a vmalloc address (the guest's planted bug) gives a pointer to no
    real struct page: the guest says which value it was; kmemdbg must not decode it."""
    k = _kernel(dump)
    bogus = {_hex(p, "value") for p in _plants(dump)
             if p["form"] == "virt_to_page" and not p["control"] and p["source_region"] == "vmalloc"}
    assert bogus
    for value in bogus:
        with pytest.raises(KmemdbgError) as err:
            page_info(k, resolve_frame(k, "page", value), mappings=False)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_frame_of_every_probe_buffer_is_the_guests_page_to_pfn(dump):
    k = _kernel(dump)
    checked = 0
    for rec in dump.truth().get("probe") or []:
        va = _hex(rec, "va")
        pfn = _hex(rec, "page_to_pfn") if rec.get("page_to_pfn") else _hex(rec, "vmalloc_to_pfn")
        if va is None or pfn is None or rec["name"] == "ioremap":
            continue
        frame = resolve_frame(k, "va", va)
        assert frame.pfn == pfn, rec["line"]
        assert resolve_frame(k, "pa", frame.pa).pfn == pfn
        checked += 1
    assert checked >= 10


# -- who maps a frame ----------------------------------------------------------------------
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_a_vmalloc_frame_is_mapped_at_its_vmalloc_address_and_in_the_linear_map(dump):
    """The guest's vmalloc_to_pfn() names the frame; drgn's own walker checks every mapping."""
    import drgn
    from drgn.helpers.linux.mm import follow_phys  # noqa: F401 - the helper the C walker backs
    from _drgn import _linux_helper_follow_phys

    k = _kernel(dump)
    prog = _drgn(dump)
    page = k.tables.format.page_size
    rec = next((r for r in dump.truth().get("probe") or [] if r["name"] == "vmalloc"), None)
    if rec is None:
        pytest.skip("no vmalloc buffer in the probe printout")
    va, pfn = _hex(rec, "va"), _hex(rec, "vmalloc_to_pfn")
    info = page_info(k, resolve_frame(k, "pfn", pfn))
    vas = {m.va for m in info.mappings}
    assert va - va % page in vas
    assert any(m.region.kind == "linear" for m in info.mappings), info.mappings
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    for m in info.mappings:
        assert _linux_helper_follow_phys(prog, pgd, m.va) == pfn * page, hex(m.va)


# -- what the struct page says -------------------------------------------------------------
@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_struct_page_words_are_the_bytes_drgn_reads_and_kmalloc_buffers_are_slab(dump):
    k = _kernel(dump)
    prog = _drgn(dump)
    truth = dump.truth()
    ref_off = _vmcoreinfo_int(truth, "OFFSET(page._refcount)")
    flags_off = _vmcoreinfo_int(truth, "OFFSET(page.flags)")
    page = k.tables.format.page_size
    checked = 0
    for rec in truth.get("probe") or []:
        va, pfn = _hex(rec, "va"), _hex(rec, "page_to_pfn")
        if va is None or pfn is None:
            continue
        info = page_info(k, resolve_frame(k, "va", va), mappings=False)
        assert info.readable
        assert info.flags == int.from_bytes(prog.read(info.page_va + flags_off, 8), "little")
        assert info.refcount == int.from_bytes(prog.read(info.page_va + ref_off, 4), "little")
        size = _hex(rec, "size")
        if rec["name"].startswith("kmalloc") and size is not None and size <= 2 * page:
            # kmalloc() up to KMALLOC_MAX_CACHE_SIZE (two pages on SLUB) is a slab object
            assert "slab" in info.kinds and (info.slab_cache or "").startswith("kmalloc-"), rec["line"]
        elif rec["name"].startswith("kmalloc") and size is not None:
            assert "slab" not in info.kinds and "compound-head" in info.kinds, rec["line"]
            assert 1 << info.compound_order >= size // page, rec["line"]
        checked += 1
    assert checked >= 4


def _sample_pfns(k, count: int):
    """About ``count`` frames spread over the RAM ranges the dump's headers list (below the
    kernel's max_pfn), and every 1024th frame: free blocks of the highest orders start there."""
    page = k.tables.format.page_size
    top = k.page_evidence().ram_end.pa if k.page_evidence().ram_end is not None else 1 << 64
    ranges = [(s // page, min(e, top) // page) for s, e in k.ram() if min(e, top) > s]
    total = sum(e - s for s, e in ranges)
    step = max(1, total // count)
    spread = {pfn for s, e in ranges for pfn in range(s, e, step)}
    aligned = {pfn for s, e in ranges for pfn in range(-(-s // 1024) * 1024, e, 1024)}
    return sorted(spread | aligned)


def _has_type(word: int, value: int) -> bool:
    """The kernel's own test, written out: one type in the top byte (values with zero low 24
    bits), else PageType(): (word & (PAGE_TYPE_BASE | flag)) == PAGE_TYPE_BASE, flag = ~value."""
    value &= 0xFFFFFFFF
    if value & 0xFFFFFF == 0:
        return word >> 24 == value >> 24
    flag = ~value & 0xFFFFFFFF
    return word & (0xF0000000 | flag) == 0xF0000000


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_buddy_and_slab_types_of_sampled_frames_follow_vmcoreinfos_values(dump):
    """The type word read by drgn, tested against the NUMBER(PAGE_*_MAPCOUNT_VALUE) the
    guest exported; the buddy order is page->private as drgn reads it."""
    k = _kernel(dump)
    prog = _drgn(dump)
    truth = dump.truth()
    word_off = _vmcoreinfo_int(truth, "OFFSET(page._mapcount)")
    private_off = _vmcoreinfo_int(truth, "OFFSET(page.private)")
    buddy = _vmcoreinfo_int(truth, "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)")
    slab = _vmcoreinfo_int(truth, "NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)")
    seen = {"buddy": 0}
    for pfn in _sample_pfns(k, 400):
        info = page_info(k, resolve_frame(k, "pfn", pfn), mappings=False, tables=False)
        if not info.readable:
            continue
        word = int.from_bytes(prog.read(info.page_va + word_off, 4), "little")
        assert info.type_word == word
        assert (info.page_type == "buddy") == _has_type(word, buddy), hex(pfn)
        if slab is not None and _has_type(word, slab):
            assert info.page_type == "slab" and "slab" in info.kinds, hex(pfn)
        if info.page_type == "buddy":
            seen["buddy"] += 1
            assert info.buddy_order == int.from_bytes(prog.read(info.page_va + private_off, 8), "little")
    assert seen["buddy"] > 0, "no free page among the samples (the guest had free memory)"


def _dwarf_prog(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    vmlinux = debug_vmlinux(dump.recipe)
    if vmlinux is None:
        pytest.skip(f"no debug vmlinux for {dump.recipe} in the cache")
    import drgn

    key = dump.id + "+dwarf"
    if key not in _progs:
        prog = drgn.Program()
        prog.set_core_dump(dump.path)
        prog.load_debug_info([vmlinux])
        _progs[key] = prog
    return _progs[key]


DWARF = [d for d in FULL if d.recipe == "x86_64-6.1-l4"]


@pytest.mark.parametrize("dump", DWARF, ids=[d.id for d in DWARF])
def test_with_dwarf_flags_counts_compound_and_slab_agree_with_drgns_helpers(dump):
    from drgn.helpers.linux.mm import (PageHead, PageSlab, PageTail, compound_head, compound_order,
                                       decode_page_flags, pfn_to_page)
    from drgn.helpers.linux.slab import slab_object_info

    prog = _dwarf_prog(dump)
    k = _kernel(dump)
    pfns = _sample_pfns(k, 300)
    probe = [r for r in dump.truth().get("probe") or [] if r.get("page_to_pfn") and r.get("va")]
    pfns += [_hex(r, "page_to_pfn") for r in probe]
    kinds = set()
    for pfn in pfns:
        page = pfn_to_page(prog, pfn)
        info = page_info(k, resolve_frame(k, "pfn", pfn), mappings=False, tables=False)
        assert info.page_va == page.value_()
        if not info.readable:
            continue
        drgn_bits = {prog[n].value_() for n in decode_page_flags(page).split("|")
                     if n.startswith("PG_")}
        ours = {prog["PG_" + n].value_() for n in info.flag_names}
        assert ours == drgn_bits, hex(pfn)
        assert info.refcount == page._refcount.counter.value_()
        if info.mapcount is not None:
            assert info.mapcount == page._mapcount.counter.value_() + 1
        assert ("compound-head" in info.kinds) == bool(PageHead(page)), hex(pfn)
        assert ("compound-tail" in info.kinds) == bool(PageTail(page)), hex(pfn)
        if PageHead(page) or PageTail(page):
            head = compound_head(page)
            assert info.compound_head_va == head.value_()
            assert info.compound_order == compound_order(head).value_()
        if not PageTail(page):
            assert ("slab" in info.kinds) == bool(PageSlab(page)), hex(pfn)
        kinds.update(info.kinds)
    for r in probe:
        obj = slab_object_info(prog, _hex(r, "va"))
        info = page_info(k, resolve_frame(k, "va", _hex(r, "va")), mappings=False)
        assert info.slab_cache == (obj.slab_cache.name.string_().decode() if obj else None), r["line"]
    assert {"slab", "reserved"} <= kinds


@pytest.mark.parametrize("dump", DWARF, ids=[d.id for d in DWARF])
def test_with_dwarf_heads_of_the_zones_free_lists_are_buddy_pages_of_their_order(dump):
    from drgn.helpers.linux.list import list_for_each_entry
    from drgn.helpers.linux.mm import page_to_pfn

    prog = _dwarf_prog(dump)
    k = _kernel(dump)
    checked = 0
    for zone in prog["node_data"][0].node_zones:
        if not zone.present_pages.value_():     # an empty zone's lists were never initialised
            continue
        for order, area in enumerate(zone.free_area):
            for free_list in area.free_list:
                for i, page in enumerate(list_for_each_entry("struct page", free_list.address_of_(), "lru")):
                    if i == 2:
                        break
                    info = page_info(k, resolve_frame(k, "pfn", page_to_pfn(page).value_()), mappings=False)
                    assert info.page_type == "buddy" and "buddy" in info.kinds
                    assert info.buddy_order == order
                    checked += 1
    assert checked >= 5


# -- vmap -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_every_vmallocinfo_area_is_listed_with_its_range_pages_caller_flags_and_guard(dump):
    k = _kernel(dump)
    page = k.tables.format.page_size
    listing = vmap_listing(k)
    by_start = {}
    for e in listing.entries:
        by_start.setdefault(e.area.start, e)
    lazy_missing = any(u.startswith("lazy") for u in listing.unavailable)
    checked = guarded = 0
    for t in dump.truth()["vmalloc_areas"]:
        start, end = int(t["start"], 16), int(t["end"], 16)
        if t["flags"] == ["unpurged", "vm_area"] and lazy_missing:
            continue
        e = by_start.get(start)
        assert e is not None, t["line"]
        a = e.area
        assert (a.end, a.size, list(a.flags)) == (end, t["size"], t["flags"]), t["line"]
        if t["pages"] is not None:
            assert a.nr_pages == int(t["pages"])
            if "vmalloc" in t["flags"] and t["size"] == (int(t["pages"]) + 1) * page:
                # vmallocinfo's size is the pages plus one guard page
                assert e.guard == (end - page, end) and e.guard_mapped is False, t["line"]
                guarded += 1
        assert vmap_listing(k, end - 1).entries[0].area.start == start
        checked += 1
    assert checked > 50 and guarded > 5


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_guard_pages_fault_in_drgns_own_walker(dump):
    import drgn
    from _drgn import _linux_helper_follow_phys

    k = _kernel(dump)
    prog = _drgn(dump)
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    checked = 0
    for e in vmap_listing(k).entries:
        if e.guard is None or e.area.state != "busy":
            continue
        try:
            pa = _linux_helper_follow_phys(prog, pgd, e.guard[0])
        except drgn.FaultError:
            pa = None
        assert e.guard_mapped == (pa is not None), hex(e.guard[0])
        checked += 1
    assert checked > 10


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_vmap_of_an_address_names_its_offset_and_its_guard_page(dump):
    k = _kernel(dump)
    rec = next((r for r in dump.truth().get("probe") or [] if r["name"] == "vmalloc"), None)
    if rec is None:
        pytest.skip("no vmalloc buffer in the probe printout")
    va, size = _hex(rec, "va"), _hex(rec, "size")
    area = next(t for t in dump.truth()["vmalloc_areas"] if int(t["start"], 16) <= va < int(t["end"], 16))
    got = vmap_listing(k, va + 0x10)
    assert got.entries[0].area.start == int(area["start"], 16) and not got.in_guard
    page = k.tables.format.page_size
    last = int(area["end"], 16) - 1
    guard = vmap_listing(k, last)
    assert guard.in_guard == (int(area["size"]) == size + page)
    linear = next(_hex(r, "va") for r in dump.truth()["probe"] if r["name"] == "kmalloc64")
    with pytest.raises(KmemdbgError, match="in no vmap area"):
        vmap_listing(k, linear)


# -- the command line ------------------------------------------------------------------------
def _run(*argv, timeout=240):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "kmemdbg", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


CLI_DUMPS = [d for d in DUMPS if d.recipe in ("x86_64-6.12-l4", "arm64-6.12-lpa2")]


@pytest.mark.parametrize("dump", CLI_DUMPS, ids=[d.id for d in CLI_DUMPS])
def test_page_and_vmap_commands_say_what_was_given_and_follow_their_schemas(dump):
    from kmemdbg import schema

    if dump.missing():
        pytest.skip(dump.missing())
    p = next(p for p in _plants(dump) if p["source_region"] == "vmalloc")
    pfn, page_va = _hex(p, "source_pfn"), _hex(p, "source_page")
    r = _run("--core", dump.path, "page", "--pfn", f"{pfn:x}")
    assert r.returncode == 0, r.stderr
    assert f"pfn 0x{pfn:x}" in r.stdout and "given: pfn" in r.stdout
    assert f"0x{page_va:016x}" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    r = _run("--core", dump.path, "--json", "page", f"{page_va:x}", p["source_va"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    schema.validate("page", doc, strict=True)
    first, second = doc["results"]
    assert first["given"]["kind"] == "va" and "vmemmap" in first["given"]["how"] and first["pfn"] == pfn
    assert second["given"]["kind"] == "va" and second["pfn"] == pfn
    assert p["source_va"] in {m["va"] for m in second["mappings"]} or any(
        int(m["va"], 16) == _hex(p, "source_va") & ~0xfff for m in second["mappings"])
    r = _run("--core", dump.path, "--json", "vmap")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    schema.validate("vmap", doc, strict=True)
    starts = {i["start"] for i in doc["results"]}
    assert {t["start"] for t in dump.truth()["vmalloc_areas"] if t["flags"] != ["unpurged", "vm_area"]} <= starts
    r = _run("--core", dump.path, "vmap", p["source_va"])
    assert r.returncode == 0 and "bytes into the vmap area" in r.stdout, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


@pytest.mark.parametrize("argv, message", [
    (("page", "--page", "{page_plus_one}"), "bytes into the struct page"),
    (("page", "0"), "not mapped"),
    (("page", "--pfn", "fffffffffff"), "beyond the end of RAM"),
    (("page", "--pa", "xyz"), "not a hexadecimal address"),
    (("page", "--pfn", "1", "--pa", "2"), "not allowed with"),
    (("vmap", "0"), "in no vmap area"),
])
def test_bad_page_and_vmap_arguments_give_one_line_naming_the_cause(argv, message):
    dump = next(d for d in DUMPS if d.recipe == "x86_64-6.12-l4" and d.kind == "trimmed")
    p = next(p for p in _plants(dump) if p.get("source_page"))
    argv = tuple(a.format(page_plus_one=f"{_hex(p, 'source_page') + 1:x}") for a in argv)
    r = _run("--core", dump.path, *argv)
    assert r.returncode in (1, 2) and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kmemdbg: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def _in_session(kernel, *argv):
    """(status, stdout, stderr) of one command line on ``kernel`` (the drgn front end's parser)."""
    import io

    from kmemdbg.commands.execute import execute
    from kmemdbg.commands.table import parse

    args, _ = parse("drgn", list(argv))
    out, err = io.StringIO(), io.StringIO()
    status = execute(args, lambda: kernel, out, err)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_vtop_shows_the_struct_page_of_the_frame_as_the_guest_names_it(dump):
    k = _kernel(dump)
    p = next(p for p in _plants(dump) if p["source_region"] == "vmalloc" and p.get("source_page"))
    status, out, err = _in_session(k, "vtop", p["source_va"])
    assert status == 0, err
    line = next(line for line in out.splitlines() if line.startswith("  PAGE: "))
    assert f"struct page 0x{_hex(p, 'source_page'):016x}  pfn 0x{_hex(p, 'source_pfn'):x}" in line
    status, out, err = _in_session(k, "--json", "vtop", p["source_va"], "0x1000")
    first, second = json.loads(out)["results"]
    assert first["page"]["pfn"] == _hex(p, "source_pfn") and first["page"]["page"] == p["source_page"]
    assert "mappings" not in first["page"]
    assert second.get("page") is None          # not mapped: no frame


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "trimmed"], ids=lambda d: d.id)
def test_a_bad_page_argument_stands_in_its_place_and_the_others_are_answered(dump):
    from kmemdbg import schema

    k = _kernel(dump)
    p = next(p for p in _plants(dump) if p.get("source_page"))
    status, out, err = _in_session(k, "--json", "page", "--pfn", p["source_pfn"], "fffffffffff", p["source_pfn"])
    doc = json.loads(out)
    schema.validate("page", doc, strict=True)
    first, bad, third = doc["results"]
    assert first["pfn"] == third["pfn"] == _hex(p, "source_pfn")
    # beyond max_pfn, or (where max_pfn is not in the dump) outside the vmemmap region
    assert bad["argument"] == "fffffffffff" and status == 1
    assert "beyond the end of RAM" in bad["error"] or "outside the struct page array" in bad["error"]
    assert err.splitlines() == [bad["error"]]


# -- flag and type names ---------------------------------------------------------------------
def _pg_numbers(truth):
    out = {}
    for line in (truth.get("vmcoreinfo_raw") or "").splitlines():
        key, _, value = line.partition("=")
        if key.startswith("NUMBER(PG_") and key.endswith(")"):
            name = key[len("NUMBER(PG_"):-1]
            v = int(value, 0)
            out[name[:-5] if name.endswith("_mask") else name] = v.bit_length() - 1 if name.endswith("_mask") else v
    return out


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "trimmed"], ids=lambda d: d.id)
def test_without_btf_flag_names_are_the_pg_numbers_the_guest_exported(dump):
    from kmemdbg.linux.page import page_flag_names, page_type_names
    from kmemdbg.vmcoreinfo import VmcoreInfo

    if dump.missing():
        pytest.skip(dump.missing())
    truth = dump.truth()
    info = VmcoreInfo.parse(truth["vmcoreinfo_raw"])
    names = page_flag_names(info)
    want = _pg_numbers(truth)
    assert {n: names.bit(n) for n in want} == want
    assert "VMCOREINFO" in names.source and "only the flags it exports" in names.source
    types = page_type_names(info)
    buddy = _vmcoreinfo_int(truth, "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)")
    assert types.value("buddy") == buddy & 0xFFFFFFFF and types.type_of(buddy & 0xFFFFFFFF) == "buddy"
    # neither source: said so, nothing decoded
    bare = page_flag_names(VmcoreInfo.parse("OSRELEASE=x\nPAGESIZE=4096\n"))
    assert bare.bits == () and bare.decode(0xFFFF) == () and "neither" in bare.source


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_btf_flag_names_agree_with_every_pg_number_in_vmcoreinfo(dump):
    """Two of the kernel's own sources: BTF enum pageflags and VMCOREINFO NUMBER(PG_*)."""
    from kmemdbg.linux.page import page_flag_names

    k = _kernel(dump)
    names = page_flag_names(k.info, k.objects().btf)
    assert names.source == "the kernel's BTF enum pageflags" and names.nr_flags
    enum = k.objects().btf.find("pageflags", ("enum",)).enumerators
    for name, bit in _pg_numbers(dump.truth()).items():
        assert enum["PG_" + name] == bit
        assert names.decode(1 << bit), name          # every exported flag decodes to a name
