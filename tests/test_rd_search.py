"""``rd`` and ``search`` on the real dumps, each against an oracle that is not kmemdbg.

Oracles:

- drgn on the same file: ``prog.read`` (virtual, physical) for every value
  rd returns and every word search reports; ``prog.symbol`` for symbol
  annotations; ``slab_object_info`` where the recipe's debug vmlinux is
  there (drgn has no types without it);
- the guest's own reports in truth.json: the probe module's printout (its
  planted values and the words that hold them, its kmalloc'd objects and
  their sizes, the thread whose stack it planted in), its /proc/kallsyms
  (``probe_kallsyms``) and /proc/vmallocinfo (``vmalloc_areas``).

Addresses come from truth.json or drgn of the same dump: never hard-coded.
"""
from __future__ import annotations

import bisect
import io
import json
import os
import re
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

import pytest

from realdumps import all_dumps, debug_vmlinux

pytestmark = pytest.mark.real
DUMPS = all_dumps()
FULL = [d for d in DUMPS if d.kind == "full"]
_open: Dict[str, tuple] = {}


def opened(dump):
    """(kmemdbg Kernel, drgn Program with the dump's kallsyms) for ``dump``; skips when absent."""
    if dump.missing():
        pytest.skip(dump.missing())
    if dump.id not in _open:
        import drgn
        from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

        import kmemdbg

        k = kmemdbg.open(core=dump.path)
        prog = drgn.Program()
        prog.set_core_dump(dump.path)
        try:
            prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
        except Exception:  # noqa: BLE001 - a slice without kallsyms: symbol checks skip
            pass
        _open[dump.id] = (k, prog, dump.truth())
    return _open[dump.id]


def run(k, *argv) -> Tuple[int, str, str]:
    """One command line on kernel ``k`` through the table's shared run path."""
    from kmemdbg.commands.execute import execute
    from kmemdbg.commands.table import parse

    args, _ = parse("drgn", list(argv))
    out, err = io.StringIO(), io.StringIO()
    rc = execute(args, lambda: k, out, err)
    return rc, out.getvalue(), err.getvalue()


def items(text: str) -> List[dict]:
    """The JSON items of one command's output (an envelope's ``results`` or a bare array)."""
    obj = json.loads(text)
    return obj["results"] if isinstance(obj, dict) else obj


def probe(truth, name: str) -> List[dict]:
    return [p for p in truth.get("probe") or [] if p["name"] == name]


def plants(truth) -> List[dict]:
    return [p for p in (truth.get("plants") or {}).get("plants") or []]


def drgn_read(prog, address: int, size: int, physical: bool = False) -> Optional[bytes]:
    import drgn

    try:
        return prog.read(address, size, physical)
    except drgn.FaultError:
        return None


def vmalloc_area_of(truth, va: int) -> Optional[dict]:
    for a in truth.get("vmalloc_areas") or []:
        if int(a["start"], 16) <= va < int(a["end"], 16):
            return a
    return None


def module_symbol_of(truth, va: int) -> Optional[Tuple[str, int]]:
    """(name, address) of the probe module's highest /proc/kallsyms symbol at or below ``va``."""
    syms = sorted((int(s["address"], 16), name) for name, s in (truth.get("probe_kallsyms") or {}).items())
    i = bisect.bisect_right([a for a, _ in syms], va) - 1
    return (syms[i][1], syms[i][0]) if i >= 0 else None


def kmalloc_size(size: int) -> int:
    """The kmalloc cache size an allocation of ``size`` bytes comes from (kmalloc_index)."""
    if size <= 8:
        return 8
    if 64 < size <= 96:
        return 96
    if 128 < size <= 192:
        return 192
    return 1 << (size - 1).bit_length()


def kmalloc_cache_name(name: str, size: int) -> bool:
    """A kmalloc cache an allocation of ``size`` bytes can come from: its class, or a larger
    one up to 128 bytes (ARCH_KMALLOC_MINALIGN is 128 on arm64 before 6.5)."""
    m = re.fullmatch(r"kmalloc(?:-rnd-\d+|-cg|-rcl|-dma)?-(\d+)", name)
    if m is None:
        return False
    got = int(m.group(1))
    return kmalloc_size(size) <= got <= max(kmalloc_size(size), 128)


