#!/usr/bin/env python3
"""drgn as an independent oracle for one built recipe: usage
``drgn_oracle.py RECIPE_DIR`` prints one JSON document on stdout.

It opens the recipe's QEMU ELF dump with drgn alone (no debug info, no
kmemdbg code: run it with DRGN_DISABLE_PLUGINS=* so that no installed drgn
plugin runs either), loads the kernel's kallsyms from the VMCOREINFO tables,
and for every vmalloc area and module in truth.json asks drgn's C page-table
walker (_drgn._linux_helper_follow_phys from swapper_pg_dir) for the
physical address, and reads the virtual address. Run in a child process so
that a crash inside drgn cannot take pytest down with it.
"""

import json
import os
import sys
from typing import Any, Dict

import _drgn
import drgn

PLATFORMS = {
    "x86_64": drgn.Platform(drgn.Architecture.X86_64,
                            drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN),
    "aarch64": drgn.Platform(drgn.Architecture.AARCH64,
                             drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN),
}


def open_dump(path: str, arch: str) -> "tuple[drgn.Program, str]":
    """Open with drgn's own platform detection first, an explicit platform second."""
    prog = drgn.Program()
    try:
        prog.set_core_dump(path)
        if prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
            return prog, "detected"
    except Exception:
        pass
    prog = drgn.Program(PLATFORMS[arch])
    prog.set_core_dump(path)
    return prog, "explicit"


def probe(prog: drgn.Program, pgd: drgn.Object, va: int) -> Dict[str, Any]:
    out = {"va": "0x%x" % va, "pa": None, "walk_error": None, "read_ok": False,
           "read_error": None, "phys_read_equal": None}  # type: Dict[str, Any]
    try:
        pa = _drgn._linux_helper_follow_phys(prog, pgd, va)
        out["pa"] = "0x%x" % pa
    except Exception as exc:  # FaultError for unmapped addresses
        out["walk_error"] = "%s: %s" % (type(exc).__name__, exc)
        pa = None
    try:
        data = prog.read(va, 8)
        out["read_ok"] = True
        if pa is not None:
            out["phys_read_equal"] = prog.read(pa, 8, True) == data
    except Exception as exc:
        out["read_error"] = "%s: %s" % (type(exc).__name__, exc)
    return out


def main(recipe_dir: str) -> Dict[str, Any]:
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    with open(os.path.join(recipe_dir, "truth.json")) as f:
        truth = json.load(f)
    with open(os.path.join(recipe_dir, "manifest.json")) as f:
        manifest = json.load(f)
    arch = manifest["recipe_content"]["arch"]
    page_size = int(truth["vmcoreinfo"]["PAGESIZE"])
    prog, how = open_dump(os.path.join(recipe_dir, manifest["elf_dump"]), arch)
    result = {"platform": str(prog.platform), "opened": how, "flags": str(prog.flags)}  # type: Dict[str, Any]

    kallsyms = {}  # type: Dict[str, Optional[str]]
    try:
        index = load_vmlinux_kallsyms(prog)
        prog.register_symbol_finder("vmcoreinfo-kallsyms", index, enable_index=0)
        for name in truth["kallsyms"]:
            try:
                kallsyms[name] = "0x%x" % prog.symbol(name).address
            except LookupError:
                kallsyms[name] = None
        result["kallsyms_error"] = None
    except Exception as exc:
        result["kallsyms_error"] = "%s: %s" % (type(exc).__name__, exc)
    result["kallsyms"] = kallsyms

    pgd = drgn.Object(prog, "void *", int(truth["vmcoreinfo"]["SYMBOL(swapper_pg_dir)"], 16))
    areas = []  # type: List[Dict[str, Any]]
    for area in truth["vmalloc_areas"]:
        start = int(area["start"], 16)
        entry = {"start": area["start"], "flags": area["flags"], "phys": area["phys"],
                 "first": probe(prog, pgd, start)}
        if area.get("pages"):
            entry["last"] = probe(prog, pgd, start + (area["pages"] - 1) * page_size)
        areas.append(entry)
    result["vmalloc_areas"] = areas
    result["modules"] = [dict(name=m["name"], **probe(prog, pgd, int(m["address"], 16)))
                         for m in truth["modules"]]
    return result


if __name__ == "__main__":
    json.dump(main(sys.argv[1]), sys.stdout)
