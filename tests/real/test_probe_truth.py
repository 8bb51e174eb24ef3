"""The kmemdbg_probe module's own printout against drgn's C walker.

Oracle: what the guest kernel printed about its own buffers just before the
dump (vmcores/probe/kmemdbg_probe.c: slow_virt_to_phys() and lookup_address()
on x86, vmalloc_to_pfn(), virt_to_phys() of linear addresses, page_to_pfn()
of the pages it vmap()ed), parsed into truth.json's ``probe`` list, versus
drgn's ``_linux_helper_follow_phys`` from swapper_pg_dir on the same dump,
in a child process (tests/real/probe_oracle.py) with drgn plugins disabled,
so no kmemdbg code runs. Every page of every buffer is walked, in the full
dump and in the committed slice (which keeps every page-table page); page
contents (the probe's 32-byte markers, the planted descriptor and global)
are read where the dump holds them: everywhere in the full dump, in the
slice for the pages ``slice.probe_kept`` lists.
"""

import json
import os
import struct
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

import pytest

from vmcores import build

pytestmark = pytest.mark.real

ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_oracle.py")
FIXTURES = os.path.join(build.HERE, "fixtures")
DOC = build.load_recipes()
RECIPES = [n for n, r in DOC["recipes"].items() if r.get("probe")]
X86 = [n for n in RECIPES if DOC["recipes"][n]["arch"] == "x86_64"]
CASES = [(r, k) for r in RECIPES for k in ("trimmed", "full")]

MARKER = struct.Struct("<QQQ8s")
MARKER_MAGIC = 0x4252504742444D4B   # b"KMDBGPRB"
DESC = struct.Struct("<QQQQQ")
DESC_MAGIC = 0x4353444742444D4B     # b"KMDBGDSC"
LINEAR = ("kmalloc64", "kmalloc256", "kmalloc4k", "kmalloc64k", "pinned", "desc")
GLOBALS = ("pinned_ptr", "bogus_global", "desc_ptr")

_cache = {}  # type: Dict[Tuple[str, str], "Probe"]


def h(text: str) -> int:
    return int(text, 16)


