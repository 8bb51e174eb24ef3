"""Speed and memory of the whole ``virt-to-phys-misuse`` rule, against drgn reading the same bytes.

    python3 benchmarks/misuse_speed.py model [--ram-gib 64]
    python3 benchmarks/misuse_speed.py dump PATH [PATH...]

A measurement only: it prints, it asserts nothing about time.

``model``: an MMU model of x86-64 4-level with ``--ram-gib`` GiB of extra RAM
direct-mapped by 4 KiB pages (``bench_sweep.build_big``: 16M PTEs for 64
GiB), written as an ELF vmcore; the whole linear window is declared as data
to scan, so the rule reads and matches every word of 64 GiB against the
forms of every vmalloc page.  Targets (issue 9): under 120 s, peak RSS under
1 GiB.

``guest``: boots a recipe's kernel (default x86_64-6.12-l4, built by
vmcores/build.py) with ``--memory`` (default 1G) and the probe, dumps it over
QMP into a temporary ELF file and measures that; target under 10 s for 1 GiB.
``dump``: any dump files.

Each run prints bytes scanned per memory kind, bytes per second, peak RSS,
and the ratio against drgn reading the same physical spans (``prog.read(pa,
n, True)`` in the same chunk size): the floor any drgn-based scanner would
pay before looking at a word.  Ratio < 1 means the whole rule (sweep,
planning, struct page classification, matching, evidence) costs less than
drgn's reads alone.
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kmemdbg  # noqa: E402
from kmemdbg.audit import AuditContext, run_audit  # noqa: E402
from kmemdbg.audit.memkinds import plan  # noqa: E402

G = 1 << 30
M = 1 << 20
CHUNK = 1 << 20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def drgn_read_seconds(path: str, spans, limit_bytes: int) -> tuple:
    """(seconds drgn takes to read ``spans`` physically, bytes it was asked for), measured on up
    to ``limit_bytes`` of them and scaled to the whole."""
    import drgn

    prog = drgn.Program()
    prog.set_core_dump(path)
    total = sum(s.size for s in spans)
    asked = 0
    t0 = time.perf_counter()
    for s in spans:
        pos = 0
        while pos < s.size and asked < limit_bytes:
            n = min(CHUNK, s.size - pos)
            try:
                prog.read(s.pa + pos, n, True)
            except drgn.FaultError:
                pass
            asked += n
            pos += n
        if asked >= limit_bytes:
            break
    spent = time.perf_counter() - t0
    return (spent * total / asked if asked else 0.0), total


def report(name: str, path: str, ctx_factory, drgn_limit: int) -> None:
    k = kmemdbg.open(core=path)
    ctx = ctx_factory(k)
    gc.collect()
    t0 = time.perf_counter()
    result = run_audit(k, ["virt-to-phys-misuse"], context=ctx)
    seconds = time.perf_counter() - t0
    stats = [f for f in result.findings if f.kind == "statistics"]
    if result.errors or not stats:
        print(f"{name}: the rule did not run: {result.errors}")
        return
    ev = stats[0].evidence_dict()
    kinds = {key[:-6]: v for key, v in ev.items() if key.endswith("_bytes")}
    total = ev["bytes"]
    print(f"{name}: rule {seconds:.1f} s over {total / M:.0f} MiB "
          f"({total / seconds / M:.0f} MiB/s); peak RSS {peak_mib():.0f} MiB")
    print("  per kind (MiB): " + ", ".join(f"{k_} {v / M:.1f}" for k_, v in kinds.items()))
    above = [f for f in result.at_least("low")]
    print(f"  findings above info: {len(above)} ({', '.join(sorted({f.kind for f in above}))})")
    spans = plan(ctx_factory(kmemdbg.open(core=path))).spans
    t_drgn, asked = drgn_read_seconds(path, spans, drgn_limit)
    print(f"  drgn prog.read(pa, 1 MiB, physical) of the same {asked / M:.0f} MiB: {t_drgn:.1f} s "
          f"(measured on {min(asked, drgn_limit) / M:.0f} MiB); ratio kmemdbg/drgn {seconds / t_drgn:.2f}"
          if t_drgn else "  drgn: nothing to read")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    mo = sub.add_parser("model")
    mo.add_argument("--ram-gib", type=int, default=64)
    du = sub.add_parser("dump")
    du.add_argument("paths", nargs="+")
    gu = sub.add_parser("guest")
    gu.add_argument("--recipe", default="x86_64-6.12-l4")
    gu.add_argument("--memory", default="1G")
    args = ap.parse_args()
    if args.what == "guest":
        return guest(args.recipe, args.memory)
    if args.what == "dump":
        for p in args.paths:
            report(os.path.basename(os.path.dirname(p)) or p, p, lambda k: AuditContext(k), 8 * G)
        return 0
    from bench_sweep import build_big

    from kmemdbg.audit import Area

    t0 = time.perf_counter()
    m, lo, hi = build_big(args.ram_gib)
    ps = m.params["page_size"]
    areas = []
    for _ in range(64):
        va = m.vmalloc(4 * ps)
        areas.append(Area(va, va + 5 * ps, va + 4 * ps, "model vmalloc", ("vmalloc",)))
    print(f"model: {args.ram_gib} GiB direct-mapped by 4 KiB pages built in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.core")
        m.write_vmcore(path)
        del m
        gc.collect()
        print(f"vmcore {os.path.getsize(path) / M:.0f} MiB; peak RSS so far {peak_mib():.0f} MiB")

        def ctx(k):
            return AuditContext(k, areas=areas, sections={}, module_sections=[],
                                static_data=[(lo, hi, "the model's extra RAM")])
        report(f"{args.ram_gib} GiB model", path, ctx, 4 * G)
    return 0


def guest(recipe: str, memory: str) -> int:
    """Boot ``recipe`` with ``memory`` of RAM, dump it over QMP, measure the dump."""
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "live"))
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from guestlib import Guest, recipe_guest
    from test_live_arm64_qmp import INIT, MODULES
    from vmcores.qmp import QMP

    argv, _rec, wd = recipe_guest(recipe, "kmemdbg-bench-", INIT, MODULES, ["mon.sock"])
    argv[argv.index("-m") + 1] = memory
    dump = os.path.join(wd, "guest.elf")
    t0 = time.perf_counter()
    with Guest(argv, wd) as g:
        g.wait_for("@@KMEMDBG READY@@", 600)
        mon = QMP(os.path.join(wd, "mon.sock"))
        try:
            mon.execute("stop")
            mon.execute("dump-guest-memory", {"paging": False, "protocol": "file:" + dump}, timeout=600)
        finally:
            mon.close()
    print(f"{recipe} with {memory}: booted and dumped ({os.path.getsize(dump) / M:.0f} MiB) in "
          f"{time.perf_counter() - t0:.0f} s")
    try:
        report(f"{recipe} {memory} guest", dump, lambda k: AuditContext(k), 8 * G)
    finally:
        import shutil
        shutil.rmtree(wd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