# -- rd -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_rd_words_are_the_bytes_drgn_reads(dump):
    k, prog, truth = opened(dump)
    targets = [int(p["word_va"], 16) - 0x40 for p in plants(truth)[:3]] + \
              [int(p["va"], 16) for p in probe(truth, "desc")]
    checked = 0
    for va in targets:
        expect = drgn_read(prog, va, 0x100)
        if expect is None:
            continue                    # not kept in a slice: nothing to compare
        for bits in (64, 32, 16, 8):
            rc, out, err = run(k, "--json", "rd", f"-{bits}", hex(va), str(0x100 * 8 // bits))
            assert rc == 0, err
            (item,) = items(out)
            width = bits // 8
            assert item["complete"] and item["width"] == width and item["space"] == "virtual"
            values = [int(w["value"], 16) for w in item["words"]]
            assert values == [int.from_bytes(expect[i:i + width], "little") for i in range(0, 0x100, width)]
            assert [int(w["address"], 16) for w in item["words"]] == list(range(va, va + 0x100, width))
        checked += 1
    if not checked:
        pytest.skip(f"{dump.id}: no probe word readable by drgn")


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_rd_physical_reads_what_drgn_reads_physically(dump):
    k, prog, truth = opened(dump)
    got = [p for p in probe(truth, "kmalloc4k") + probe(truth, "desc")]
    checked = 0
    for p in got:
        pa = int(p["virt_to_phys"], 16)      # the guest's own virt_to_phys of a kmalloc'd object
        expect = drgn_read(prog, pa, 0x80, physical=True)
        if expect is None:
            continue
        rc, out, err = run(k, "--json", "rd", "-p", hex(pa), "16")
        assert rc == 0, err
        (item,) = items(out)
        assert item["space"] == "physical"
        assert [int(w["value"], 16) for w in item["words"]] == \
            [int.from_bytes(expect[i:i + 8], "little") for i in range(0, 0x80, 8)]
        checked += 1
    if not checked:
        pytest.skip(f"{dump.id}: no probe object readable physically by drgn")


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_rd_symbol_annotations_are_drgns_symbols(dump):
    k, prog, truth = opened(dump)
    syms = truth.get("kallsyms") or {}
    text, end = syms.get("_text"), syms.get("_end")
    start = prog.symbol("init_task").address if text else None
    expect = drgn_read(prog, start, 0x400) if start is not None else None
    if expect is None:
        pytest.skip(f"{dump.id}: init_task not readable by drgn")
    lo, hi = int(text["address"], 16), int(end["address"], 16)
    rc, out, err = run(k, "--json", "rd", "init_task", str(0x400 // 8))
    assert rc == 0, err
    (item,) = items(out)
    annotated = 0
    for w in item["words"]:
        value = int(w["value"], 16)
        owner = w["owner"]
        if lo <= value < hi:
            try:
                sym = prog.symbol(value)
            except LookupError:
                continue
            assert owner is not None and owner["kind"] == "symbol", (hex(value), sym)
            assert prog.symbol(owner["symbol"]).address + owner["offset"] == value
            assert sym.address <= value < sym.address + max(sym.size, 1) or sym.size == 0
            annotated += 1
        elif owner is not None and owner["kind"] == "symbol":
            pytest.fail(f"0x{value:x} is outside the image but annotated {owner}")
    assert annotated, "init_task holds pointers into the image (its own list heads)"


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_rd_annotates_the_probes_pointers_with_their_owners(dump):
    """Slab: the probe's kmalloc'd desc and pinned buffers (pointed at by desc_ptr and
    pinned_ptr) start a kmalloc object of their size class; vmalloc: each plant's source
    pointer sits in the /proc/vmallocinfo area holding it; module: in the probe's kallsyms."""
    k, prog, truth = opened(dump)
    checked = 0
    for ptr_name, obj_name in (("desc_ptr", "desc"), ("pinned_ptr", "pinned")):
        for ptr, obj in zip(probe(truth, ptr_name), probe(truth, obj_name)):
            if drgn_read(prog, int(ptr["va"], 16), 8) is None:
                continue
            rc, out, err = run(k, "--json", "rd", ptr["va"])
            assert rc == 0, err
            (w,) = items(out)[0]["words"]
            assert int(w["value"], 16) == int(obj["va"], 16) == int(ptr["value"], 16)
            owner = w["owner"]
            if owner is None and dump.kind == "trimmed":
                continue                        # a slice keeps no struct pages: slabs unknown
            assert owner is not None and owner["kind"] == "slab-object", owner
            assert kmalloc_cache_name(owner["name"], int(obj["size"], 16)), owner
            assert owner["offset"] == 0
            checked += 1
    for p in plants(truth):
        if p["control"] or p["source_region"] not in ("vmalloc", "module"):
            continue
        src_word = int(p["src_word_va"], 16)
        if drgn_read(prog, src_word, 8) is None:
            continue
        rc, out, err = run(k, "--json", "rd", hex(src_word))
        assert rc == 0, err
        (w,) = items(out)[0]["words"]
        value = int(w["value"], 16)
        owner = w["owner"]
        page = value - value % k.tables.format.page_size
        assert value == int(p["source_va"], 16) or page == int(p["source_va"], 16) - \
            int(p["source_va"], 16) % k.tables.format.page_size
        if p["source_region"] == "vmalloc":
            area = vmalloc_area_of(truth, value)
            assert area is not None
            if owner is None:
                assert dump.kind == "trimmed", f"{p['id']}: 0x{value:x} in {area['line']!r} has no owner"
                continue
            assert owner["kind"] == "vmap-area" and owner["offset"] == value - int(area["start"], 16), \
                (owner, area["line"])
        else:
            name, address = module_symbol_of(truth, value)
            assert owner is not None and owner["kind"] == "module", owner
            assert owner["module"] == "kmemdbg_probe"
            if owner["symbol"] is not None:
                assert (owner["symbol"], owner["offset"]) == (name, value - address)
        checked += 1
    assert checked or dump.kind == "trimmed"


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.recipe.startswith("x86_64-6.1-")],
                         ids=lambda d: d.id)
def test_rd_slab_annotations_match_drgn_slab_object_info(dump):
    vmlinux = debug_vmlinux(dump.recipe)
    if vmlinux is None or dump.kind != "full":
        pytest.skip("drgn's slab_object_info needs the recipe's debug vmlinux")
    import drgn
    from drgn.helpers.linux.slab import slab_object_info

    k, _prog, truth = opened(dump)
    prog = drgn.Program()
    prog.set_core_dump(dump.path)
    prog.load_debug_info([vmlinux])
    seen = 0
    for p in plants(truth):
        if p["kind"] != "slab":
            continue
        va = int(p["word_va"], 16)
        rc, out, err = run(k, "--json", "search", p["value"], "--limit", "20")
        assert rc == 0, err
        for h in items(out)[0]["hits"]:
            info = slab_object_info(prog, int(h["va"], 16)) if h["va"] else None
            if info is None:
                assert h["owner"] is None or h["owner"]["kind"] != "slab-object"
                continue
            assert h["owner"]["kind"] == "slab-object"
            assert h["owner"]["name"] == info.slab_cache.name.string_().decode()
            assert h["owner"]["offset"] == int(h["va"], 16) - info.address
            seen += 1
        assert va in [int(h["va"], 16) for h in items(out)[0]["hits"] if h["va"]]
        if seen > 4:
            break
    assert seen


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_rd_stops_at_the_guard_page_and_names_it(dump):
    """A vmalloc area's guard page (vmallocinfo's size includes it) is unmapped: rd across
    its start prints the words before it and names it; drgn faults there too."""
    k, prog, truth = opened(dump)
    page = k.tables.format.page_size
    for a in truth.get("vmalloc_areas") or []:
        if a["flags"] != ["vmalloc"]:
            continue
        guard = int(a["end"], 16) - page
        if drgn_read(prog, guard - 16, 16) is None or drgn_read(prog, guard, 8) is not None:
            continue
        rc, out, err = run(k, "--json", "rd", hex(guard - 16), "4")
        assert rc == 1
        (item,) = items(out)
        assert not item["complete"] and len(item["words"]) == 2
        assert int(item["stop"]["address"], 16) == guard
        assert [int(w["value"], 16) for w in item["words"]] == \
            [int.from_bytes(drgn_read(prog, guard - 16, 16)[i:i + 8], "little") for i in (0, 8)]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kmemdbg: rd: 2 of 4") and f"0x{guard:x}" in lines[0]
        rc, out, err = run(k, "rd", hex(guard), "2")
        assert rc == 1 and out == "" and err.count("\n") == 1 and err.startswith("kmemdbg: ")
        return
    pytest.skip(f"{dump.id}: no vmalloc area whose last page drgn reads before an unmapped guard")


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_rd_user_memory_of_pid_1_is_what_drgns_walk_reads(dump):
    """drgn's C walker (follow_phys) on pid 1's pgd, then drgn's physical read, is the oracle.

    Without debug info drgn has no task_struct, so the pgd pointer is read through kmemdbg's
    task list; the walk and the bytes are drgn's.  The guest's init is a static busybox whose
    ELF header is mapped at 0x400000 on both architectures."""
    import drgn
    from drgn.helpers.linux.mm import _linux_helper_follow_phys

    k, prog, truth = opened(dump)
    from kmemdbg.errors import KmemdbgError

    try:
        task = next(t for t in k.tasks() if t.pid == 1)
    except KmemdbgError as err:       # arm64 6.1's kallsyms has no data symbols (no init_task)
        rc, out, err_text = run(k, "rd", "-u", "--pid", "1", "0x400000")
        assert rc == 1 and err_text.count("\n") == 1 and err_text.startswith("kmemdbg: ")
        pytest.skip(f"{dump.id}: no task list: {err}")
    pgd = int.from_bytes(k.read(task.mm_va + k.objects().btf.offset("mm_struct", "pgd"), 8), "little")
    va = 0x400000
    try:
        pa = _linux_helper_follow_phys(prog, drgn.Object(prog, prog.type("void *"), pgd), va)
    except drgn.FaultError:
        pytest.skip(f"{dump.id}: pid 1 maps nothing at 0x{va:x}")
    expect = prog.read(pa, 64, True)
    rc, out, err = run(k, "--json", "rd", "-u", "--pid", "1", hex(va), "8")
    assert rc == 0, err
    (item,) = items(out)
    assert item["space"] == "user" and item["pid"] == 1
    assert [int(w["value"], 16) for w in item["words"]] == \
        [int.from_bytes(expect[i:i + 8], "little") for i in range(0, 64, 8)]
    assert expect[:4] == b"\x7fELF"


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "trimmed"][:1], ids=lambda d: d.id)
def test_rd_text_fits_80_columns_and_bad_input_is_one_line(dump):
    k, prog, truth = opened(dump)
    va = plants(truth)[0]["word_va"] if plants(truth) else "init_task"
    for argv in (["rd", va, "32"], ["rd", "-a", va, "32"], ["rd", "-8", "-a", va, "64"],
                 ["rd", "-16", "-a", va, "64"], ["rd", "-32", va, "64"]):
        rc, out, err = run(k, *argv)
        assert rc == 0, err
        assert out.strip() and max(len(line) for line in out.splitlines()) <= 80, argv
    expect = drgn_read(prog, int(va, 16), 64) if va.startswith("0x") else None
    if expect is not None:             # the ASCII column shows the bytes drgn reads
        rc, out, err = run(k, "rd", "-8", "-a", va, "64")
        shown = "".join(line[-8:] for line in out.splitlines())      # 8 bytes a line with -a
        assert shown == "".join(chr(b) if 0x20 <= b < 0x7f else "." for b in expect)
    for argv, why in ((["rd", "no_such_symbol_x"], "unknown symbol"),
                      (["rd", "-u", "0x400000"], "--pid"),
                      (["rd", "init_task", "100000000"], "count"),
                      (["rd", "-p", "0xffffffffffff0000"], "nothing readable"),
                      (["rd", "0x10"], "nothing readable")):
        rc, out, err = run(k, *argv)
        assert rc == 1 and out == "", argv
        assert err.count("\n") == 1 and err.startswith("kmemdbg: ") and why in err, (argv, err)