class Probe:
    """One dump, its truth, and drgn's answers for every probe address."""

    def __init__(self, recipe: str, kind: str) -> None:
        self.recipe, self.kind = recipe, kind
        if kind == "full":
            d = build.built(recipe)
            if d is None:
                pytest.skip("recipe %s is not built (or is stale): run `python3 vmcores/build.py %s`"
                            % (recipe, recipe))
            self.path = os.path.join(d, build.ELF_NAME)
            truth_path = os.path.join(d, "truth.json")
        else:
            self.path = os.path.join(FIXTURES, recipe, "vmcore.slice")
            truth_path = os.path.join(FIXTURES, recipe, "truth.json")
            if not os.path.exists(self.path):
                pytest.skip("no slice for %s: run `python3 vmcores/build.py %s && python3 "
                            "vmcores/fixtures/make.py %s`" % (recipe, recipe, recipe))
        with open(truth_path) as f:
            self.truth = json.load(f)
        self.arch = DOC["recipes"][recipe]["arch"]
        self.page = int(self.truth["vmcoreinfo"]["PAGESIZE"])
        entries = self.truth.get("probe") or []
        assert any(e["name"] == "end" for e in entries), (
            "%s truth.json has no complete probe printout: rebuild with `python3 vmcores/build.py %s`"
            " (and `python3 vmcores/fixtures/make.py %s` for the slice)" % (self.kind, recipe, recipe))
        self.entries = entries
        self.by_name = {}  # type: Dict[str, List[Dict[str, Any]]]
        for e in entries:
            self.by_name.setdefault(e["name"], []).append(e)
        self.markers = self._marker_pages()
        walk = set()
        for e in entries:
            if "va" in e:
                walk.add(h(e["va"]))
            if "pages" in e:
                walk.update(h(e["va"]) + i * self.page for i in range(h(e["pages"])))
        for name in LINEAR:
            for e in self.by_name.get(name, []):
                walk.update(self._pages(h(e["va"]), h(e["size"])))
        reads = [(va, MARKER.size) for va in self.markers]
        reads += [(h(e["va"]), 8) for name in GLOBALS for e in self.by_name.get(name, [])]
        reads += [(h(e["va"]), DESC.size) for e in self.by_name.get("desc", [])]
        req = {"path": self.path, "arch": self.arch, "pgd": self.truth["vmcoreinfo"]["SYMBOL(swapper_pg_dir)"],
               "walk": ["0x%x" % va for va in sorted(walk)],
               "read": [["0x%x" % va, n] for va, n in reads]}
        env = dict(os.environ, DRGN_DISABLE_PLUGINS="*")
        proc = subprocess.run([sys.executable, ORACLE], input=json.dumps(req).encode(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, timeout=600)
        assert proc.returncode == 0, "drgn oracle failed on %s: %s" % (self.path, proc.stderr.decode()[-2000:])
        out = json.loads(proc.stdout)
        self.walks = {h(k): (None if v is None else h(v)) for k, v in out["walk"].items()}
        self.reads = {h(k): (None if v is None else bytes.fromhex(v)) for k, v in out["read"].items()}
        self.errors = out["errors"]

    def _pages(self, va: int, size: int) -> List[int]:
        """The page-aligned VAs that [va, va + size) touches, plus va itself."""
        first = va - va % self.page
        return sorted({va} | set(range(first, va + size, self.page)))

    def _marker_pages(self) -> Dict[int, Tuple[int, str]]:
        """VA of each marker the probe wrote -> (index, buffer name), for the
        pages whose content this dump holds."""
        names = {"kmalloc64": "kmalloc6", "kmalloc256": "kmalloc2", "kmalloc4k": "kmalloc4",
                 "kmalloc64k": "kmalloc6", "pinned": "pinned", "vmalloc": "vmalloc",
                 "vmalloc_huge": "huge", "vmap": "vmap", "wx": "wx"}
        every = {}  # type: Dict[int, Tuple[int, str]]
        for name, tag in names.items():
            for e in self.by_name.get(name, []):
                start, size = h(e["va"]), h(e["size"])
                for off in range(0, size, self.page):
                    every[start + off] = (off // self.page, tag)
        if self.kind == "full":
            return every
        kept = []  # type: List[Tuple[int, int]]
        for va, size in self.truth.get("slice", {}).get("probe_kept", []):
            kept.append((h(va), max(h(size), 1)))
        return {va: v for va, v in every.items()
                if any(lo - lo % self.page <= va < lo + n for lo, n in kept)}

    def walk(self, va: int) -> Optional[int]:
        return self.walks[va]

    def where(self) -> str:
        info = self.truth["vmcoreinfo"]
        keys = ("NUMBER(pgtable_l5_enabled)", "NUMBER(VA_BITS)", "NUMBER(TCR_EL1_T1SZ)", "PAGESIZE")
        return "%s %s (%s)" % (self.recipe, self.kind, ", ".join("%s=%s" % (k, info[k]) for k in keys if k in info))


def load(recipe: str, kind: str) -> Probe:
    if (recipe, kind) not in _cache:
        _cache[(recipe, kind)] = Probe(recipe, kind)
    return _cache[(recipe, kind)]


@pytest.mark.parametrize("recipe,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_every_mapped_page_walks_to_the_frame_the_kernel_printed(recipe: str, kind: str) -> None:
    """vmalloc_to_pfn() per run of pages (and slow_virt_to_phys() of each
    run's first page on x86), for the vmalloc, huge vmalloc, vmap and W+X
    buffers: drgn's walk of every page lands on that frame."""
    p = load(recipe, kind)
    checked, bad = 0, []
    for e in p.entries:
        if not e["name"].endswith(".run"):
            continue
        va, pfn = h(e["va"]), h(e["vmalloc_to_pfn"])
        if "slow_virt_to_phys" in e and p.walk(va) != h(e["slow_virt_to_phys"]):
            bad.append((e["line"], "slow_virt_to_phys", p.walk(va)))
        for i in range(h(e["pages"])):
            got = p.walk(va + i * p.page)
            checked += 1
            if got != (pfn + i) * p.page:
                bad.append(("0x%x" % (va + i * p.page), "want 0x%x" % ((pfn + i) * p.page),
                            None if got is None else "0x%x" % got))
    huge = h(p.by_name["vmalloc_huge"][0]["size"]) // p.page
    assert checked >= huge + 6 + 4 + 1, "too few pages (%d) in %s" % (checked, p.where())
    assert not bad, "%s: %d of %d pages disagree: %s" % (p.where(), len(bad), checked, bad[:5])


@pytest.mark.parametrize("recipe,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_vmap_pages_walk_to_the_pages_the_probe_mapped(recipe: str, kind: str) -> None:
    """page_to_pfn() of the scattered pages given to vmap(), and of the page
    mapped with PAGE_KERNEL_EXEC."""
    p = load(recipe, kind)
    pages = p.by_name["vmap.page"] + p.by_name["wx_page"]
    assert len(pages) == 5
    bad = [(e["line"], p.walk(h(e["va"]))) for e in pages
           if p.walk(h(e["va"])) != h(e["page_to_pfn"]) * p.page]
    assert not bad, "%s: %s" % (p.where(), bad)
    frames = [h(e["page_to_pfn"]) for e in p.by_name["vmap.page"]]
    assert len(set(frames)) == 4 and all(b != a + 1 for a, b in zip(frames, frames[1:])), \
        "the vmap'd frames should be scattered: %s" % frames


@pytest.mark.parametrize("recipe,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_linear_buffers_walk_to_virt_to_phys(recipe: str, kind: str) -> None:
    """kmalloc buffers (every page of the 64 KiB one) and the descriptor:
    the walk equals virt_to_phys() (right for linear addresses), and
    slow_virt_to_phys() on x86."""
    p = load(recipe, kind)
    bad = []
    for name in LINEAR:
        (e,) = p.by_name[name]
        va, v2p = h(e["va"]), h(e["virt_to_phys"])
        assert e["virt_addr_valid"] == "0x1" and e["is_vmalloc_addr"] == "0x0", e["line"]
        if "slow_virt_to_phys" in e and h(e["slow_virt_to_phys"]) != v2p:
            bad.append((e["line"], "slow_virt_to_phys != virt_to_phys"))
        for page_va in p._pages(va, h(e["size"])):
            want = v2p + (page_va - va)
            if p.walk(page_va) != want:
                bad.append((name, "0x%x" % page_va, "want 0x%x" % want, p.walk(page_va)))
    assert not bad, "%s: %s" % (p.where(), bad)


@pytest.mark.parametrize("recipe,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_module_globals_and_ioremap_walk_to_what_the_kernel_printed(recipe: str, kind: str) -> None:
    """The probe's globals live in module space: vmalloc_to_pfn() (and
    slow_virt_to_phys() on x86). The ioremap of a device page walks to the
    device's physical address (MMIO: the dump cannot hold its content)."""
    p = load(recipe, kind)
    bad = []
    for name in GLOBALS:
        (e,) = p.by_name[name]
        va = h(e["va"])
        want = h(e["vmalloc_to_pfn"]) * p.page + va % p.page
        if p.walk(va) != want or ("slow_virt_to_phys" in e and h(e["slow_virt_to_phys"]) != want):
            bad.append((e["line"], p.walk(va)))
    (io,) = p.by_name["ioremap"]
    assert h(io["vmalloc_to_pfn"]) * p.page == h(io["phys"]), io["line"]
    if p.walk(h(io["va"])) != h(io["phys"]):
        bad.append((io["line"], p.walk(h(io["va"]))))
    assert not bad, "%s: %s" % (p.where(), bad)


@pytest.mark.parametrize("recipe,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_markers_are_where_the_walk_lands(recipe: str, kind: str) -> None:
    """Each buffer page the dump holds starts with the probe's marker naming
    that page's VA: read physically at drgn's walk."""
    p = load(recipe, kind)
    assert p.markers, "no probe page content kept in %s" % p.where()
    bad = []
    for va, (index, tag) in sorted(p.markers.items()):
        data = p.reads.get(va)
        if data is None:
            bad.append(("0x%x" % va, "unreadable", p.errors.get("0x%x" % va)))
            continue
        magic, mva, mindex, mname = MARKER.unpack(data)
        if (magic, mva, mindex, mname.rstrip(b"\0").decode()) != (MARKER_MAGIC, va, index, tag):
            bad.append(("0x%x" % va, hex(magic), hex(mva), mindex, mname))
    assert not bad, "%s: %d of %d markers wrong: %s" % (p.where(), len(bad), len(p.markers), bad[:5])


@pytest.mark.parametrize("recipe,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_planted_virt_to_phys_defects_are_in_the_dump(recipe: str, kind: str) -> None:
    """virt_to_phys() of the vmalloc buffer, in the global and in the
    descriptor beside a valid physical address, holds the value the kernel
    printed, and that value is not where the buffer is."""
    p = load(recipe, kind)
    (g,) = p.by_name["bogus_global"]
    (d,) = p.by_name["desc_fields"]
    (v,) = p.by_name["vmalloc"]
    bogus = h(g["value"])
    assert bogus == h(d["bogus_pa"]) and d["bogus_va"] == v["va"] == g["source_va"]
    true_pa = p.walk(h(v["va"]))
    assert true_pa == h(g["source_pfn"]) * p.page and bogus != true_pa, (g["line"], true_pa)
    stored = p.reads.get(h(g["va"]))
    assert stored is not None, "the module's data page is not in %s" % p.where()
    assert struct.unpack("<Q", stored)[0] == bogus
    (desc,) = p.by_name["desc"]
    raw = p.reads.get(h(desc["va"]))
    assert raw is not None, "the descriptor's page is not in %s" % p.where()
    magic, good_pa, bogus_pa, good_va, bogus_va = DESC.unpack(raw)
    assert (h(d["good_pa_offset"]), h(d["bogus_pa_offset"])) == (8, 16)
    assert magic == DESC_MAGIC and bogus_pa == bogus and bogus_va == h(v["va"])
    assert good_va == h(d["good_va"]) and good_pa == h(d["good_pa"]) == p.walk(good_va)


@pytest.mark.parametrize("recipe,kind", [c for c in CASES if c[0] in X86],
                         ids=["%s-%s" % c for c in CASES if c[0] in X86])
def test_x86_huge_vmalloc_is_pmd_mapped(recipe: str, kind: str) -> None:
    """What the fixtures promise the audits: on x86 the 4 MiB vmalloc_huge()
    buffer is mapped by 2 MiB leaves (lookup_address level 2 on every run)."""
    p = load(recipe, kind)
    (pmd,) = p.by_name["vmalloc_huge_pmd"]
    assert pmd["first_pmd_leaf"] == "0x1" and pmd["pmd_aligned"] == "0x1", pmd["line"]
    assert all(e["level"] == "0x2" for e in p.by_name["vmalloc_huge.run"])


# The probe's PTE of its W+X page, as it printed it after clearing NX:
# (no-execute bits, write-disable bits, bits holding the frame number below 2**47)
WX_BITS = {"x86_64": (1 << 63, 0, (1 << 47) - 1),
           "aarch64": (1 << 53, 1 << 7, (1 << 47) - 1)}   # PXN; PTE_RDONLY


@pytest.mark.parametrize("recipe,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_wx_page_pte_is_writable_and_executable(recipe: str, kind: str) -> None:
    """The planted W+X page: vmap() maps it NX (pgprot_nx()), the probe then
    clears NX (x86: through lookup_address(); arm64: PXN, by a walk from
    TTBR1_EL1). The printed PTE maps the frame drgn's walk lands on, with no
    no-execute bit and writable."""
    p = load(recipe, kind)
    (wx,) = p.by_name["wx_page"]
    pte = h(wx["pte"])
    assert pte != 0, "the probe could not make its page executable: %s" % wx["line"]
    nx, rdonly, frame_mask = WX_BITS[p.arch]
    frame = pte & frame_mask & ~(p.page - 1)
    assert not pte & nx and not pte & rdonly, wx["line"]
    assert frame == h(wx["page_to_pfn"]) * p.page == p.walk(h(wx["va"])), (wx["line"], p.walk(h(wx["va"])))
