"""kmemdbg inside the crash utility.

Build the extension for the installed crash and load it::

    $ python3 -m kmemdbg.crash --build          # prints the path of kmemdbg.so
    crash> extend /path/to/kmemdbg.so
    crash> kmemdbg vtop ffffffff81000000
    crash> kmemdbg --json check --crash ffffffff81000000

The extension is a thin C shim (``kmemdbg_crash.c``, shipped as package
data) compiled against crash's ``defs.h``; it runs this Python as a child
(:mod:`kmemdbg.crash.child`) and serves its reads.  Installing kmemdbg
needs neither crash nor a compiler: only ``--build`` does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import List, Optional

from ..errors import KmemdbgError

SHIM_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kmemdbg_crash.c")
HEADERS_DIR = "/usr/include/crash"


class BuildError(KmemdbgError):
    """The extension could not be built (no crash headers, no compiler, compiler errors)."""


def cache_dir() -> str:
    base = os.environ.get("KMEMDBG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kmemdbg")
    return os.path.join(base, "crash")


def crash_version(crash: str = "crash") -> Optional[str]:
    """The installed crash's version ("8.0.2"), or None when crash is not installed."""
    path = shutil.which(crash)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "crash":
            return words[1]
    return None


def package_root() -> str:
    """The directory the child must have on sys.path to import this kmemdbg."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_command(out: str, python: str, cc: str, headers: str = HEADERS_DIR) -> List[str]:
    from ..arch import ARCHES, arch_for_host

    machine = os.uname().machine
    arch = arch_for_host(machine)
    if arch is None:
        known = " and ".join(a.display for a in ARCHES)
        raise BuildError(f"crash extensions for {machine} are not supported ({known} are)")
    return [cc, "-shared", "-fPIC", "-rdynamic", "-O2", "-Wall", f"-D{arch.crash_define}", f"-I{headers}",
            f'-DKMEMDBG_PYTHON="{python}"', f'-DKMEMDBG_PYTHONPATH="{package_root()}"',
            "-o", out, SHIM_SOURCE]


def build(out_dir: Optional[str] = None, python: Optional[str] = None, cc: Optional[str] = None,
          headers: str = HEADERS_DIR) -> str:
    """Compile the shim for the installed crash; returns the path of the .so.

    ``python`` (default: this interpreter) is the child the extension runs.
    Raises BuildError with a one-line cause.
    """
    if not os.path.exists(os.path.join(headers, "defs.h")):
        raise BuildError(f"no {headers}/defs.h: install crash's headers (on Debian: apt-get install crash)")
    cc = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc or not shutil.which(cc):
        raise BuildError("no C compiler: install one (on Debian: apt-get install gcc)")
    python = os.path.abspath(python or sys.executable)
    for bad in ('"', "\\", "\n"):
        if bad in python or bad in package_root():
            raise BuildError(f"the Python path or kmemdbg's directory contains {bad!r}; move it")
    out_dir = out_dir or cache_dir()
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "kmemdbg.so")
    tmp = out + f".tmp{os.getpid()}"
    cmd = build_command(tmp, python, cc, headers)
    try:
        got = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as err:
        raise BuildError(f"{cc} failed to run: {err}") from None
    if got.returncode != 0:
        first = next((ln for ln in got.stderr.splitlines() if "error" in ln), got.stderr.strip()[:200])
        raise BuildError(f"compiling {os.path.basename(SHIM_SOURCE)} failed: {first}")
    os.replace(tmp, out)
    return out


__all__ = ["build", "BuildError", "SHIM_SOURCE", "crash_version", "cache_dir"]
