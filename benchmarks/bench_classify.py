"""classify + check for many addresses, as a ratio against drgn's path; demo start-up.

    python3 benchmarks/bench_classify.py [--recipe x86_64-6.12-l4] [--n 100000]

kmemdbg: ``Kernel.classify`` and ``Kernel.check_many`` over N addresses of
one real dump (pages of the guest's vmalloc areas and modules, image symbols
and linear samples).  drgn's path on the same addresses, with no debug info
(the default dumps have none): ``prog.symbol(va)`` for the owner and the C
walker ``follow_phys`` for the translation.  drgn's ``identify_address``
needs DWARF (it looks up ``init_task``), so it cannot run on these dumps;
the ratio is against what drgn can do here.  Target: kmemdbg >= 5x faster.

With ``--vmlinux PATH`` (Debian's debug image for the recipe's kernel, see
tests/realdumps.py ``debug_vmlinux`` for where to put it) drgn's path is the
one the target names: ``identify_address`` plus ``follow_phys(init_mm, va)``
with DWARF loaded.

Also times ``kmemdbg demo`` start-up on the bundled sample (subprocess,
best of 3) against ``drgn -c SAMPLE -e pass``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import drgn  # noqa: E402
import _drgn  # noqa: E402

import kmemdbg  # noqa: E402
from bench_translate import sample_addresses  # noqa: E402
from realdumps import FIXTURES, all_dumps  # noqa: E402


def best_of(cmd, n=3):
    best = None
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="x86_64-6.12-l4")
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--vmlinux", help="debug vmlinux of the recipe's kernel (drgn's DWARF path)")
    args = ap.parse_args()
    dumps = sorted((d for d in all_dumps() if d.recipe == args.recipe and not d.missing()),
                   key=lambda d: d.kind != "full")
    if not dumps:
        print(f"no dump for {args.recipe}", file=sys.stderr)
        return 2
    dump = dumps[0]
    vas = sample_addresses(dump.truth(), dump.recipe, args.n)
    t0 = time.perf_counter()
    k = kmemdbg.open(core=dump.path)
    k.layout
    k.objects() and k.objects().vmap_areas()
    t_open = time.perf_counter() - t0

    t0 = time.perf_counter()
    kinds = [k.classify(va).region.kind for va in vas]
    t_classify = time.perf_counter() - t0
    t0 = time.perf_counter()
    checks = k.check_many(vas)
    t_check = time.perf_counter() - t0

    prog = k.prog
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    follow = _drgn._linux_helper_follow_phys
    t0 = time.perf_counter()
    for va in vas:
        try:
            prog.symbol(va)
        except LookupError:
            pass
        try:
            follow(prog, pgd, va)
        except drgn.FaultError:
            pass
    t_drgn = time.perf_counter() - t0
    t_dwarf = None
    if args.vmlinux:
        from drgn.helpers.common.memory import identify_address
        from drgn.helpers.linux.mm import follow_phys

        kd = kmemdbg.open(core=dump.path, vmlinux=args.vmlinux)
        init_mm = kd.prog["init_mm"].address_of_()
        sample = vas[:5000]
        t0 = time.perf_counter()
        for va in sample:
            identify_address(kd.prog, va)
            try:
                follow_phys(init_mm, va)
            except drgn.FaultError:
                pass
        t_dwarf = (time.perf_counter() - t0) / len(sample) * len(vas)
    n = len(vas)
    verdicts = {}
    for c in checks:
        verdicts[c.verdict] = verdicts.get(c.verdict, 0) + 1
    print(f"dump: {dump.recipe} ({dump.kind}), {n} addresses; open+layout+vmap areas {t_open:.2f} s")
    print(f"regions: {dict((x, kinds.count(x)) for x in sorted(set(kinds)))}")
    print(f"verdicts: {verdicts}")
    print(f"kmemdbg classify         {t_classify / n * 1e6:8.2f} us/address")
    print(f"kmemdbg check_many       {t_check / n * 1e6:8.2f} us/address (includes classify)")
    print(f"drgn symbol+follow_phys  {t_drgn / n * 1e6:8.2f} us/address")
    print(f"ratio drgn / kmemdbg (check_many) = {t_drgn / t_check:.2f}  (no debug info)")
    if t_dwarf is not None:
        print(f"drgn identify_address+follow_phys with DWARF {t_dwarf / n * 1e6:8.2f} us/address")
        print(f"ratio drgn (DWARF) / kmemdbg (check_many) = {t_dwarf / t_check:.1f}  (target >= 5)")

    sample = os.path.join(FIXTURES, "x86_64-6.12-l4", "vmcore.slice")
    t_demo = best_of([sys.executable, "-m", "kmemdbg", "demo"])
    drgn_exe = os.path.join(os.path.dirname(sys.executable), "drgn")
    t_drgn_start = best_of([drgn_exe, "-q", "-c", sample, "-e", "pass"]) if os.path.exists(drgn_exe) else None
    print(f"kmemdbg demo start-to-end {t_demo:.2f} s" +
          (f"; drgn -c SAMPLE -e pass {t_drgn_start:.2f} s; ratio {t_demo / t_drgn_start:.2f}"
           if t_drgn_start else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
