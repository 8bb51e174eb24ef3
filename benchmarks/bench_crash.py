"""``kmemdbg ptdump`` inside crash against the command line on the same dump.

    python3 benchmarks/bench_crash.py [--kind elf|kdump] [--runs 3]

Needs what the crash tests need (``.ci/setup``: crash, the extension, the
x86-64 6.1 recipe and its debug vmlinux).  Prints, per run, the time of the
first ``kmemdbg ptdump`` inside one crash session (the child's start and the
kernel's open included), of a repeated one, their pipe round trips, and the
command line's whole-process time on the same file, with the ratio (target:
at most 2).  A measurement only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import crash_helpers as ch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", default="elf", choices=("elf", "kdump"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    missing = ch.missing()
    if missing:
        print(missing)
        return 1
    dump = ch.dump_path(args.kind)
    for run in range(args.runs):
        log = ch.run_crash(dump, ["kmemdbg ptdump > /dev/null", "kmemdbg ptdump > /dev/null", "kmemdbg __stats"],
                           env={"KMEMDBG_CRASH_TEST": "1"})
        stats = json.loads(next(ln for ln in log.splitlines() if ln.startswith('{"round_trips"')))
        first, again = stats["commands"][0], stats["commands"][1]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kmemdbg", "--core", dump, "ptdump"], stdout=subprocess.DEVNULL,
                       check=True)
        cli_s = time.perf_counter() - t0
        print(f"run {run + 1}: inside crash {first['seconds']:.2f} s ({first['round_trips']} round trips), "
              f"repeated {again['seconds']:.2f} s ({again['round_trips']}); command line {cli_s:.2f} s; "
              f"ratio {first['seconds'] / cli_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
