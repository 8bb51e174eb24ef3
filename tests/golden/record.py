"""Record (or compare) the text and JSON output of every command on a dump.

The golden set pins kmemdbg's behaviour across the redesign of issue 11: the
committed fixture slices do not change between builds, so their outputs are
committed under ``tests/golden/<fixture>/``; a freshly booted recipe differs
on every build, so for those a copy of one build is kept aside and its
outputs are recorded beside it (``--core`` and ``--truth`` with ``--out``).

    python3 tests/golden/record.py                # rewrite the fixture goldens
    python3 tests/golden/record.py --check        # compare, exit 1 on a change
    python3 tests/golden/record.py --core C --truth T --out D [--check]

Every case is one ``python3 -m kmemdbg`` run; its stdout, stderr and exit
status are stored as one file.  Addresses come from the guest kernel's own
reports in truth.json, so the cases are the same on every slice.
"""
from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "vmcores", "fixtures")


def _hexes(values, limit):
    out = []
    for v in values:
        if v and v not in out:
            out.append(v)
        if len(out) == limit:
            break
    return out


def cases(truth: dict) -> List[Tuple[str, List[str], str]]:
    """(name, argv after the global options, stdin) for one dump."""
    probe = truth.get("probe", []) or []
    kallsyms = truth.get("kallsyms", {}) or {}
    areas = truth.get("vmalloc_areas", []) or []
    sl = truth.get("slice", {}) or {}
    probe_va = _hexes([p.get("va") for p in probe], 12)
    sym_va = _hexes([kallsyms[k]["address"] for k in sorted(kallsyms)], 10)
    area_va = _hexes([a["start"] for a in areas], 6)
    guard_va = _hexes(["0x%x" % (int(a["end"], 16) - 1) for a in areas if "vmalloc" in a.get("flags", [])], 3)
    plant_va = _hexes([p[0] for p in sl.get("plants_kept", [])], 8)
    linear = sl.get("linear_samples", [])[:4]
    linear_va = [s["va"] for s in linear]
    pas = _hexes([s["pa"] for s in linear] + [p.get("slow_virt_to_phys") for p in probe], 8)
    claims = [f"{p['va']}={p['virt_to_phys']}" for p in probe if p.get("va") and p.get("virt_to_phys")][:4]
    bogus = [p for p in probe if p.get("name") == "bogus_global" and p.get("source_va")]
    claims += [f"{p['source_va']}={p['value']}" for p in bogus[:1]]
    odd = ["0x1000", "0x0000800000000000", "0xffffffffffffffff"]
    addrs = probe_va + sym_va + area_va + guard_va + plant_va + linear_va + odd
    out: List[Tuple[str, List[str], str]] = [("layout", ["layout"], "")]
    for name, cmd in (("classify", ["classify"] + addrs), ("vtop", ["vtop"] + addrs),
                      ("check", ["check"] + addrs + claims), ("ptov", ["ptov"] + pas)):
        out.append((name, cmd, ""))
    if probe_va:
        out.append(("check-size", ["check", "--size", "16384", probe_va[0]], ""))
    out.append(("vtop-pid1", ["vtop", "--pid", "1", "0x400000"], ""))
    out.append(("ptdump", ["ptdump"], ""))
    if area_va:
        start = int(area_va[0], 16)
        out.append(("ptdump-range", ["ptdump", "--start", "0x%x" % start, "--end", "0x%x" % (start + (64 << 20))], ""))
    out.append(("audit", ["audit"], ""))
    out.append(("audit-jsonl", ["audit", "--jsonl", "--rule", "wx", "--rule", "virt-to-phys-misuse"], ""))
    out.append(("audit-addresses", ["audit", "--rule", "addresses", "--addresses", "-"],
                "\n".join(claims + addrs[:6]) + "\n"))
    out.append(("slice", ["slice", "@OUT@"], ""))
    return out


BIG = 256 << 10


def _big(text: str) -> str:
    """An output over BIG bytes is kept as its head and a digest of the whole."""
    if len(text) <= BIG:
        return text
    head = "".join(text.splitlines(True)[:200])
    return head + "... %d bytes, sha256 %s\n" % (len(text), hashlib.sha256(text.encode()).hexdigest())