# -- search ---------------------------------------------------------------------------------------
def _one_plant_per_kind(truth, readable) -> List[dict]:
    out, kinds = [], set()
    for p in plants(truth):
        if p["control"] or p["kind"] in kinds or not readable(int(p["word_va"], 16)):
            continue
        kinds.add(p["kind"])
        out.append(p)
    return out


#: Plant kinds a slice's kernel scope can see: the slice keeps no struct pages (slab, page
#: frames are told apart by them) and no per-cpu unit size.
SLICE_KINDS = ("module-data", "module-bss", "module-ro_after_init", "vmalloc")


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_search_finds_every_kind_of_planted_value_where_the_probe_stored_it(dump):
    k, prog, truth = opened(dump)
    todo = _one_plant_per_kind(truth, lambda va: drgn_read(prog, va, 8) is not None)
    if dump.kind == "trimmed":
        todo = [p for p in todo if p["kind"] in SLICE_KINDS]
    if not todo:
        pytest.skip(f"{dump.id}: no planted word readable")
    stack = (truth.get("plants") or {}).get("stack_thread") or {}
    for p in todo:
        rc, out, err = run(k, "--json", "search", p["value"], "--limit", "1000")
        assert rc in (0, 1), err
        (item,) = items(out)
        assert item["scope"] == "kernel" and not item["truncated"]
        word_va = int(p["word_va"], 16)
        hits = {int(h["va"], 16): h for h in item["hits"] if h["va"]}
        kind = "percpu" if p["kind"].startswith("percpu-") else p["kind"].split("-")[0]
        if word_va not in hits and any(m.startswith(f"{kind}: ") for m in item["missing"]):
            assert rc == 1               # said: this kind of memory could not be searched
            continue
        assert word_va in hits, f"{dump.id}: {p['id']} ({p['value']} at {p['word_va']}) not found"
        for h in item["hits"]:                    # every hit holds the value, as drgn reads it
            if h["va"]:
                assert drgn_read(prog, int(h["va"], 16), 8) == int(p["value"], 16).to_bytes(8, "little")
            assert drgn_read(prog, int(h["pa"], 16), 8, physical=True) == \
                int(p["value"], 16).to_bytes(8, "little")
        owner = hits[word_va]["owner"]
        assert owner is not None, p["id"]
        if p["kind"].startswith("module-"):
            name, address = module_symbol_of(truth, word_va)
            assert owner["kind"] == "module" and owner["module"] == "kmemdbg_probe", owner
            if owner["symbol"] is not None:
                assert (owner["symbol"], owner["offset"]) == (name, word_va - address)
        elif p["kind"] == "vmalloc":
            area = vmalloc_area_of(truth, word_va)
            assert owner["kind"] == "vmap-area" and owner["offset"] == word_va - int(area["start"], 16)
        elif p["kind"] == "stack" and stack:
            if hits[word_va]["memory"] == "vmalloc":   # no task list: said, scanned as vmalloc
                assert any(m.startswith("stack: ") for m in item["missing"])
                continue
            assert hits[word_va]["memory"] == "stack"
            assert f"pid {int(stack['pid'], 16)} " in owner["text"], owner
            assert owner["offset"] == word_va - int(stack["stack"], 16)
        elif p["kind"] == "slab":
            assert owner["kind"] == "slab-object" and hits[word_va]["memory"] == "slab"
        elif p["kind"] == "page":
            assert hits[word_va]["memory"] == "page"


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_search_of_a_virtual_range_finds_exactly_the_words_drgn_finds(dump):
    """Every aligned word of the range that drgn reads as the value (under the mask) is a hit."""
    k, prog, truth = opened(dump)
    page = k.tables.format.page_size
    p = next((p for p in plants(truth) if p["kind"] == "vmalloc" and not p["control"]
              and drgn_read(prog, int(p["word_va"], 16), 8) is not None), None)
    if p is None:
        pytest.skip(f"{dump.id}: no vmalloc plant readable")
    lo = int(p["word_va"], 16) - int(p["word_va"], 16) % page
    data = drgn_read(prog, lo, page)
    value = int(p["value"], 16)
    mask = ~0xfff & ((1 << 64) - 1)
    expect = {lo + i for i in range(0, page, 8)
              if int.from_bytes(data[i:i + 8], "little") & mask == value & mask}
    rc, out, err = run(k, "--json", "search", hex(value), "--mask", hex(mask), "--start", hex(lo),
                       "--end", hex(lo + page))
    assert rc == 0, err
    (item,) = items(out)
    assert item["scope"] == "virtual" and item["scanned_bytes"] == page
    assert {int(h["va"], 16) for h in item["hits"]} == expect
    assert int(p["word_va"], 16) in expect
    for h in item["hits"]:
        assert int(h["value"], 16) & mask == value & mask
        assert drgn_read(prog, int(h["va"], 16), 8) == int(h["value"], 16).to_bytes(8, "little")
    # 4-byte words: the low half of the planted value, at every 4-byte aligned place drgn finds it
    low = value & 0xffffffff
    expect4 = {lo + i for i in range(0, page, 4) if int.from_bytes(data[i:i + 4], "little") == low}
    rc, out, err = run(k, "--json", "search", hex(low), "--width", "4", "--start", hex(lo),
                       "--end", hex(lo + page))
    assert rc == 0, err
    assert {int(h["va"], 16) for h in items(out)[0]["hits"]} == expect4 and int(p["word_va"], 16) in expect4


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_search_of_physical_ram_finds_the_words_drgn_reads_physically(dump):
    k, prog, truth = opened(dump)
    obj = next((o for o in probe(truth, "kmalloc4k")), None)
    if obj is None:
        pytest.skip("no probe object")
    pa = int(obj["virt_to_phys"], 16)     # the guest's own virt_to_phys
    data = drgn_read(prog, pa, 0x1000, physical=True)
    if data is None:
        pytest.skip(f"{dump.id}: the probe's 4 KiB object is not in the dump")
    words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, 0x1000, 8)]
    value = max(set(words), key=words.count)       # the buffer's commonest word (0 or a fill)
    rc, out, err = run(k, "--json", "search", hex(value), "--physical", "--start", hex(pa),
                       "--end", hex(pa + 0x1000), "--limit", "512")
    assert rc == 0, err
    (item,) = items(out)
    assert item["scope"] == "physical"
    assert [int(h["pa"], 16) for h in item["hits"]] == [pa + 8 * i for i, w in enumerate(words) if w == value]


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_search_limit_bounds_the_hits_and_says_so(dump):
    k, prog, truth = opened(dump)
    rc, out, err = run(k, "--json", "search", "0", "--limit", "5")
    (item,) = items(out)
    assert item["truncated"] and len(item["hits"]) == 5 and item["limit"] == 5
    assert "more than 5 hits" in err and all(line.startswith("kmemdbg: ") for line in err.splitlines())
    for h in item["hits"]:
        assert drgn_read(prog, int(h["pa"], 16), 8, physical=True) == bytes(8)
    rc, out, err = run(k, "search", "0", "--limit", "3")
    lines = out.splitlines()
    assert "3+ hits" in lines[0] and len(lines) == 1 + 1 + 3 + 1
    assert max(len(line) for line in lines) <= 80


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "trimmed"][:2], ids=lambda d: d.id)
def test_search_on_a_slice_says_what_it_could_not_search(dump):
    k, prog, truth = opened(dump)
    rc, out, err = run(k, "search", "0x1234567890abcdef")
    assert rc == 1
    assert err.count("\n") == 2 or err.count("\n") == 1
    assert "not all of it was searched" in err and "slab" in err


