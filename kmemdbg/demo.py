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
from typing import List

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


def run_demo(sample_dir: str, as_json: bool = False):
    """Run the demo on ``sample_dir`` (vmcore.slice + truth.json); returns text or JSON items."""
    import kmemdbg

    core = os.path.join(sample_dir, "vmcore.slice")
    if not os.path.exists(core):
        raise SourceError(f"the bundled sample is missing ({core}): kmemdbg is installed without its package data")
    with open(os.path.join(sample_dir, "truth.json")) as f:
        truth = json.load(f)
    k = kmemdbg.open(core=core)
    items, lines = [], [
        "kmemdbg demo on a slice of a real Debian kernel dump:",
        f"  {truth.get('proc_version', k.description)[:76]}",
        f"paging: {k.tables.format.name}; root table at pa 0x{k.tables.root_pa:x}",
    ]
    lines += render.wrap(f"({k.tables.evidence})")
    lines.append("")
    for r in ("linear", "vmalloc", "vmemmap", "kernel-image", "module"):
        reg = next((x for x in k.layout.regions if x.kind == r), None)
        if reg is not None:
            lines.append(f"  {r:<13} {render.addr(reg.start)}-{render.addr(reg.end)}")
            lines += render.wrap(reg.source, "    ", "      ")
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
        walk, cls, check = k.translate(va), k.classify(va), k.check_virt_to_phys(va, claimed)
        items.append({"title": title, "vtop": render.vtop_json(walk, cls), "check": render.check_json(check)})
        lines += ["", "=" * 78] + render.wrap(title, "", "") + ["-" * 78]
        lines += render.vtop_text(walk, cls)
        lines.append("")
        lines += render.check_text(check)
    return items if as_json else "\n".join(lines)
