"""Per-address costs through the public API, against drgn in the same run (issue 12's table).

    python3 benchmarks/per_address.py [--recipe x86_64-6.12-l4] [--n 10000 --n 100000] [--seed 1]

Addresses are DISTINCT and in random order: every page the kernel's page
tables map in the vmalloc, module, image and linear regions of one real dump
(found by kmemdbg's own sweep), shuffled; where N exceeds the mapped pages,
distinct 8-byte-aligned offsets inside those pages are added (said in the
output).  A small sample repeated to N would measure the memo, not the code.

Rows, each as microseconds per address and as a ratio kmemdbg / drgn:

- ``Kernel.read(va, 8)`` vs ``prog.read(va, 8)``; ``read(va, 4096)`` vs ``prog.read(va, 4096)``;
  where some mapped pages have no bytes in the dump (drgn says which), the 8-byte row is
  also shown for each part, as a read that fails costs a raised error in both tools; the
  8-byte row is the first read of each page in this process, and kmemdbg reads the dump
  through a map, so it also prints the minor page faults per read that pass took and the
  same reads again (every page then mapped): what the kernel's first touch of a mapped
  page costs, apart from kmemdbg's own code.  That cost depends on how the page cache holds
  the dump: a file just written in small pieces (QEMU's dump, as the fixtures are made) is
  cached in 4 KiB folios, and a fault maps at most fault-around's 16 of them; a file read
  from storage may be cached in large folios, of which a fault maps far more at once
  (Linux 6.18 on ext4 here: 0.03 faults per first read against 0.3).  So the first-touch
  row is measured twice: with the page cache as the run found it, and at the end, after
  the dump's cached pages are dropped (``POSIX_FADV_DONTNEED``, this file only) and the
  file is read once again, as when a dump saved earlier is opened
- ``Kernel.translate(va)`` with its full step record on a fresh walker (uncached) and on
  one walker whose tables are cached, vs drgn's C walker (``follow_phys``)
- ``Kernel.classify(va)`` and ``Kernel.check_many(vas)``, linear in N (each N printed), on a
  kernel whose one-time loads (layout, BTF, kallsyms, vmap areas, module lists, tasks) were
  done by one call per region kind on addresses outside the timed set; those calls are
  printed apart
- ``Kernel.translate_many(vas)`` vs the C walker
- start-up: ``python3 -m kmemdbg --core X layout`` vs ``drgn -c X -e pass`` (best of 3, each
  with its bytecode compiled, as an installed wheel has it)

``KMEMDBG_PURE_PYTHON=1 python3 benchmarks/per_address.py ...`` measures the pure-Python
walker (the reference) instead of the compiled inner loop.

A measurement only: it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import drgn  # noqa: E402
import _drgn  # noqa: E402

import kmemdbg  # noqa: E402
from kmemdbg.errors import KmemdbgError  # noqa: E402
from kmemdbg.ptdump import ptdump  # noqa: E402
from kmemdbg.walk import Walker  # noqa: E402
from realdumps import all_dumps  # noqa: E402

KINDS = ("vmalloc", "module", "kernel-image", "linear")


def distinct_addresses(k, n: int, seed: int):
    """(vas, mix): n distinct mapped kernel virtual addresses in random order, and their region counts."""
    pages = []
    for r in ptdump(k, owners=False):
        if r.region.kind in KINDS:
            pages += [(va, r.region.kind) for va in range(r.start, min(r.end, r.start + (64 << 20)), 4096)]
    rng = random.Random(seed)
    rng.shuffle(pages)
    out = [(va + rng.randrange(0, 4096, 8), kind) for va, kind in pages[:n]]
    extra = 0
    seen = {va for va, _ in out}
    while len(out) < n and pages:
        va, kind = pages[rng.randrange(len(pages))]
        va += rng.randrange(0, 4096, 8)
        if va not in seen:
            seen.add(va)
            out.append((va, kind))
            extra += 1
    rng.shuffle(out)
    return out, extra


def split_spares(pairs, n: int):
    """(vas, mix, spares): ``n`` addresses to time and one more of each region kind, kept apart
    to warm a kernel's one-time loads (vmap areas, task stacks, modules, slab caches)."""
    spares, rest, seen = [], [], set()
    for va, kind in pairs:
        if kind not in seen:
            seen.add(kind)
            spares.append(va)
        else:
            rest.append((va, kind))
    rest = rest[:n]
    return [va for va, _ in rest], collections.Counter(kind for _, kind in rest), spares


