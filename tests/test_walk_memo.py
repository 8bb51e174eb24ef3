"""The walker's per-snapshot memos give what the uncached decode gives.

Oracles: each format's own ``flags``/``permissions``/address fields called on
the unmasked entry (the definitions the memos stand in for), and a walk
after the tables changed under a live source (the new tables, written by
the test).
"""
from __future__ import annotations

import random

import pytest

from kmemdbg.arch import arm64, x86_64
from kmemdbg.memory import MemorySource
from kmemdbg.walk import Walker

from walk_helpers import DictMemory, chain

FORMATS = [
    x86_64.paging_format(4), x86_64.paging_format(5), x86_64.paging_format(4, phys_bits=48, sme_mask=1 << 47),
    arm64.paging_format(4096, 48), arm64.paging_format(4096, 52, 12), arm64.paging_format(16384, 48),
    arm64.paging_format(16384, 52, 12), arm64.paging_format(65536, 52), arm64.paging_format(65536, 48),
]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_flags_and_permissions_read_only_their_declared_bits(fmt):
    rng = random.Random(fmt.name)
    last = len(fmt.levels) - 1
    for _ in range(3000):
        raws = [rng.getrandbits(64) for _ in fmt.levels]
        level = rng.randrange(len(fmt.levels))
        leaf = level == last or rng.random() < 0.5
        raw = raws[level]
        assert fmt.flags(raw, level, leaf) == fmt.flags(raw & fmt.flag_bits, level, leaf)
        path = raws[:level + 1]
        assert fmt.permissions(path, level) == fmt.permissions([r & fmt.permission_bits for r in path], level)
        want = 0
        for f in fmt.address:          # the definition: the OR of the address fields
            want |= f.extract(raw)
        assert fmt.output_address(raw) == want


class LiveDict(MemorySource):
    """A live source over a DictMemory: the test changes it, then says it moved on."""

    live = True

    def __init__(self, inner: DictMemory) -> None:
        self.inner = inner

    def read(self, pa: int, size: int) -> bytes:
        return self.inner.read(pa, size)


def test_walks_follow_the_tables_after_a_live_source_moves_on():
    mem = DictMemory()
    va = 0xFFFFC90000123ABC
    shifts, bits = (39, 30, 21, 12), (9, 9, 9, 9)
    chain(mem, va, shifts, bits, (0x1000, 0x2000, 0x3000, 0x4000), (0x2063, 0x3063, 0x4063, 0x5063))
    live = LiveDict(mem)
    w = Walker(x86_64.paging_format(4), live, 0x1000)
    assert w.walk(va).pa == 0x5ABC and w.translate_one(va)[0] == 0x5ABC
    chain(mem, va, shifts, bits, (0x1000, 0x2000, 0x3000, 0x4000), (0x2063, 0x3063, 0x4063, 0x9063))
    assert w.walk(va).pa == 0x5ABC            # the same snapshot: memoised
    live.moved_on()
    assert w.walk(va).pa == 0x9ABC and w.translate_one(va)[0] == 0x9ABC
    chain(mem, va, shifts, bits, (0x1000, 0x2000, 0x3000, 0x4000), (0x2063, 0x3063, 0x4063, 0))
    live.moved_on()
    walk = w.walk(va)
    assert walk.fault is not None and walk.fault.level == "PTE"
    assert w.translate_one(va) == (None, None, ("PTE", "not-present"))


def test_memo_of_one_walker_does_not_leak_into_another_root():
    mem = DictMemory()
    va = 0xFFFFC90000123ABC
    shifts, bits = (39, 30, 21, 12), (9, 9, 9, 9)
    chain(mem, va, shifts, bits, (0x1000, 0x2000, 0x3000, 0x4000), (0x2063, 0x3063, 0x4063, 0x5063))
    chain(mem, va, shifts, bits, (0x11000, 0x12000, 0x13000, 0x14000), (0x12063, 0x13063, 0x14063, 0x7063))
    fmt = x86_64.paging_format(4)
    a = Walker(fmt, mem, 0x1000)
    b = Walker(fmt, mem, 0x11000, cache=a.cache)
    assert a.walk(va).pa == 0x5ABC and b.walk(va).pa == 0x7ABC
    assert a.walk(va).pa == 0x5ABC and b.translate_one(va)[0] == 0x7ABC


def test_walks_under_one_last_level_table_share_the_path_above_it():
    mem = DictMemory()
    base = 0xFFFFC90000200000
    shifts, bits = (39, 30, 21, 12), (9, 9, 9, 9)
    tables = (0x1000, 0x2000, 0x3000, 0x4000)
    chain(mem, base, shifts, bits, tables, (0x2063, 0x3063, 0x4063, 0x5063))
    chain(mem, base + 0x1000, shifts, bits, tables, (0x2063, 0x3063, 0x4063, (1 << 63) | 0x6063))   # NX
    chain(mem, base + 0x2000, shifts, bits, tables, (0x2063, 0x3063, 0x4063, 0))         # not present
    w = Walker(x86_64.paging_format(4), mem, 0x1000)
    a, b, c = w.walk(base + 0x10), w.walk(base + 0x1010), w.walk(base + 0x2010)
    assert (a.pa, b.pa) == (0x5010, 0x6010)
    assert [s.table_pa for s in b.steps] == list(tables) and b.steps[-1].index == 1
    assert a.permissions.short() == "RWX/---" and b.permissions.short() == "RW-/---"  # NX only on b's leaf
    assert c.fault is not None and c.fault.level == "PTE" and c.steps[-1].index == 2 and len(c.steps) == 4
