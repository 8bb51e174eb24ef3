"""kmemdbg's ptdump against the guest kernel's own page-table dump of the same boot.

Oracle: the kernel's ptdump walker (arch/x86/mm/dump_pagetables.c), which
Debian builds (DEBUG_WX selects it) and exports, but whose debugfs file
(PTDUMP_DEBUGFS) is compiled out.  kmemdbg_probe exposes the same walker in
debugfs and the guest's /init prints it on the serial console shortly before
the dump (truth.json ``kernel_ptdump``).  Both dumps are reduced to present
leaf ranges with the kernel's attribute words (USR, RW, PWT, PCD, PSE, PAT,
GLB, NX) and level, merged where contiguous and equal, over the kernel half.
The ESPFIX area is left out: the kernel prints only its first lines.
"""
from __future__ import annotations

import re

import pytest

import kmemdbg
from kmemdbg.ptdump import ptdump

from realdumps import all_dumps

DUMPS = [d for d in all_dumps() if d.recipe.startswith("x86_64")]
LINE = re.compile(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+\S+\s+(.*?)\s*(pte|pmd|pud|p4d|pgd)$")
ESPFIX = (0xFFFFFF0000000000, 0xFFFFFF8000000000)
OURS = {"US": "USR", "RW": "RW", "PWT": "PWT", "PCD": "PCD", "PS": "PSE", "PAT": "PAT", "G": "GLB",
        "NX": "NX"}


def kernel_ranges(lines, lo):
    out = []
    for line in lines:
        m = LINE.match(line.strip())
        if not m or not m.group(3).strip():
            continue   # a marker or a range with nothing mapped
        start, end = int(m.group(1), 16), int(m.group(2), 16) or 1 << 64
        words = set(m.group(3).split()) - {"ro", "x"}
        words = {"PAT" if w == "pat" else w for w in words}
        if start >= lo:
            out.append((start, end, frozenset(words), m.group(4)))
    return out


def merged(ranges):
    out = []
    for start, end, words, level in sorted(ranges):
        if ESPFIX[0] <= start < ESPFIX[1]:
            continue
        if out and out[-1][1] == start and out[-1][2:] == (words, level):
            out[-1] = (out[-1][0], end, words, level)
        else:
            out.append((start, end, words, level))
    return out


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_ptdump_equals_the_kernels_own_ptdump(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    lines = dump.truth().get("kernel_ptdump") or []
    if not lines:
        pytest.skip(f"{dump.id}: no kernel ptdump in truth.json (rebuild: python3 vmcores/build.py {dump.recipe})")
    k = kmemdbg.open(core=dump.path)
    lo = (1 << 64) - (1 << (k.tables.format.va_bits - 1))
    want = merged(kernel_ranges(lines, lo))
    ours = []
    for r in ptdump(k, lo, 1 << 64, owners=False):
        words = frozenset(OURS[f] for f in r.flags if f in OURS)
        ours.append((r.start, r.end, words, {"PTE": "pte", "PMD": "pmd", "PUD": "pud", "P4D": "p4d",
                                              "PGD": "pgd"}[r.level]))
    got = merged(ours)
    assert len(want) > 50
    only_kernel = sorted(set(want) - set(got))
    only_ours = sorted(set(got) - set(want))
    # The one expected difference: the kernel stack of the process that read
    # the debugfs file (THREAD_SIZE = 16 KiB, vmalloc'd with VMAP_STACK) is
    # mapped while the kernel prints, and unmapped once it exits, before the dump.
    vmalloc = k.layout.region_of(k.info.number("VMALLOC_START") or k.layout.value("vmalloc_base"))
    stacks = [r for r in only_kernel if r[1] - r[0] == 16384 and r[3] == "pte"
              and r[2] == frozenset({"RW", "GLB", "NX"}) and vmalloc.start <= r[0] < vmalloc.end]
    assert len(stacks) <= 1 and not only_ours and len(only_kernel) == len(stacks), (
        f"{len(got)} vs {len(want)} ranges; only in the kernel's: "
        f"{[(hex(a), hex(b), sorted(w), lv) for a, b, w, lv in only_kernel[:4]]}; only in ours: "
        f"{[(hex(a), hex(b), sorted(w), lv) for a, b, w, lv in only_ours[:4]]}")
