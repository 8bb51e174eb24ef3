"""ptdump on MMU models of every paging mode, against the model's ground truth.

Oracle: ``KernelModel.truth`` and ``mapped_ranges`` (a record of what was
mapped, written by encoders that share no code with kmemdbg.arch), including
the rights each mapping was given.  Also: a table shared many times (as the
KASAN early shadow shares one PTE table) is decoded once and reported as one
repeating range.
"""
from __future__ import annotations

import pytest

import kmemdbg
from kmemdbg.model import MODES, build_kernel
from kmemdbg.ptdump import LeafSweep, ptdump


def _open(tmp_path, m):
    path = tmp_path / "m.core"
    m.write_vmcore(str(path))
    return kmemdbg.open(core=str(path))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_ranges_match_ground_truth_pa_size_and_rights(tmp_path, mode):
    m = build_kernel(mode, seed=4)
    k = _open(tmp_path, m)
    ranges = ptdump(k, split_pa=True)
    lo = min(r.start for r in ranges)
    truth_bytes = sum(min(t.va + t.size, 1 << 64) - max(t.va, lo) for t in m.mapped_ranges()
                      if t.va + t.size > lo)
    assert sum(r.size for r in ranges) == truth_bytes
    for r in ranges:
        for va in (r.start, r.end - 1):
            t = m.truth(va)
            assert t.status == "mapped", f"0x{va:x}: {t.reason}"
            off = va - r.start
            want = r.pa + (off % r.pa_period if r.pa_rule == "repeat" else off)
            assert t.pa == want, f"0x{va:x}"
            assert t.page_size == r.page_size and t.level == r.level
            assert (t.writable, t.executable, t.user) == \
                (r.permissions.kernel_write, r.permissions.kernel_exec, r.permissions.user_read), f"0x{va:x}"


def test_a_table_shared_everywhere_is_decoded_once_and_repeats(tmp_path):
    m = build_kernel("x86_64-4level", seed=2)
    sp, enc = m.space, m.space.encoder
    frame = m.allocator.alloc(4096)
    pte = m.allocator.alloc(4096)
    # one PTE table mapping the same frame 512 times, under 512 PMD entries of one PMD table
    m.memory.write(pte, b"".join(enc.leaf(frame, 4096, True, frozenset({"P", "NX", "G"})).to_bytes(8, "little")
                                 for _ in range(512)))
    pmd = m.allocator.alloc(4096)
    m.memory.write(pmd, enc.table(pte).to_bytes(8, "little") * 512)
    base = m.params["vmalloc_start"] + (8 << 40)
    sp.plant(base, "PUD", enc.table(pmd))
    k = _open(tmp_path, m)
    sweep = LeafSweep(k.tables.format, k.walker.cache, k.tables.root_pa)
    ranges = ptdump(k, base, base + (1 << 30), split_pa=True, sweep=sweep)
    assert len(ranges) == 1
    r = ranges[0]
    assert (r.start, r.end, r.pa, r.pa_rule, r.pa_period) == (base, base + (1 << 30), frame, "repeat", 4096)
    assert sweep.tables_decoded <= 5     # root path + the PMD table + the PTE table, once each