def _tracebacks(text: str) -> str:
    """A Python traceback (which names this machine's paths) is kept as its last line."""
    out, in_tb = [], False
    for line in text.splitlines(True):
        if line.startswith("Traceback (most recent call last):"):
            in_tb = True
            continue
        if in_tb:
            if line.startswith((" ", "\t")) or not line.strip() or line.startswith("During handling"):
                continue
            in_tb = False
            out.append("[traceback] " + line)
            continue
        out.append(line)
    return "".join(out)


def run_case(core: Optional[str], argv: List[str], stdin: str, as_json: bool) -> str:
    tmp = None
    if "@OUT@" in argv:
        tmp = tempfile.mkdtemp(prefix="kmgolden-")
        argv = [os.path.join(tmp, "out.slice") if a == "@OUT@" else a for a in argv]
    if core is None:
        cmd = [sys.executable, "-m", "kmemdbg"] + (["--json"] if as_json else []) + argv
        core = "@@no core@@"
    else:
        core = os.path.relpath(core, ROOT) if os.path.abspath(core).startswith(ROOT + os.sep) else core
        cmd = [sys.executable, "-m", "kmemdbg", "--core", core] + (["--json"] if as_json else []) + argv
    # drgn plugins (kmemdbg's own included) load by entry point, differently per environment
    env = dict(os.environ, PYTHONHASHSEED="0", COLUMNS="100", DRGN_DISABLE_PLUGINS="*")
    env.pop("KMEMDBG_PROGRESS", None)
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    text = f"rc={p.returncode}\n--- stdout\n{_big(p.stdout)}--- stderr\n{_tracebacks(p.stderr)}"
    text = text.replace(core, "CORE")
    text = re.sub(r'"seconds": [0-9.]+', '"seconds": T', text)
    text = re.sub(r"\bin [0-9.]+ s\b", "in T s", text)
    if tmp:
        for a in argv:
            if a.startswith(tmp):
                text = text.replace(a, "OUT")
                if os.path.exists(a):
                    with open(a, "rb") as f:
                        text += "--- slice sha256 %s\n" % hashlib.sha256(f.read()).hexdigest()
                    os.unlink(a)
        os.rmdir(tmp)
    return text


def record(core: str, truth_path: str, out_dir: str, check: bool) -> int:
    with open(truth_path) as f:
        truth = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    changed = 0
    for name, argv, stdin in cases(truth):
        for as_json in (False, True):
            fname = os.path.join(out_dir, f"{name}{'.json' if as_json else ''}.txt")
            got = run_case(core, argv, stdin, as_json)
            if check:
                try:
                    with open(fname) as f:
                        want = f.read()
                except FileNotFoundError:
                    want = ""
                if got != want:
                    changed += 1
                    print(f"CHANGED {fname}")
                    sys.stdout.writelines(list(difflib.unified_diff(
                        want.splitlines(True), got.splitlines(True), "golden", "now", n=1))[:60])
            else:
                with open(fname, "w") as f:
                    f.write(got)
    return changed


def demo(check: bool) -> int:
    """``kmemdbg demo`` (no dump named: the bundled sample), text and JSON."""
    changed = 0
    for as_json in (False, True):
        fname = os.path.join(HERE, f"demo{'.json' if as_json else ''}.txt")
        got = run_case(None, ["demo"], "", as_json)
        if not check:
            with open(fname, "w") as f:
                f.write(got)
            continue
        with open(fname) as f:
            if f.read() != got:
                changed += 1
                print(f"CHANGED {fname}")
    return changed


def fixtures() -> Dict[str, Tuple[str, str]]:
    out = {}
    for name in sorted(os.listdir(FIXTURES)):
        d = os.path.join(FIXTURES, name)
        if os.path.isfile(os.path.join(d, "vmcore.slice")):
            out[name] = (os.path.join(d, "vmcore.slice"), os.path.join(d, "truth.json"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--core")
    ap.add_argument("--truth")
    ap.add_argument("--out")
    ap.add_argument("--only", action="append", default=[])
    a = ap.parse_args()
    if a.core:
        return 1 if record(a.core, a.truth, a.out, a.check) else 0
    changed = 0 if a.only else demo(a.check)
    for name, (core, truth) in fixtures().items():
        if a.only and name not in a.only:
            continue
        changed += record(core, truth, os.path.join(HERE, name), a.check)
    print(f"{changed} changed" if a.check else "recorded")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