def test_search_bad_input_is_one_line():
    dump = next(d for d in DUMPS if d.kind == "trimmed" and not d.missing())
    k, prog, truth = opened(dump)
    for argv, why in ((["search", "xyz"], "not a hexadecimal"),
                      (["search", "0x10000", "--width", "2"], "does not fit"),
                      (["search", "1", "--start", "init_task"], "both --start and --end"),
                      (["search", "1", "--start", "0x2000", "--end", "0x1000"], "not above")):
        rc, out, err = run(k, *argv)
        assert rc == 1 and out == "", argv
        assert err.count("\n") == 1 and err.startswith("kmemdbg: ") and why in err, (argv, err)
    from kmemdbg.commands.table import UsageError

    with pytest.raises(UsageError, match=r"^kmemdbg: usage: argument --limit"):
        run(k, "search", "1", "--limit", "0")


def test_rd_and_search_from_the_command_line():
    """The console script runs both (one process each; bounded by a timeout)."""
    dump = next(d for d in DUMPS if d.kind == "trimmed" and not d.missing())
    truth = dump.truth()
    p = next(p for p in plants(truth) if p["kind"] == "module-data")
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", dump.path, "--json", "rd", p["word_va"]],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert int(items(proc.stdout)[0]["words"][0]["value"], 16) == int(p["value"], 16)
    proc = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", dump.path, "rd", "0x10"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.recipe in ("x86_64-6.12-l4", "arm64-6.12-lpa2")],
                         ids=lambda d: d.id)
