"""Precision and recall of ``virt-to-phys-misuse`` over many boots, each with fresh KASLR.

    python3 benchmarks/misuse_precision.py [--boots 5] [--recipe R ...] [--build]

For each recipe (default: all seven) and each boot 1..N (``vmcores/build.py
--boot N RECIPE``; ``--build`` builds the missing ones first, ~30-60 s each),
the rule runs on the boot's full ELF dump and the findings are compared with
the guest kernel's own printout of the probe's plants (truth.json
``plants``) and its two older plants (``bogus_global``, the descriptor's
``bogus_pa``):

- plants found above info / planted (what the rule could not scan because the
  kernel gives no way to find it, e.g. arm64 6.1's per-cpu areas without data
  symbols, is counted apart and must come with an ``incomplete`` finding);
- controls reported (must be 0);
- findings above info that are not plants (false positives; must be 0);
- bytes scanned per memory kind, and the rule's time.

A measurement: it prints a table and exits 1 only when a false positive or a
reported control was seen, so it can gate a release by hand.  Boot 0 is the
recipe's own build (the one the tests use).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import kmemdbg  # noqa: E402
from kmemdbg.audit import run_audit  # noqa: E402
from kmemdbg.audit.memkinds import KINDS  # noqa: E402
from vmcores import build  # noqa: E402
from vmcores.truth import PLANT_MEMORY_KIND as KIND_OF_PLANT  # noqa: E402

RECIPES = ("x86_64-6.12-l4", "x86_64-6.12-l5", "x86_64-6.1-l4", "arm64-6.12-lpa2",
           "arm64-6.12-48bit", "arm64-6.12-16k", "arm64-6.1")


def measure(folder: str) -> dict:
    with open(os.path.join(folder, "truth.json")) as f:
        truth = json.load(f)
    k = kmemdbg.open(core=os.path.join(folder, build.ELF_NAME))
    t0 = time.perf_counter()
    report = run_audit(k, ["virt-to-phys-misuse"])
    seconds = time.perf_counter() - t0
    found = {f.start: f for f in report.findings if f.start is not None and f.severity != "info"}
    incomplete = {f.evidence_dict()["memory_kind"] for f in report.findings if f.kind == "incomplete"}
    plants = truth["plants"]["plants"]
    bogus = [p for p in plants if not p["control"]]
    words = {int(p["word_va"], 16) for p in plants}
    probe = {e["name"]: e for e in truth.get("probe") or []}
    olds = set()
    if "bogus_global" in probe:
        olds.add(int(probe["bogus_global"]["va"], 16))
        d = probe["desc_fields"]
        olds.add(int(d["va"], 16) + int(d["bogus_pa_offset"], 16))
    hit = sum(1 for p in bogus if int(p["word_va"], 16) in found)
    unscannable = sum(1 for p in bogus if int(p["word_va"], 16) not in found
                      and KIND_OF_PLANT[p["kind"]] in incomplete)
    controls = sum(1 for p in plants if p["control"] and int(p["word_va"], 16) in found)
    false = [f for f in found.values() if f.kind != "incomplete" and f.start not in words | olds]
    stats = [f for f in report.findings if f.kind == "statistics"]
    ev = stats[0].evidence_dict() if stats else {}
    return {"found": hit + sum(1 for w in olds if w in found), "planted": len(bogus) + len(olds),
            "unscannable": unscannable, "controls": controls, "false": len(false),
            "false_text": [f.explanation[:240] for f in false[:3]],
            "kinds": {k_: ev.get(f"{k_}_bytes", 0) for k_ in KINDS}, "seconds": seconds,
            "errors": report.errors, "kaslr": truth.get("vmcoreinfo", {}).get("KERNELOFFSET")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boots", type=int, default=5, help="extra boots per recipe (default 5)")
    ap.add_argument("--recipe", action="append", help="recipe (repeatable; default all seven)")
    ap.add_argument("--build", action="store_true", help="build missing boots first")
    args = ap.parse_args()
    recipes = args.recipe or list(RECIPES)
    bad = 0
    print(f"{'recipe':18} {'boot':>4} {'KERNELOFFSET':>14} {'found/planted':>13} {'unscan':>6} "
          f"{'ctrl':>4} {'FP':>3} {'s':>5}  bytes per kind (KiB)")
    for recipe in recipes:
        if args.build:
            subprocess.run([sys.executable, os.path.join(ROOT, "vmcores", "build.py"), "--boot",
                            f"1-{args.boots}", recipe], check=False)
        for boot in [None] + list(range(1, args.boots + 1)):
            folder = build.built(recipe, boot=boot)
            if folder is None:
                print(f"{recipe:18} {boot or 0:>4} not built (python3 vmcores/build.py --boot {boot} {recipe})")
                continue
            r = measure(folder)
            kinds = " ".join(f"{k_[:3]} {v // 1024}" for k_, v in r["kinds"].items())
            print(f"{recipe:18} {boot or 0:>4} {str(r['kaslr']):>14} {r['found']:>6}/{r['planted']:<6} "
                  f"{r['unscannable']:>6} {r['controls']:>4} {r['false']:>3} {r['seconds']:>5.1f}  {kinds}")
            for text in r["false_text"]:
                print(f"    false positive: {text}")
            if r["errors"]:
                print(f"    errors: {r['errors']}")
            bad += r["false"] + r["controls"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
