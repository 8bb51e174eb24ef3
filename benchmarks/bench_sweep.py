"""Whole-tree sweep speed on a model with 64 GiB of RAM direct-mapped by 4 KiB pages.

    python3 benchmarks/bench_sweep.py [--ram-gib 64] [--sample 200000] [--probe-mib 256]

A measurement only: it prints, it asserts nothing about time.

1. The model's own cost: ``AddressSpace.map`` of ``--probe-mib`` MiB with 4 KiB
   pages (time and traced bytes per page), extrapolated to the full size.  At
   that cost a 16M-entry linear map through ``map()`` would not fit a laptop,
   so step 2 builds it the low-level way.
2. A kernel model (x86-64 4-level, no KASLR) gets ``--ram-gib`` GiB of extra RAM
   at 4 GiB, direct-mapped with 4 KiB pages: the upper tables come from the
   model's ``AddressSpace.table_pa`` and every PTE table is written whole with
   the model's own encoder values (``X86Encoder.leaf`` of the first frame, the
   frame number added per entry).  The model's truth does not record these 16M
   leaves; the sweep's leaf count is checked against the construction instead.
3. The model is written as an ELF vmcore (only stored frames carry data: the
   page tables, ~130 MiB for 64 GiB) and both tools open that file: kmemdbg
   with ``open_core``, drgn with ``set_core_dump`` (a drgn Program over the
   model's Python read callback costs ~4x more per walk, so that would flatter
   kmemdbg).
4. ``tables.leaves()`` over the window (per-leaf cost), then drgn's C walker
   (``_linux_helper_follow_phys``) and kmemdbg's ``translate_many`` over
   ``--sample`` random addresses of the same window (per-address cost), printed
   as ratios, with peak RSS (``resource.getrusage``) after each stage.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import struct
import sys
import tempfile
import time
import tracemalloc

from kmemdbg.kernel_tables import kernel_tables
from kmemdbg.memory import TableCache
from kmemdbg.model import build_kernel
from kmemdbg.model import x86
from kmemdbg.session import open_core
from kmemdbg.tables import leaves
from kmemdbg.vmcoreinfo import VmcoreInfo
from kmemdbg.walk import Walker

G = 1 << 30
M = 1 << 20
PAGE = 4096
EXTRA_RAM_PA = 4 * G


def peak_mib() -> float:
    """Peak resident set of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe_model_map(mib: int) -> tuple:
    """(seconds per page, traced bytes per page) of the model's AddressSpace.map."""
    pages = mib * M // PAGE
    m = build_kernel("x86_64-4level", seed=1, kaslr=False)
    m.memory.add_ram(EXTRA_RAM_PA, EXTRA_RAM_PA + mib * M)
    t0 = time.perf_counter()
    m.space.map(m.linear_va(EXTRA_RAM_PA), EXTRA_RAM_PA, mib * M, PAGE)
    per_page = (time.perf_counter() - t0) / pages
    del m
    gc.collect()
    quarter = max(mib // 4, 2)
    m = build_kernel("x86_64-4level", seed=1, kaslr=False)
    m.memory.add_ram(EXTRA_RAM_PA, EXTRA_RAM_PA + quarter * M)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    m.space.map(m.linear_va(EXTRA_RAM_PA), EXTRA_RAM_PA, quarter * M, PAGE)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return per_page, used / (quarter * M // PAGE)


def build_big(ram_gib: int):
    """A kernel model plus ``ram_gib`` GiB at EXTRA_RAM_PA direct-mapped by 4 KiB PTEs."""
    m = build_kernel("x86_64-4level", seed=1, kaslr=False)
    size = ram_gib * G
    m.memory.add_ram(EXTRA_RAM_PA, EXTRA_RAM_PA + size)
    sp = m.space
    pte_depth = len(sp.geometry.levels) - 1
    first = sp.encoder.leaf(0, PAGE, True, x86.PAGE_KERNEL)   # pa 0: flags (and C-bit) only
    pack = struct.Struct("<512Q").pack
    va0 = m.linear_va(EXTRA_RAM_PA)
    for off in range(0, size, 2 * M):
        table_pa = sp.table_pa(va0 + off, pte_depth)
        pa = EXTRA_RAM_PA + off
        m.memory.write(table_pa, pack(*range(first | pa, (first | pa) + 512 * PAGE, PAGE)))
    return m, va0, va0 + size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ram-gib", type=int, default=64)
    ap.add_argument("--sample", type=int, default=200_000)
    ap.add_argument("--probe-mib", type=int, default=256)
    args = ap.parse_args()
    n_leaves = args.ram_gib * G // PAGE

    per_page, bytes_per_page = probe_model_map(args.probe_mib)
    print(f"model AddressSpace.map, 4K pages ({args.probe_mib} MiB probe): "
          f"{per_page * 1e6:.1f} us/page, {bytes_per_page:.0f} B/page traced")
    print(f"  extrapolated to {args.ram_gib} GiB ({n_leaves:,} pages): "
          f"{per_page * n_leaves:.0f} s, {bytes_per_page * n_leaves / G:.1f} GiB")
    print(f"peak RSS after probe: {peak_mib():.0f} MiB")

    t0 = time.perf_counter()
    m, lo, hi = build_big(args.ram_gib)
    print(f"bulk build of {n_leaves:,} PTEs in {(hi - lo) // (2 * M):,} PTE tables: "
          f"{time.perf_counter() - t0:.1f} s; peak RSS {peak_mib():.0f} MiB")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.core")
        t0 = time.perf_counter()
        m.write_vmcore(path)
        print(f"vmcore: {os.path.getsize(path) / M:.0f} MiB written in "
              f"{time.perf_counter() - t0:.1f} s")
        return measure(args, m, lo, hi, n_leaves, path)


def measure(args, m, lo: int, hi: int, n_leaves: int, path: str) -> int:
    session = open_core(path)
    kt = kernel_tables(VmcoreInfo.parse(m.vmcoreinfo()), "x86_64")
    assert (kt.root_pa, kt.format) == (session.tables.root_pa, session.tables.format)
    del m
    gc.collect()
    cache = TableCache(session.memory)
    t0 = time.perf_counter()
    count = 0
    for _ in leaves(kt.format, cache, kt.root_pa, lo, hi):
        count += 1
    t_sweep = time.perf_counter() - t0
    if count != n_leaves:
        print(f"WARNING: swept {count:,} leaves, built {n_leaves:,}", file=sys.stderr)
    per_leaf = t_sweep / max(count, 1)
    print(f"kmemdbg leaves(): {count:,} leaves in {t_sweep:.1f} s = {per_leaf * 1e6:.3f} us/leaf "
          f"({cache.reads:,} table reads); peak RSS {peak_mib():.0f} MiB")

    import drgn
    import _drgn
    prog = drgn.Program()
    prog.set_core_dump(path)
    root = drgn.Object(prog, "void *", kt.root_va)
    rng = random.Random(7)
    vas = [lo + rng.randrange(hi - lo) for _ in range(args.sample)]
    follow = _drgn._linux_helper_follow_phys
    t0 = time.perf_counter()
    faults = 0
    for va in vas:
        try:
            follow(prog, root, va)
        except drgn.FaultError:
            faults += 1
    per_drgn = (time.perf_counter() - t0) / len(vas)
    print(f"drgn C walker: {len(vas):,} addresses, {per_drgn * 1e6:.3f} us/address "
          f"({faults} faults); peak RSS {peak_mib():.0f} MiB")

    walker = Walker(kt.format, session.memory, kt.root_pa)
    t0 = time.perf_counter()
    batch = walker.translate_many(vas)
    per_batch = (time.perf_counter() - t0) / len(vas)
    wrong = sum(pa != (EXTRA_RAM_PA + va - lo) for va, pa in zip(vas, batch.pas))
    print(f"kmemdbg translate_many (fresh cache): {per_batch * 1e6:.3f} us/address "
          f"({wrong} differing from the construction)")

    print(f"ratio kmemdbg per leaf (sweep) / drgn per address (C walk): {per_leaf / per_drgn:.2f}")
    print(f"ratio kmemdbg per address (batch) / drgn per address: {per_batch / per_drgn:.2f}")
    print(f"full-range drgn equivalent: {per_drgn * n_leaves:.0f} s for {n_leaves:,} walks "
          f"vs {t_sweep:.0f} s sweep")
    print(f"peak RSS: {peak_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
