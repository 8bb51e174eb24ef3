"""Sparse physical memory: read semantics and cost.  Oracle: the protocol in kmemdbg.memory."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmemdbg.errors import PhysicalReadError
from kmemdbg.model import AddressSpace, FrameAllocator, SparseMemory, build_kernel, x86_geometry
from kmemdbg.model.x86 import X86Encoder

G, M = 1 << 30, 1 << 20
PC_RAM = [(0, 0x9F000), (1 * M, 256 * M)]


def test_unwritten_ram_reads_zero_and_holes_raise():
    mem = SparseMemory(PC_RAM)
    assert mem.zero_fills_holes is False
    assert mem.read(0x1000, 16) == bytes(16)
    with pytest.raises(PhysicalReadError) as err:
        mem.read(0x9F000, 8)
    assert err.value.pa == 0x9F000 and err.value.size == 8
    with pytest.raises(PhysicalReadError):
        mem.read(0x9EFF8, 16)                       # straddles the end of RAM
    with pytest.raises(PhysicalReadError):
        mem.read(256 * M, 1)


def test_written_page_in_a_hole_becomes_readable():
    mem = SparseMemory(PC_RAM)
    mem.write_u64(0xA0008, 0x1122334455667788)
    assert mem.read_u64(0xA0008) == 0x1122334455667788
    assert mem.read(0xA0000, 8) == bytes(8)


def test_52bit_physical_addresses():
    mem = SparseMemory([(0xB000000000000, 0xB000000100000)])
    mem.write(0xFFFFFFFFFFFF8, b"12345678")
    assert mem.read(0xFFFFFFFFFFFF8, 8) == b"12345678"
    assert mem.read(0xB000000000000, 4) == bytes(4)
    with pytest.raises(PhysicalReadError):
        mem.read(0xFFFFFFFFFFFF8, 16)               # beyond 52 bits


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, (256 * M) // 8 - 1), st.integers(0, 2**64 - 1)),
                max_size=40))
def test_reads_return_what_was_written(writes):
    mem = SparseMemory(PC_RAM)
    shadow = {}
    for word, value in writes:
        mem.write_u64(word * 8, value)
        shadow[word * 8] = value
    for pa, value in shadow.items():
        assert mem.read_u64(pa) == value
    frames = {pa >> 12 for pa in shadow}
    assert mem.stored_bytes() == 4096 * len(frames)


def test_one_tib_linear_map_in_1g_leaves_costs_kilobytes():
    ram = [(0, 0x9F000), (1 * M, 1 << 40)]
    mem = SparseMemory(ram)
    space = AddressSpace(x86_geometry(False), X86Encoder(), mem, FrameAllocator(ram))
    space.map_largest(0xFFFF888000000000, 0, 0x9F000)
    space.map_largest(0xFFFF888000100000, 1 * M, (1 << 40) - 1 * M)
    assert mem.stored_bytes() < 100 * 1024
    assert space.truth(0xFFFF888000000000 + (700 << 30) + 5).pa == (700 << 30) + 5


def test_whole_kernel_model_with_1tib_ram_stays_small(tmp_path):
    model = build_kernel("x86_64-4level", seed=2, ram_bytes=1 << 40)
    assert model.memory.stored_bytes() < 2 * M
    path = tmp_path / "big.core"
    model.write_vmcore(path)
    assert path.stat().st_size < 3 * M


def test_backed_runs_cover_ram_and_stored_frames():
    mem = SparseMemory(PC_RAM)
    mem.write_u64(0x2000, 1)
    mem.write_u64(0xA0000, 2)                        # outside RAM
    runs = list(mem.backed_runs())
    assert (0x2000, 0x1000, True) in runs and (0xA0000, 0x1000, True) in runs
    assert sum(size for _s, size, _st in runs) == 0x9F000 + (255 * M) + 0x1000