def test_rd_and_search_json_follow_their_schemas(dump):
    """The published schemas (kmemdbg/schemas/rd.json, search.json), closed (no undocumented
    key), through the independent jsonschema package."""
    pytest.importorskip("jsonschema")
    from kmemdbg import schema

    k, prog, truth = opened(dump)
    p = next((p for p in plants(truth) if drgn_read(prog, int(p["src_word_va"], 16), 16) is not None), None)
    if p is None:
        pytest.skip(f"{dump.id}: no planted word readable")
    guard = next((a for a in truth.get("vmalloc_areas") or [] if a["flags"] == ["vmalloc"]), None)
    runs = [("rd", ["rd", p["src_word_va"], "16"]), ("rd", ["rd", "-32", p["src_word_va"], "8"]),
            ("rd", ["rd", "-8", "-a", p["word_va"], "9"]), ("search", ["search", p["value"]]),
            ("search", ["search", "0", "--limit", "2"]),
            ("search", ["search", "0", "--mask", "0xff", "--width", "4", "--start", p["word_va"],
                        "--end", hex(int(p["word_va"], 16) + 0x100)])]
    end = int(guard["end"], 16) - k.tables.format.page_size if guard is not None else None
    if end is not None and drgn_read(prog, end - 8, 8) is not None:
        runs.append(("rd", ["rd", hex(end - 8), "2"]))      # stops at the guard page
    for command, argv in runs:
        rc, out, err = run(k, "--json", *argv)
        assert rc in (0, 1), err
        doc = json.loads(out)
        assert not schema.errors(command, doc, strict=True), (argv, schema.errors(command, doc, strict=True))
        assert doc["command"] == command and len(doc["results"]) == 1