def warm_file(path: str) -> None:
    """Read the dump once, so neither tool's first timed row pays for the disk."""
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def reread_file(path: str) -> None:
    """Drop this file's pages from the page cache (none of them may be mapped then) and read
    it once, so the cache holds it as a read from storage leaves it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    warm_file(path)


def first_touch(k, prog, vas, label: str) -> None:
    """The 8-byte read row on the first read of each page through ``k``'s map, with the minor
    page faults per read that pass took."""
    faults = minor_faults()
    ours = per(quiet(lambda va: k.read(va, 8)), vas)
    faults = (minor_faults() - faults) / len(vas)
    row(label, ours, per(quiet(lambda va: prog.read(va, 8)), vas))
    print(f"  (that pass: {faults:.2f} minor page faults per kmemdbg read)")


def minor_faults() -> int:
    """Minor page faults this process has taken so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def per(fn, items) -> float:
    t = time.perf_counter()
    for x in items:
        fn(x)
    return (time.perf_counter() - t) / max(1, len(items)) * 1e6


def quiet(fn):
    def call(x):
        try:
            fn(x)
        except (KmemdbgError, drgn.FaultError):
            pass
    return call


def readable_by_drgn(prog, vas):
    """(held, lacked): the addresses whose 8 bytes drgn reads from the dump, and the rest
    (mapped pages whose frames the dump does not hold, such as ioremapped device memory)."""
    held, lacked = [], []
    for va in vas:
        try:
            prog.read(va, 8)
            held.append(va)
        except drgn.FaultError:
            lacked.append(va)
    return held, lacked


