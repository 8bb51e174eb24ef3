"""``kmemdbg demo``: the main job on the bundled real sample.

The sample is a slice of a real Debian 6.12 x86-64 kernel dump (page tables,
VMCOREINFO, kallsyms and a few data pages) with the guest kernel's own
reports beside it.  The demo shows the layout, a full walk of a linear-map
(kmalloc-like) address and of a vmalloc address, and what ``virt_to_phys()``
would have answered for each, checked against the walk.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, List, Tuple

from . import render
from .errors import SourceError

#: The bundled sample (package data): a slice of the CI recipe of the same name and its truth.json.
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples", "x86_64-6.12-l4")


def _pick(truth) -> List[tuple]:
    picks = []
    for probe in truth.get("probe", []) or []:
        if probe.get("name") == "bogus_global" and probe.get("source_va"):
            picks.append(("a planted bug: a probe module stored virt_to_phys() of a vmalloc pointer "
                          f"(value {probe['value']}; the kernel's vmalloc_to_pfn() says "
                          f"pfn {probe['source_pfn']})",
                          ("claim", int(probe["source_va"], 16), int(probe["value"], 16))))
            break
    for s in truth.get("slice", {}).get("linear_samples", [])[:1]:
        picks.append(("a linear-map (kmalloc-like) address from /proc/iomem's System RAM",
                      ("linear", int(s["pa"], 16))))
    for a in truth.get("vmalloc_areas", []):
        if "vmalloc" in a.get("flags", []) and a.get("pages"):
            picks.append((f"a vmalloc buffer from /proc/vmallocinfo ({a['caller']})", int(a["start"], 16)))
            break
    for m in truth.get("modules", [])[:1]:
        picks.append((f"module {m['name']} from /proc/modules", int(m["address"], 16)))
    return picks


@dataclass(frozen=True)
class DemoCase:
    """One address the demo explains: its walk, classification and virt_to_phys verdict."""

    title: str
    walk: Any
    classification: Any
    check: Any


@dataclass(frozen=True)
class DemoReport:
    """What ``kmemdbg demo`` shows: the sample's kernel, its paging and regions, the cases."""

    release: str                    # the guest's /proc/version (or the kernel's description)
    format_name: str                # paging format
    root_pa: int                    # pa of the kernel's root table
    evidence: str                   # how the root was found
    regions: Tuple[Any, ...]        # the first region of each kind of DEMO_REGION_KINDS present
    cases: Tuple[DemoCase, ...]


#: Region kinds the demo lists, in this order.
DEMO_REGION_KINDS = ("linear", "vmalloc", "vmemmap", "kernel-image", "module")


def demo_report(sample_dir: str) -> DemoReport:
    """The demo on ``sample_dir`` (vmcore.slice + truth.json).  Raises SourceError if absent."""
    import kmemdbg

    core = os.path.join(sample_dir, "vmcore.slice")
    if not os.path.exists(core):
        raise SourceError(f"the bundled sample is missing ({core}): kmemdbg is installed without its package data")
    with open(os.path.join(sample_dir, "truth.json")) as f:
        truth = json.load(f)
    k = kmemdbg.open(core=core)
    release = truth.get("proc_version", k.description)
    regions = []
    for kind in DEMO_REGION_KINDS:
        reg = next((x for x in k.layout.regions if x.kind == kind), None)
        if reg is not None:
            regions.append(reg)
    cases = []
    for title, what in _pick(truth):
        claimed = None
        if isinstance(what, tuple) and what[0] == "claim":
            va, claimed = what[1], what[2]
        elif isinstance(what, tuple):
            pa = what[1]
            maps = [m for m in k.phys_to_virts(pa) if m.region.kind == "linear"]
            if not maps:
                continue
            va = maps[0].va + 0x40
        else:
            va = what
        cases.append(DemoCase(title, k.translate(va), k.classify(va), k.check_virt_to_phys(va, claimed)))
    return DemoReport(release, k.tables.format.name, k.tables.root_pa, k.tables.evidence, tuple(regions),
                      tuple(cases))


def run_demo(sample_dir: str, as_json: bool = False):
    """The demo on ``sample_dir`` rendered: text, or its JSON items."""
    report = demo_report(sample_dir)
    return render.demo_json(report) if as_json else "\n".join(render.demo_text(report))