@pytest.mark.parametrize("dump", [d for d in FULL if d.recipe in ("x86_64-6.12-l4", "arm64-6.12-lpa2")],
                         ids=lambda d: d.id)
def test_search_of_all_ram_names_the_module_mapping_of_a_module_word(dump):
    """A planted module word found in physical RAM is named by the module mapping of its
    frame (not the linear alias, which owns nothing): drgn reads the value at both the hit's
    pa (physically) and the probe's word (virtually)."""
    k, prog, truth = opened(dump)
    p = next((p for p in plants(truth) if p["kind"] == "module-data" and not p["control"]), None)
    if p is None:
        pytest.skip("no module plant")
    value = int(p["value"], 16)
    rc, out, err = run(k, "--json", "search", p["value"], "--physical", "--limit", "50")
    assert rc == 0, err
    (item,) = items(out)
    assert item["scope"] == "physical" and not item["truncated"]
    for h in item["hits"]:
        assert drgn_read(prog, int(h["pa"], 16), 8, physical=True) == value.to_bytes(8, "little")
    hit = next((h for h in item["hits"] if h["va"] == p["word_va"]), None)
    assert hit is not None, [h["va"] for h in item["hits"]]
    assert hit["owner"]["kind"] == "module" and hit["owner"]["module"] == "kmemdbg_probe"
    assert drgn_read(prog, int(p["word_va"], 16), 8) == value.to_bytes(8, "little")


