#!/usr/bin/env python3
"""Reproduce what drgn / libkdumpfile / makedumpfile get wrong on the dumps
that vmcores/build.py makes:  python3 vmcores/repro.py [RECIPE...]

Prints one line per check and recipe: REPRODUCED (the failure is there),
absent (the tool did the right thing) or skipped. Uses drgn alone (installed
drgn plugins are disabled) and the makedumpfile binary; never kmemdbg.
Exit status is 0 whatever is found: this records behaviour, it does not test it.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Tuple

os.environ["DRGN_DISABLE_PLUGINS"] = "*"

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vmcores import build  # noqa: E402

Result = Tuple[str, str]  # (verdict, detail)


def _platform(arch: str) -> Any:
    import drgn
    a = drgn.Architecture.X86_64 if arch == "x86_64" else drgn.Architecture.AARCH64
    return drgn.Platform(a, drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN)


def _err(exc: BaseException) -> str:
    return ("%s: %s" % (type(exc).__name__, exc)).replace("\n", " ")[:200]


def check_kdump_needs_platform(d: str, truth: Dict[str, Any], arch: str) -> Result:
    """drgn cannot open QEMU's kdump file without an explicit platform."""
    import drgn
    try:
        drgn.Program().set_core_dump(os.path.join(d, build.KDUMP_NAME))
    except Exception as exc:
        return "REPRODUCED", _err(exc)
    return "absent", "opened without a platform"


def check_kdump_virtual_read(d: str, truth: Dict[str, Any], arch: str) -> Result:
    """Virtual read of the first module's base: kdump (libkdumpfile) vs ELF."""
    import drgn
    va = int(truth["modules"][0]["address"], 16)
    elf = drgn.Program()
    elf.set_core_dump(os.path.join(d, build.ELF_NAME))
    want = elf.read(va, 8)
    prog = drgn.Program(_platform(arch))
    prog.set_core_dump(os.path.join(d, build.KDUMP_NAME))
    try:
        got = prog.read(va, 8)
    except Exception as exc:
        return "REPRODUCED", "read(0x%x) failed on kdump, works on ELF: %s" % (va, _err(exc))
    if got != want:
        return "REPRODUCED", "read(0x%x) kdump %s != ELF %s" % (va, got.hex(), want.hex())
    return "absent", "read(0x%x) same bytes as ELF" % va


def check_kdump_physical_read(d: str, truth: Dict[str, Any], arch: str) -> Result:
    """Physical read of the second page of the first System RAM range."""
    import drgn
    ram = [int(r["start"], 16) for r in truth["iomem"] if r["name"] == "System RAM"]
    pa = ram[0] + int(truth["vmcoreinfo"]["PAGESIZE"])
    elf = drgn.Program()
    elf.set_core_dump(os.path.join(d, build.ELF_NAME))
    want = elf.read(pa, 8, True)
    prog = drgn.Program(_platform(arch))
    prog.set_core_dump(os.path.join(d, build.KDUMP_NAME))
    try:
        got = prog.read(pa, 8, True)
    except Exception as exc:
        return "REPRODUCED", "physical read(0x%x) failed on kdump, works on ELF: %s" % (pa, _err(exc))
    if got != want:
        return "REPRODUCED", "physical read(0x%x) kdump %s != ELF %s" % (pa, got.hex(), want.hex())
    return "absent", "physical read(0x%x) same bytes as ELF" % pa


def check_kdump_header(d: str, truth: Dict[str, Any], arch: str) -> Result:
    """QEMU's kdump header: empty utsname.sysname, block_size vs PAGESIZE,
    sub-header phys_base vs VMCOREINFO."""
    with open(os.path.join(d, build.KDUMP_NAME), "rb") as f:
        head = f.read(464)
        # disk_dump_header: signature[8], header_version, new_utsname (6 x 65),
        # then a timeval at 408 and the int fields from status at 424.
        sysname = head[12:12 + 65].rstrip(b"\0").decode(errors="replace")
        machine = head[12 + 4 * 65:12 + 5 * 65].rstrip(b"\0").decode(errors="replace")
        block_size = struct.unpack_from("<i", head, 428)[0]
        f.seek(block_size)
        sub_phys_base = struct.unpack("<Q", f.read(8))[0]
    vi = truth["vmcoreinfo"]
    page = int(vi["PAGESIZE"])
    if arch == "x86_64":
        want = int(vi["NUMBER(phys_base)"]) & ((1 << 64) - 1)
    else:
        want = int(vi["NUMBER(PHYS_OFFSET)"], 16)
    problems = []
    if not sysname:
        problems.append("utsname.sysname empty (machine=%r)" % machine)
    if block_size != page:
        problems.append("block_size %d != PAGESIZE %d" % (block_size, page))
    if sub_phys_base != want:
        problems.append("sub-header phys_base 0x%x != vmcoreinfo 0x%x" % (sub_phys_base, want))
    return ("REPRODUCED", "; ".join(problems)) if problems else ("absent", "header consistent")


def check_makedumpfile_elf(d: str, truth: Dict[str, Any], arch: str) -> Result:
    """makedumpfile refuses QEMU 7.2's ELF dump as written (x86-64 only: the
    Debian makedumpfile build cannot read arm64 dumps at all)."""
    if arch != "x86_64":
        return "skipped", "Debian's makedumpfile is built for x86-64 dumps only"
    with tempfile.TemporaryDirectory(prefix="kmemdbg-repro-") as tmp:
        try:
            proc = subprocess.run(["makedumpfile", "-c", "-d", "1", os.path.join(d, build.ELF_NAME),
                                   os.path.join(tmp, "out")], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return "skipped", _err(exc)
    lines = [ln for ln in proc.stdout.decode(errors="replace").splitlines() if ln.strip()]
    if proc.returncode != 0:
        return "REPRODUCED", "exit %d: %s" % (proc.returncode, lines[0] if lines else "")
    return "absent", "makedumpfile accepted the ELF dump"


CHECKS = [
    ("kdump-needs-platform", check_kdump_needs_platform),
    ("kdump-virtual-read", check_kdump_virtual_read),
    ("kdump-physical-read", check_kdump_physical_read),
    ("kdump-header", check_kdump_header),
    ("makedumpfile-qemu-elf", check_makedumpfile_elf),
]  # type: List[Tuple[str, Callable[[str, Dict[str, Any], str], Result]]]


def main(argv: List[str]) -> int:
    names = argv or list(build.load_recipes()["recipes"])
    for name in names:
        d = build.built(name)
        if d is None:
            print("%-18s %-22s skipped  not built: python3 vmcores/build.py %s" % (name, "*", name))
            continue
        with open(os.path.join(d, "truth.json")) as f:
            truth = json.load(f)
        with open(os.path.join(d, "manifest.json")) as f:
            arch = json.load(f)["recipe_content"]["arch"]
        for check, fn in CHECKS:
            try:
                verdict, detail = fn(d, truth, arch)
            except Exception as exc:  # an unexpected failure is itself worth seeing
                verdict, detail = "error", _err(exc)
            print("%-18s %-22s %-10s %s" % (name, check, verdict, detail), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