def installed_env() -> dict:
    """The environment of a command run as installed from the wheel: bytecode compiled and kept.

    An editable checkout run with PYTHONDONTWRITEBYTECODE recompiles every
    module each time (0.2 s here), which an installed wheel never does;
    drgn's own modules are compiled at install time.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "kmemdbg-bench-pycache")
    return env


def best_of(cmd, tries: int = 3) -> float:
    env = installed_env()
    subprocess.run(cmd, capture_output=True, cwd=ROOT, env=env)        # compiles the bytecode once
    best = None
    for _ in range(tries):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, cwd=ROOT, env=env)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best


def machine_speed() -> float:
    """Milliseconds for 10^6 iterations of ``s += i`` in this interpreter (best of 3): how fast
    this machine runs Python now, to compare absolute rows between runs; ratios need no such
    scale."""
    best = None
    for _ in range(3):
        t, s = time.perf_counter(), 0
        for i in range(1000000):
            s += i
        dt = (time.perf_counter() - t) * 1e3
        best = dt if best is None else min(best, dt)
    return best


def row(name: str, ours: float, theirs=None) -> None:
    ratio = f"  ratio {ours / theirs:6.2f}" if theirs else ""
    base = f"  drgn {theirs:8.2f} us" if theirs else ""
    print(f"{name:<34} {ours:8.2f} us{base}{ratio}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="x86_64-6.12-l4")
    ap.add_argument("--n", type=int, action="append")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    ns = sorted(a.n or [10000])
    dumps = [d for d in all_dumps() if d.recipe == a.recipe and d.kind == "full" and not d.missing()]
    if not dumps:
        print(f"no full dump for {a.recipe} (python3 vmcores/build.py {a.recipe})", file=sys.stderr)
        return 2
    path = dumps[0].path
    warm_file(path)
    k = kmemdbg.open(core=path)
    opened = [k]
    prog = drgn.Program()
    prog.set_core_dump(path)
    pairs, extra = distinct_addresses(k, max(ns) + len(KINDS), a.seed)
    vas, mix, spares = split_spares(pairs, max(ns))
    print(f"machine: 10^6 iterations of s += i take {machine_speed():.0f} ms")
    print("walker: " + ("compiled inner loop (kmemdbg._walkc)" if k.walker._accel is not None else
                        "pure Python (KMEMDBG_PURE_PYTHON set, or kmemdbg._walkc not built)"))
    print(f"dump: {a.recipe} (full), {k.tables.format.name}; N up to {len(vas)} distinct addresses in random "
          f"order ({extra} of them extra offsets in already-chosen pages); mix {dict(mix)}")
    seen_pages = set()
    n0 = []             # per-address rows: one address in each of ns[0] distinct pages
    for va in vas:
        if va >> 12 not in seen_pages:
            seen_pages.add(va >> 12)
            n0.append(va)
            if len(n0) == ns[0]:
                break
    print(f"read/translate rows: {len(n0)} addresses, each in a distinct 4 KiB page")
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    follow = _drgn._linux_helper_follow_phys
    c_walk = per(quiet(lambda va: follow(prog, pgd, va)), n0)

    first_touch(k, prog, n0, "read(va, 8)")
    row("  the same reads again", per(quiet(lambda va: k.read(va, 8)), n0),
        per(quiet(lambda va: prog.read(va, 8)), n0))
    held, lacked = readable_by_drgn(prog, n0)
    if lacked:          # e.g. ioremapped device pages: mapped, but no bytes in the dump
        row(f"  of which in the dump ({len(held)})", per(quiet(lambda va: k.read(va, 8)), held),
            per(quiet(lambda va: prog.read(va, 8)), held))
        row(f"  of which not in it ({len(lacked)})", per(quiet(lambda va: k.read(va, 8)), lacked),
            per(quiet(lambda va: prog.read(va, 8)), lacked))
    pages = [va & ~0xFFF for va in n0[:2000]]
    row("read(va, 4096)", per(quiet(lambda va: k.read(va, 4096)), pages),
        per(quiet(lambda va: prog.read(va, 4096)), pages))
    fmt, mem, root = k.tables.format, k.memory, k.tables.root_pa
    row("translate uncached (fresh walker)", per(lambda va: Walker(fmt, mem, root).walk(va), n0[:3000]), c_walk)
    warm = Walker(fmt, mem, root)
    warm.translate_many(n0)
    row("translate, tables cached", per(warm.walk, n0), c_walk)
    t = time.perf_counter()
    Walker(fmt, mem, root).translate_many(n0)
    row("translate_many (fresh cache)", (time.perf_counter() - t) / len(n0) * 1e6, c_walk)
    for n in ns:
        sub = vas[:n]
        k2 = kmemdbg.open(core=path)
        opened.append(k2)
        t = time.perf_counter()
        k2.layout
        for va in spares:
            k2.classify(va)
        once = time.perf_counter() - t
        row(f"classify N={n}", per(k2.classify, sub))
        k3 = kmemdbg.open(core=path)
        opened.append(k3)
        k3.layout
        k3.check_many(spares)
        t = time.perf_counter()
        k3.check_many(sub)
        row(f"check_many N={n}", (time.perf_counter() - t) / n * 1e6)
        print(f"{'  (one-time loads, 1 addr per kind)':<34} {once * 1e3:8.1f} ms, not in the rows)")
    ours = best_of([sys.executable, "-m", "kmemdbg", "--core", path, "layout"])
    theirs = best_of(["drgn", "-c", path, "-e", "pass"])
    print(f"{'start-up: layout vs drgn -e pass':<34} {ours:8.2f} s   drgn {theirs:8.2f} s   "
          f"difference {ours - theirs:+.2f} s")
    for kernel in opened:       # unmapped, so that the dump's cached pages can be dropped
        kernel.memory.close()
    reread_file(path)
    k = kmemdbg.open(core=path)
    first_touch(k, prog, n0, "read(va, 8), the dump read afresh")
    k.memory.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
