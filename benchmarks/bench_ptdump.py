"""ptdump and ``audit --rule linear-integrity`` speed, against drgn's C walker.

    python3 benchmarks/bench_ptdump.py [--recipe arm64-6.12-lpa2] [--gib 64] [--sample 20000]

Two subjects:

1. the largest real recipe (arm64-6.12-lpa2 has the most leaves: its linear
   map is mapped with base pages); the full dump when built, else its slice;
2. an MMU model of x86-64 4-level with ``--gib`` GiB of RAM mapped in the
   linear map with 4 KiB pages only (64 GiB: 16M leaves, 32768 PTE tables),
   read straight from the model's memory (no file).

For each: wall time of a full ptdump and of the linear-integrity audit from a
fresh table cache, peak RSS (resource.getrusage, whole process, KiB), and the
ratio against drgn: a loop of drgn C walks (``follow_phys``) over a sample of
the leaves, scaled to every leaf of the same range (per-leaf cost x leaves).
Targets (reported, not asserted): real recipe ptdump < 1 s; 64 GiB model
linear-integrity < 10 s with peak memory < 1 GiB.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import numpy as np  # noqa: E402

import kmemdbg  # noqa: E402
from kmemdbg.audit import run_audit  # noqa: E402
from kmemdbg.memory import TableCache  # noqa: E402
from kmemdbg.ptdump import ptdump  # noqa: E402
from realdumps import all_dumps  # noqa: E402

G = 1 << 30


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fresh(k) -> None:
    k.walker.cache = TableCache(k.memory)


def leaf_sample(ranges, n, seed=3):
    """Up to ``n`` leaf addresses drawn from ``ranges`` (weighted by leaf count), and the leaf total."""
    total = sum(r.pages for r in ranges)
    rng = random.Random(seed)
    picks = sorted(rng.randrange(total) for _ in range(min(n, total)))
    out, acc, i = [], 0, 0
    for r in ranges:
        while i < len(picks) and picks[i] < acc + r.pages:
            out.append(r.start + (picks[i] - acc) * r.page_size)
            i += 1
        acc += r.pages
    return out, total


def drgn_per_leaf(prog, root_va, vas) -> float:
    import drgn
    import _drgn

    pgd = drgn.Object(prog, "void *", root_va)
    t = time.perf_counter()
    for va in vas:
        try:
            _drgn._linux_helper_follow_phys(prog, pgd, va)
        except drgn.FaultError:
            pass
    return (time.perf_counter() - t) / max(1, len(vas))


def measure(name, k, prog, sample):
    fresh(k)
    k.layout
    t = time.perf_counter()
    ranges = ptdump(k, split_pa=True, owners=False)
    t_ptdump = time.perf_counter() - t
    reads = k.walker.cache.reads
    fresh(k)
    t = time.perf_counter()
    report = run_audit(k, ["linear-integrity"])
    t_lin = time.perf_counter() - t
    vas, leaves = leaf_sample(ranges, sample)
    lin_ranges = [r for r in ranges if r.region.kind == "linear"]
    _, lin_leaves = leaf_sample(lin_ranges, 0)
    per = drgn_per_leaf(prog, k.tables.root_va, vas) if prog is not None else None
    print(f"{name}:")
    print(f"  full ptdump      {t_ptdump:8.3f} s  {len(ranges)} ranges, {leaves} leaves, {reads} table pages")
    print(f"  linear-integrity {t_lin:8.3f} s  {len(report.findings)} findings, {lin_leaves} linear leaves, "
          f"errors {report.errors}")
    if per is not None:
        est_all, est_lin = per * leaves, per * lin_leaves
        print(f"  drgn C walk      {per * 1e6:8.2f} us/leaf over {len(vas)} sampled leaves -> "
              f"{est_all:.2f} s for every leaf, {est_lin:.2f} s for the linear map")
        print(f"  ratio kmemdbg/drgn: ptdump {t_ptdump / est_all:.4f}, linear-integrity "
              f"{t_lin / max(est_lin, 1e-9):.4f}")
    print(f"  peak RSS so far  {peak_rss_kib() / 1024:8.1f} MiB")


def real(recipe, sample):
    dumps = [d for d in all_dumps() if d.recipe == recipe and not d.missing()]
    if not dumps:
        print(f"{recipe}: no dump (build it with python3 vmcores/build.py {recipe})")
        return
    dump = sorted(dumps, key=lambda d: d.kind != "full")[0]
    import drgn

    k = kmemdbg.open(core=dump.path)
    prog = drgn.Program()
    prog.set_core_dump(dump.path)
    measure(f"{dump.id}", k, prog, sample)


def big_model(gib: int):
    """x86-64 4-level model whose linear map covers ``gib`` GiB of RAM at 4 GiB with 4K leaves only."""
    from kmemdbg.kernel import Kernel, SymbolTable
    from kmemdbg.model import build_kernel
    from kmemdbg.model import x86
    from kmemdbg.vmcoreinfo import VmcoreInfo

    # no KASLR: with no ELF headers or symbols, layout discovery takes the default page_offset_base
    m = build_kernel("x86_64-4level", seed=1, ram_bytes=256 << 20, kaslr=False)
    mem, sp = m.memory, m.space
    base = 4 * G
    mem.add_ram(base, base + gib * G)
    leaf_bits = np.uint64(x86.leaf_entry(0, 4096, x86.PAGE_KERNEL))
    n_pte = gib * 512
    # the PTE tables live in the first pages of the bank they map
    table_pa = base
    frames = (np.arange(512, dtype=np.uint64) << np.uint64(12))
    for i in range(n_pte):
        first = np.uint64(base + i * (2 << 20))
        mem.write(table_pa + i * 4096, ((frames + first) | leaf_bits).tobytes())
    for g in range(gib):
        va = m.linear_va(base + g * G)
        pmd = sp.table_pa(va, 2)
        entries = np.array([x86.table_entry(table_pa + (g * 512 + j) * 4096) for j in range(512)],
                           dtype=np.uint64)
        mem.write(pmd, entries.tobytes())
    info = VmcoreInfo.parse(m.vmcoreinfo())
    k = Kernel.build(mem, info, "x86_64", f"model {gib} GiB 4K linear map", None,
                     SymbolTable.empty(), [])
    # the model is built without KASLR at the default bases, which its VMCOREINFO does not name
    k.guess_layout = True
    return m, k


def model(gib: int, sample: int):
    t = time.perf_counter()
    m, k = big_model(gib)
    print(f"model with {gib} GiB mapped by 4K pages built in {time.perf_counter() - t:.1f} s "
          f"(peak RSS {peak_rss_kib() / 1024:.0f} MiB)")
    try:
        prog = m.drgn_program()
    except Exception as err:  # noqa: BLE001 - drgn is optional for the model half
        print(f"  (no drgn program: {err})")
        prog = None
    measure(f"model-{gib}GiB-4K", k, prog, sample)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="arm64-6.12-lpa2")
    ap.add_argument("--gib", type=int, default=64)
    ap.add_argument("--sample", type=int, default=20000)
    args = ap.parse_args()
    real(args.recipe, args.sample)
    model(args.gib, args.sample)


if __name__ == "__main__":
    main()
