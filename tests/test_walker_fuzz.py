"""Bad input: garbage in every bit of every entry never escapes as an exception.

Oracle: none is needed for this property; the walker must return a Walk
whose steps are bounded by the paging mode, and the batch API must report
the same outcome as single walks over the same garbage.
"""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmemdbg.arch import arm64, x86_64
from kmemdbg.arch.base import FAULT_REASONS
from kmemdbg.errors import PhysicalReadError
from kmemdbg.walk import Walker

FORMATS = [
    x86_64.paging_format(4), x86_64.paging_format(5), x86_64.paging_format(4, 46, 1 << 47),
    arm64.paging_format(4096, 39), arm64.paging_format(4096, 48), arm64.paging_format(4096, 52, 12),
    arm64.paging_format(4096, 52, 16), arm64.paging_format(16384, 47), arm64.paging_format(16384, 48),
    arm64.paging_format(16384, 52, 12), arm64.paging_format(65536, 42), arm64.paging_format(65536, 48),
    arm64.paging_format(65536, 52, 12), arm64.paging_format(65536, 52, 16),
]


class GarbageMemory:
    """Tables full of seeded garbage; some pages unreadable, some reads short."""

    zero_fills_holes = False

    def __init__(self, seed: int, page_size: int, pages: int) -> None:
        self.seed, self.page_size, self.pages = seed, page_size, pages

    def read(self, pa: int, size: int) -> bytes:
        rng = random.Random(self.seed * 1000003 + pa)
        roll = rng.random()
        if roll < 0.05:
            raise PhysicalReadError(pa, size, "fuzz hole")
        if roll < 0.08:
            return b"\x01" * (size // 2)  # short read
        out = bytearray()
        for _ in range(size // 8):
            kind = rng.random()
            if kind < 0.3:
                val = rng.getrandbits(64)
            elif kind < 0.5:
                val = 0
            else:  # pointer-like: a small set of pages, valid/table bits on
                val = rng.randrange(self.pages) * self.page_size | rng.choice((1, 3, 0x63, 0xe3, 0x703))
                val |= rng.getrandbits(64) & rng.choice((0, 1 << 63, 0xFFF0000000000000, 0x300))
            out += val.to_bytes(8, "little")
        return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt_i=st.integers(0, len(FORMATS) - 1), seed=st.integers(0, 2**32),
       root=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 15).map(lambda p: p * 65536)),
       vas=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=8))
def test_garbage_tables_never_raise_and_stay_bounded(fmt_i, seed, root, vas):
    fmt = FORMATS[fmt_i]
    walker = Walker(fmt, GarbageMemory(seed, fmt.page_size, 16), root)
    for va in vas:
        walk = walker.walk(va)
        assert len(walk.steps) <= len(fmt.levels)
        if walk.fault is None:
            assert walk.pa is not None and walk.page_size is not None
            assert walk.steps[-1].kind == "leaf"
            assert walk.pa & (walk.page_size - 1) == va & (walk.page_size - 1)
        else:
            assert walk.fault.reason in FAULT_REASONS
            assert walk.pa is None
            assert walk.fault.message(va).count("\n") == 0
    batch = Walker(fmt, GarbageMemory(seed, fmt.page_size, 16), root).translate_many(vas + vas)
    for i, va in enumerate(vas + vas):
        walk = walker.walk(va)
        assert batch.pas[i] == walk.pa
        assert batch.page_sizes[i] == walk.page_size
        assert batch.faults[i] == (None if walk.fault is None else (walk.fault.level, walk.fault.reason))


@settings(max_examples=2000, deadline=None)
@given(fmt_i=st.integers(0, len(FORMATS) - 1), raw=st.integers(0, 2**64 - 1),
       level=st.integers(0, 4), va=st.integers(0, 2**64 - 1))
def test_decoders_accept_any_entry(fmt_i, raw, level, va):
    fmt = FORMATS[fmt_i]
    level %= len(fmt.levels)
    assert isinstance(fmt.flags(raw, level, True), tuple)
    assert isinstance(fmt.flags(raw, level, False), tuple)
    inv = fmt.invalid(raw, level, va)
    assert inv.reason in FAULT_REASONS
    perms = fmt.permissions([raw] * (level + 1), level)
    assert perms.short().count("/") == 1
    assert fmt.output_address(raw) < 1 << 52
