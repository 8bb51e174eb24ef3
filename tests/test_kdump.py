"""kmemdbg's own kdump-compressed reader against the ELF dump of the same stopped guest.

Oracle: QEMU wrote both files from the same stopped guest (the factory
sends QMP ``stop`` before dumping), so every byte kmemdbg reads from the
kdump file must equal the ELF dump's; translations through the kdump file
must equal drgn's C walker on the ELF dump.  On arm64, QEMU's 64 KiB blocks
make libkdumpfile (and so drgn) read the wrong frames; kmemdbg must not.
"""
from __future__ import annotations

import os
import random

import pytest

import kmemdbg
from kmemdbg.errors import PhysicalReadError, SourceError
from kmemdbg.sources.elfcore import ElfCoreMemory
from kmemdbg.sources.kdump import KdumpMemory

from realdumps import RECIPES, cache_dir

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")


def _paths(recipe):
    base = os.path.join(cache_dir(), recipe)
    kd, elf = os.path.join(base, "vmcore.kdump"), os.path.join(base, "vmcore.elf")
    if not (os.path.exists(kd) and os.path.exists(elf)):
        pytest.skip(f"recipe {recipe} not built: run python3 vmcores/build.py {recipe}")
    return kd, elf


@pytest.mark.real
@pytest.mark.parametrize("recipe", RECIPES)
def test_kdump_reads_equal_the_elf_dump(recipe):
    kd_path, elf_path = _paths(recipe)
    kd, elf = KdumpMemory(kd_path), ElfCoreMemory(elf_path)
    assert kd.note(b"VMCOREINFO") == elf.note(b"VMCOREINFO")[:len(kd.note(b"VMCOREINFO"))]
    elf_ranges = sorted((pa, pa + memsz) for pa, _f, _o, memsz, _v in elf.loads)
    assert kd.ranges() == elf_ranges
    rng = random.Random(recipe)
    compared = 0
    for lo, hi in kd.ranges():
        for _ in range(400):
            pa = rng.randrange(lo, hi - 4096) & ~7
            try:
                got = kd.read(pa, 4096 - (pa & 0xFFF))
            except PhysicalReadError:
                continue
            assert got == elf.read(pa, len(got)), hex(pa)
            compared += 1
    assert compared > 300


@pytest.mark.real
@pytest.mark.parametrize("recipe", RECIPES)
def test_translation_through_kdump_agrees_with_drgn_on_the_elf(recipe):
    kd_path, elf_path = _paths(recipe)
    k = kmemdbg.open(core=kd_path)
    assert k.prog is not None and k.symbols.source.startswith("kallsyms")
    prog = drgn.Program()
    prog.set_core_dump(elf_path)
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    truth = __import__("json").load(open(os.path.join(cache_dir(), recipe, "truth.json")))
    vas = [int(a["start"], 16) for a in truth["vmalloc_areas"]]
    vas += [int(m["address"], 16) for m in truth["modules"]]
    batch = k.translate_many(vas)
    for va, pa in zip(vas, batch.pas):
        try:
            want = _drgn._linux_helper_follow_phys(prog, pgd, va)
        except drgn.FaultError:
            want = None
        assert pa == want, hex(va)
    # classification uses the kdump file's own kallsyms and BTF
    mod = truth["modules"][0]
    assert k.classify(int(mod["address"], 16)).region.kind == "module"


def test_flattened_and_truncated_kdump_are_one_line_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.write_bytes(b"makedumpfile\0\0\0\0" + bytes(8192))
    with pytest.raises(SourceError, match="makedumpfile -R"):
        KdumpMemory(str(flat))
    short = tmp_path / "short"
    short.write_bytes(b"KDUMP   " + bytes(100))
    with pytest.raises(SourceError):
        KdumpMemory(str(short))