@pytest.mark.parametrize("dump", [d for d in FULL if d.recipe.startswith("x86_64-")], ids=lambda d: d.id)
def test_search_of_espfix_reads_its_one_stack_page_once(dump):
    """ESPFIX maps each CPU's stack page thousands of times: a search of the whole region reads
    each frame once and says the rest are aliases; drgn reads every hit's value there."""
    k, prog, truth = opened(dump)
    region = next((r for r in k.layout.regions if r.kind == "espfix"), None)
    if region is None:
        pytest.skip(f"{dump.id}: no ESPFIX region")
    rc, out, err = run(k, "--json", "search", "0x1234567887654321", "--start", hex(region.start),
                       "--end", hex(region.end))
    assert rc == 0, err
    (item,) = items(out)
    assert item["scanned_bytes"] <= 64 * k.tables.format.page_size
    assert any("alias frames searched once" in n for n in item["notes"])
    rc, out, err = run(k, "--json", "search", "0", "--start", hex(region.start), "--end", hex(region.end),
                       "--limit", "600")
    (item,) = items(out)
    assert item["hits"]
    for h in item["hits"]:
        assert drgn_read(prog, int(h["va"], 16), 8) == bytes(8)
        assert drgn_read(prog, int(h["pa"], 16), 8, physical=True) == bytes(8)


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_rd_names_the_frame_of_a_struct_page_pointer(dump):
    """The probe's control virt_to_page() words hold the true struct page of a buffer: rd
    names it by the pfn the guest printed for it (source_pfn)."""
    k, prog, truth = opened(dump)
    controls = [p for p in plants(truth) if p["control"] and p["form"] == "virt_to_page"]
    checked = 0
    for p in controls[:6]:
        data = drgn_read(prog, int(p["word_va"], 16), 8)
        if data is None:
            continue
        rc, out, err = run(k, "--json", "rd", p["word_va"])
        assert rc == 0, err
        (w,) = items(out)[0]["words"]
        assert int(w["value"], 16) == int.from_bytes(data, "little") == int(p["value"], 16)
        if w["owner"] is None and dump.kind == "trimmed":
            continue                     # a slice keeps no struct page array
        assert w["owner"] == {"kind": "struct-page", "name": f"struct page of pfn {p['source_pfn']}",
                              "symbol": None, "offset": 0, "module": None, "text": w["owner"]["text"]}
        checked += 1
    assert checked or dump.kind == "trimmed"


