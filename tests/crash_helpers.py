"""Running the real crash utility with kmemdbg's extension, for the tests.

crash 8.0.2 (Debian's package) needs a DWARF vmlinux: the recipe kernel's
``linux-image-…-dbg`` vmlinux, fetched by ``.ci/setup`` into the cache
(``python3 .ci/fetch_dbg_vmlinux.py RECIPE``).  Everything here skips with
one line naming that command when crash, the vmlinux or the dump is missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

import realdumps

#: The recipe the crash tests run on: crash 8.0.2 opens Debian 6.1 dumps with no options.
RECIPE = "x86_64-6.1-l4"
SETUP = "bash .ci/setup"
#: Seconds one crash session may take (start-up is ~5 s; ptdump and audit add a few).
CRASH_TIMEOUT_S = 600


def missing(recipe: str = RECIPE) -> str:
    """Why the crash tests cannot run here (one line naming the setup command), or ''."""
    if shutil.which("crash") is None:
        return f"crash is not installed: run {SETUP} (apt-get install crash)"
    if not os.path.exists("/usr/include/crash/defs.h"):
        return f"crash's headers (/usr/include/crash/defs.h) are missing: run {SETUP}"
    dump = os.path.join(realdumps.cache_dir(), recipe, "vmcore.elf")
    if not os.path.exists(dump):
        return f"recipe {recipe} not built: run python3 vmcores/build.py {recipe} (or {SETUP})"
    if realdumps.debug_vmlinux(recipe) is None:
        return (f"no debug vmlinux for {recipe}: run python3 .ci/fetch_dbg_vmlinux.py {recipe} "
                f"(part of {SETUP})")
    return ""


def dump_path(kind: str, recipe: str = RECIPE) -> str:
    return os.path.join(realdumps.cache_dir(), recipe, "vmcore.elf" if kind == "elf" else "vmcore.kdump")


_SO: Dict[str, str] = {}


def extension() -> str:
    """The extension, built once per test run into a temporary directory."""
    if "so" not in _SO:
        from kmemdbg.crash import build

        _SO["so"] = build(tempfile.mkdtemp(prefix="kmemdbg-crash-"))
    return _SO["so"]


#: crash 8.0.2 on the 6.12 dumps: without these it says "vmlinux and dump do not match!"
#: or "invalid structure member offset: module_core_size"
CRASH_OPTIONS = {"x86_64-6.12-l4": ["--no_modules", "--kaslr", "auto"],
                 "x86_64-6.12-l5": ["--no_modules", "--kaslr", "auto"]}


def crash_argv(dump: str, recipe: str = RECIPE) -> List[str]:
    return ["crash", "-s", *CRASH_OPTIONS.get(recipe, []), realdumps.debug_vmlinux(recipe), dump]


def run_crash(dump: str, commands: List[str], env: Optional[Dict[str, str]] = None,
              recipe: str = RECIPE, load: bool = True) -> str:
    """Run crash non-interactively (``-i CMDFILE``) with ``commands`` after ``extend``; its stdout."""
    with tempfile.NamedTemporaryFile("w", suffix=".crash", delete=False) as f:
        if load:
            f.write(f"extend {extension()}\n")
        f.write("\n".join(commands) + "\nexit\n")
        cmdfile = f.name
    try:
        got = subprocess.run(crash_argv(dump, recipe) + ["-i", cmdfile], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=CRASH_TIMEOUT_S,
                             env={**os.environ, **(env or {})})
    finally:
        os.unlink(cmdfile)
    return got.stdout + got.stderr


def chunks(items: List[str], n: int = 40) -> List[List[str]]:
    """crash reads command lines of at most 1500 bytes: split long address lists."""
    return [items[i:i + n] for i in range(0, len(items), n)]
