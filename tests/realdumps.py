"""Where the real-kernel dumps are: committed slices and full dumps in the recipe cache.

Trimmed fixtures live in ``vmcores/fixtures/<recipe>/`` (always present);
full dumps are in ``$KMEMDBG_CACHE/vmcores/<recipe>/`` (default
``~/.cache/kmemdbg``) once ``python3 vmcores/build.py RECIPE`` has run.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "vmcores", "fixtures")
RECIPES = ("x86_64-6.12-l4", "x86_64-6.12-l5", "x86_64-6.1-l4", "arm64-6.12-lpa2",
           "arm64-6.12-48bit", "arm64-6.12-16k", "arm64-6.1")


def cache_dir() -> str:
    base = os.environ.get("KMEMDBG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kmemdbg")
    return os.path.join(base, "vmcores")


@dataclass(frozen=True)
class RealDump:
    recipe: str
    kind: str          # "trimmed" or "full"
    path: str
    truth_path: str

    @property
    def id(self) -> str:
        return f"{self.recipe}-{self.kind}"

    def truth(self) -> Dict:
        with open(self.truth_path) as f:
            return json.load(f)

    def missing(self) -> str:
        if os.path.exists(self.path):
            return ""
        if self.kind == "trimmed":
            return (f"no trimmed fixture for {self.recipe}: run python3 vmcores/build.py {self.recipe} "
                    f"&& python3 vmcores/fixtures/make.py {self.recipe}")
        return f"recipe {self.recipe} not built: run python3 vmcores/build.py {self.recipe}"


def all_dumps() -> List[RealDump]:
    out = []
    for r in RECIPES:
        out.append(RealDump(r, "trimmed", os.path.join(FIXTURES, r, "vmcore.slice"),
                            os.path.join(FIXTURES, r, "truth.json")))
        out.append(RealDump(r, "full", os.path.join(cache_dir(), r, "vmcore.elf"),
                            os.path.join(cache_dir(), r, "truth.json")))
    return out


def fixture_truth(recipe: str) -> Dict:
    """The committed truth (with the slice's linear samples), or {} when absent."""
    path = os.path.join(FIXTURES, recipe, "truth.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def debug_vmlinux(recipe: str):
    """Path of the recipe kernel's debug vmlinux when someone fetched it, else None.

    Not part of the default build (about 1 GB per kernel).  To fetch it for a
    recipe with Debian's packages (release from the recipe, e.g. 6.12.113+deb12-amd64)::

        mkdir -p $KMEMDBG_CACHE/dbg && cd $KMEMDBG_CACHE/dbg
        apt-get download linux-image-RELEASE-dbg
        dpkg-deb --fsys-tarfile linux-image-RELEASE-dbg_*.deb | tar -x --wildcards '*vmlinux-RELEASE'
    """
    path = os.path.join(os.path.dirname(cache_dir()), "dbg", "usr", "lib", "debug", "boot")
    if not os.path.isdir(path):
        return None
    truth = os.path.join(cache_dir(), recipe, "truth.json")
    if not os.path.exists(truth):
        return None
    with open(truth) as f:
        release = (json.load(f).get("vmcoreinfo") or {}).get("OSRELEASE")
    candidate = os.path.join(path, f"vmlinux-{release}")
    return candidate if release and os.path.exists(candidate) else None


def open_dump(dump: RealDump, opener=None):
    """(kmemdbg's view of ``dump``, a drgn Program on the same file); skips when not built.

    ``opener(path)`` opens kmemdbg's side (default ``kmemdbg.open(core=path)``);
    the drgn Program is the independent oracle and shares nothing with it.
    """
    import drgn
    import pytest

    if dump.missing():
        pytest.skip(dump.missing())
    if opener is None:
        import kmemdbg

        def opener(path):
            return kmemdbg.open(core=path)
    prog = drgn.Program()
    prog.set_core_dump(dump.path)
    return opener(dump.path), prog


_KERNELS: Dict[str, object] = {}


def kernel_of(dump: RealDump):
    """``kmemdbg.open(core=dump.path)``, opened once per dump for the test session; skips
    when the dump is not built."""
    import pytest

    if dump.missing():
        pytest.skip(dump.missing())
    if dump.id not in _KERNELS:
        import kmemdbg

        _KERNELS[dump.id] = kmemdbg.open(core=dump.path)
    return _KERNELS[dump.id]
