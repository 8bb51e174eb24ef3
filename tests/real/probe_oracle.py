#!/usr/bin/env python3
"""drgn's C page-table walker over a list of addresses, in a child process.

Usage: ``probe_oracle.py`` with one JSON document on stdin:
``{"path": DUMP, "arch": "x86_64"|"aarch64", "pgd": "0x...", "walk": ["0x..."],
"read": [["0x<va>", NBYTES], ...]}``. Prints one JSON document: ``walk`` maps
each VA to drgn's physical address (or null when drgn says it is not
mapped), ``read`` maps each VA to the hex of NBYTES read *physically* at the
address drgn's walk gave (null if unmapped or not in the dump), ``errors``
keeps drgn's messages. No kmemdbg code runs here (start it with
DRGN_DISABLE_PLUGINS=*): drgn alone, from swapper_pg_dir.
"""

import json
import sys
from typing import Any, Dict, Optional

import _drgn
import drgn

PLATFORMS = {
    "x86_64": drgn.Platform(drgn.Architecture.X86_64,
                            drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN),
    "aarch64": drgn.Platform(drgn.Architecture.AARCH64,
                             drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN),
}


def open_dump(path: str, arch: str) -> drgn.Program:
    prog = drgn.Program()
    try:
        prog.set_core_dump(path)
        if prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
            return prog
    except Exception:
        pass
    prog = drgn.Program(PLATFORMS[arch])
    prog.set_core_dump(path)
    return prog


def main(req: Dict[str, Any]) -> Dict[str, Any]:
    prog = open_dump(req["path"], req["arch"])
    pgd = drgn.Object(prog, "void *", int(req["pgd"], 16))
    errors = {}  # type: Dict[str, str]

    def walk(va: int) -> Optional[int]:
        try:
            return _drgn._linux_helper_follow_phys(prog, pgd, va)
        except Exception as exc:  # drgn.FaultError: not mapped
            errors["0x%x" % va] = "%s: %s" % (type(exc).__name__, exc)
            return None

    walks = {}  # type: Dict[str, Optional[str]]
    for text in req.get("walk", []):
        pa = walk(int(text, 16))
        walks[text] = None if pa is None else "0x%x" % pa
    reads = {}  # type: Dict[str, Optional[str]]
    for text, size in req.get("read", []):
        pa = walk(int(text, 16))
        data = None
        if pa is not None:
            try:
                data = prog.read(pa, size, True).hex()
            except Exception as exc:  # not in the dump (a slice keeps few pages)
                errors["pa 0x%x" % pa] = "%s: %s" % (type(exc).__name__, exc)
        reads[text] = data
    return {"walk": walks, "read": reads, "errors": errors, "flags": str(prog.flags)}


if __name__ == "__main__":
    json.dump(main(json.load(sys.stdin)), sys.stdout)
