"""drgn's own C walker against the guest kernel's own reports.

Oracle: the guest kernel's /proc/vmallocinfo, /proc/modules, /proc/iomem and
/proc/kallsyms (truth.json), versus drgn 0.3.0 reading the QEMU ELF dump of
the same guest with no debug info. No kmemdbg code runs here: the drgn side
is tests/real/drgn_oracle.py in a child process with drgn plugins disabled.
"""

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Tuple

import pytest

from vmcores import build

pytestmark = pytest.mark.real

RECIPES = list(build.load_recipes()["recipes"])
ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drgn_oracle.py")
_cache = {}  # type: Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]]


def _load(recipe: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(truth.json, drgn oracle result) for a built recipe, or skip."""
    if recipe in _cache:
        return _cache[recipe]
    d = build.built(recipe)
    if d is None:
        pytest.skip("recipe %s is not built (or is stale): run `python3 vmcores/build.py %s`" % (recipe, recipe))
    with open(os.path.join(d, "truth.json")) as f:
        truth = json.load(f)
    env = dict(os.environ, DRGN_DISABLE_PLUGINS="*")
    proc = subprocess.run([sys.executable, ORACLE, d], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, timeout=600)
    assert proc.returncode == 0, "drgn oracle failed on %s: %s" % (recipe, proc.stderr.decode()[-2000:])
    _cache[recipe] = (truth, json.loads(proc.stdout))
    return _cache[recipe]


def _ram(truth: Dict[str, Any]) -> List[Tuple[int, int]]:
    return [(int(r["start"], 16), int(r["end"], 16)) for r in truth["iomem"]
            if r["name"] == "System RAM"]


def _in_ram(pa: str, ram: List[Tuple[int, int]]) -> bool:
    p = int(pa, 16)
    return any(lo <= p <= hi for lo, hi in ram)


@pytest.mark.parametrize("recipe", RECIPES)
def test_drgn_opens_elf_dump_as_linux_kernel(recipe: str) -> None:
    _truth, oracle = _load(recipe)
    assert "IS_LINUX_KERNEL" in oracle["flags"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_vmcoreinfo_kallsyms_agree_with_guest_proc_kallsyms(recipe: str) -> None:
    truth, oracle = _load(recipe)
    assert oracle["kallsyms_error"] is None
    wrong = {name: (info["address"], oracle["kallsyms"].get(name))
             for name, info in truth["kallsyms"].items()
             if info["module"] is None and oracle["kallsyms"].get(name) != info["address"]}
    assert not wrong, "guest /proc/kallsyms vs drgn kallsyms: %s" % wrong


def _page_ok(p: Dict[str, Any], ram: List[Tuple[int, int]]) -> bool:
    return (p["pa"] is not None and p["read_ok"] and bool(p["phys_read_equal"])
            and _in_ram(p["pa"], ram))


@pytest.mark.parametrize("recipe", RECIPES)
def test_vmalloc_areas_translate_to_ram_and_read(recipe: str) -> None:
    """Every area the guest reports as vmalloc'd (first and last page) walks
    to a System RAM frame, reads virtually, and reads the same 8 bytes
    physically at the frame drgn's walker found."""
    truth, oracle = _load(recipe)
    ram = _ram(truth)
    checked, bad = 0, []
    for area in oracle["vmalloc_areas"]:
        if "vmalloc" not in area["flags"] or "unpurged" in area["flags"]:
            continue
        for key in ("first", "last"):
            p = area.get(key)
            if p is None:
                continue
            checked += 1
            if not _page_ok(p, ram):
                bad.append((area["start"], key, p))
    assert checked > 20, "too few vmalloc areas in truth.json (%d)" % checked
    assert not bad, "%d of %d vmalloc pages failed: %s" % (len(bad), checked, bad[:5])


@pytest.mark.parametrize("recipe", RECIPES)
def test_vmap_areas_translate(recipe: str) -> None:
    """vmap areas without phys= (IRQ stacks, ...) map RAM. Those with phys=
    are arm64's kernel image segments (registered by paging_init): the walk
    must land on that frame, except inside [__init_begin, __init_end), which
    arm64 unmaps after boot while /proc/vmallocinfo still lists it."""
    truth, oracle = _load(recipe)
    ram = _ram(truth)
    syms = truth["kallsyms"]
    segments = sorted(int(a["start"], 16) for a in oracle["vmalloc_areas"]
                      if a["flags"] == ["vmap"] and a["phys"] is not None)
    init = None
    if "__init_begin" in syms and segments:
        # Debian's arm64 6.1 has no KALLSYMS_ALL, so no __init_end: the data
        # segment is then the last of the image segments map_kernel() registers.
        end = syms["__init_end"]["address"] if "__init_end" in syms else hex(segments[-1])
        init = (int(syms["__init_begin"]["address"], 16), int(end, 16))
    bad = []
    for area in oracle["vmalloc_areas"]:
        if area["flags"] != ["vmap"]:
            continue
        p = area["first"]
        if area["phys"] is None:
            if not _page_ok(p, ram):
                bad.append((area["start"], p))
        elif init and init[0] <= int(area["start"], 16) < init[1]:
            if p["pa"] is not None:
                bad.append((area["start"], "freed init segment still mapped", p))
        elif p["pa"] is None or int(p["pa"], 16) != int(area["phys"], 16) or not p["read_ok"]:
            bad.append((area["start"], area["phys"], p))
    assert not bad, bad


@pytest.mark.parametrize("recipe", RECIPES)
def test_ioremap_areas_walk_to_their_reported_phys(recipe: str) -> None:
    """The guest prints phys= for ioremap areas: drgn's walk of the area's
    first page must land on that frame (MMIO is not in the dump, so only the
    walk is checked, not a read)."""
    truth, oracle = _load(recipe)
    page = int(truth["vmcoreinfo"]["PAGESIZE"])
    checked, bad = 0, []
    for area in oracle["vmalloc_areas"]:
        if "ioremap" not in area["flags"] or not area["phys"]:
            continue
        checked += 1
        got = area["first"]["pa"]
        want = int(area["phys"], 16) & ~(page - 1)
        if got is None or int(got, 16) & ~(page - 1) != want:
            bad.append((area["start"], area["phys"], area["first"]))
    assert checked > 0
    assert not bad, bad


@pytest.mark.parametrize("recipe", RECIPES)
def test_module_bases_translate_to_ram_and_read(recipe: str) -> None:
    truth, oracle = _load(recipe)
    ram = _ram(truth)
    assert len(oracle["modules"]) == len(truth["modules"]) >= 1
    bad = [m for m in oracle["modules"]
           if m["pa"] is None or not m["read_ok"] or not m["phys_read_equal"] or not _in_ram(m["pa"], ram)]
    assert not bad, bad
