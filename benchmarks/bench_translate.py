"""Translation speed against drgn, measured as ratios in the same run.

    python3 benchmarks/bench_translate.py [--recipe x86_64-6.12-l4] [--n 100000]

The same N kernel addresses (pages of the guest's vmalloc areas and
modules, image symbols and linear-map samples, repeated to N) of one real
dump are translated three ways:

1. kmemdbg's batch translation (``Walker.translate_many``, fresh cache);
2. drgn's C walker called once per address from Python;
3. drgn's virtual read ``prog.read(va, 8)`` (full dumps only).

Targets: batch / C-walker <= 1.0; one uncached walk with its full step
record under 20 us (reported as its ratio to one C-walker call too).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import drgn  # noqa: E402
import _drgn  # noqa: E402

from kmemdbg.memory import TableCache  # noqa: E402
from kmemdbg.session import open_core  # noqa: E402
from kmemdbg.walk import Walker  # noqa: E402
from realdumps import all_dumps, fixture_truth  # noqa: E402


def sample_addresses(truth, recipe, n, seed=7):
    base = []
    for a in truth.get("vmalloc_areas", []):
        for va in range(int(a["start"], 16), int(a["end"], 16), 4096):
            base.append(va + 0x10)
    for m in truth.get("modules", []):
        start = int(m["address"], 16)
        base += [start + off for off in range(0, m["size"], 4096)]
    base += [int(s["address"], 16) for s in truth.get("kallsyms", {}).values() if not s.get("module")]
    base += [int(s["va"], 16) for s in fixture_truth(recipe).get("slice", {}).get("linear_samples", [])]
    rng = random.Random(seed)
    return [(rng.choice(base) & ~0xFFF) | rng.randrange(0, 4096, 8) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="x86_64-6.12-l4")
    ap.add_argument("--n", type=int, default=100000)
    args = ap.parse_args()
    dumps = [d for d in all_dumps() if d.recipe == args.recipe and not d.missing()]
    if not dumps:
        print(f"no dump for {args.recipe}", file=sys.stderr)
        return 2
    dump = sorted(dumps, key=lambda d: d.kind != "full")[0]
    truth = dump.truth()
    vas = sample_addresses(truth, dump.recipe, args.n)
    session = open_core(dump.path)
    prog = drgn.Program()
    prog.set_core_dump(dump.path)
    pgd = drgn.Object(prog, "void *", session.tables.root_va)
    fmt, root = session.tables.format, session.tables.root_pa

    walker = Walker(fmt, session.memory, root, TableCache(session.memory))
    t0 = time.perf_counter()
    result = walker.translate_many(vas)
    t_batch = time.perf_counter() - t0

    follow = _drgn._linux_helper_follow_phys
    t0 = time.perf_counter()
    for va in vas:
        try:
            follow(prog, pgd, va)
        except drgn.FaultError:
            pass
    t_c = time.perf_counter() - t0

    t_read = None
    if dump.kind == "full":
        mapped = [va for va, pa in zip(vas, result.pas) if pa is not None]
        t0 = time.perf_counter()
        for va in mapped:
            try:
                prog.read(va, 8)
            except drgn.FaultError:
                pass
        t_read = (time.perf_counter() - t0) / max(1, len(mapped)) * len(vas)

    # one uncached walk with the full step record, averaged over fresh walkers
    singles = vas[:2000]
    t0 = time.perf_counter()
    for va in singles:
        Walker(fmt, session.memory, root).walk(va)
    t_single = (time.perf_counter() - t0) / len(singles)

    n = len(vas)
    print(f"dump: {dump.recipe} ({dump.kind}), {session.tables.format.name}, {n} addresses, "
          f"{sum(p is not None for p in result.pas)} mapped, {walker.cache.reads} table reads")
    print(f"kmemdbg batch        {t_batch / n * 1e6:8.3f} us/address")
    print(f"drgn C walker        {t_c / n * 1e6:8.3f} us/address")
    if t_read is not None:
        print(f"drgn prog.read(va,8) {t_read / n * 1e6:8.3f} us/address")
    print(f"kmemdbg single walk  {t_single * 1e6:8.3f} us (uncached, full step record; target < 20)")
    print(f"ratio batch / drgn C walker     = {t_batch / t_c:.3f}  (target <= 1.0)")
    if t_read is not None:
        print(f"ratio batch / drgn virtual read = {t_batch / t_read:.4f}")
    print(f"ratio single walk / drgn C call = {t_single / (t_c / n):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