def test_rd_and_search_as_drgns_own_commands():
    """In a drgn session (the plugin loaded through its entry point, as drgn does), rd and
    search return their typed results; the words are what drgn's own prog.read gives."""
    pytest.importorskip("drgn.commands")
    import textwrap

    # a full dump: through drgn's memory a slice's BTF note is not seen, so no module list
    dump = next((d for d in FULL if not d.missing()), None)
    if dump is None:
        pytest.skip("no full dump built")
    p = next(p for p in plants(dump.truth()) if p["kind"] == "module-data")
    code = textwrap.dedent(f"""
        import drgn
        from drgn.commands import run_command
        prog = drgn.program_from_core_dump({dump.path!r})
        r = run_command(prog, "kmemdbg rd {p['word_va']} 4")
        print("RD", type(r).__name__, [w.value for w in r.words] == [int.from_bytes(
            prog.read({p['word_va']} + 8 * i, 8), "little") for i in range(4)])
        r = run_command(prog, "kmemdbg --json search {p['value']} --limit 3")
        print("SEARCH", type(r).__name__, {int(p['word_va'], 16)} in [h.va for h in r.hits])
    """)
    env = {k: v for k, v in os.environ.items() if k != "DRGN_DISABLE_PLUGINS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr
    assert "RD MemDump True" in proc.stdout and "SEARCH SearchResult True" in proc.stdout, proc.stdout
