"""The kmemdbg.linux helpers on hand-built memory: the oracle is the C layout written by the test."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st

from kmemdbg.errors import KmemdbgError
from kmemdbg.linux.errors import CorruptStructureError
from kmemdbg.linux.lists import hlist_for_each, list_for_each, rbtree_inorder
from kmemdbg.linux.modules import Module, ModuleSection
from kmemdbg.linux.owners import IMAGE_SECTION, MODULE, OwnerIndex
from kmemdbg.linux.page import page_type_is
from kmemdbg.linux.slab import SlabMarks, is_slab_page
from kmemdbg.linux.tasks import TaskOffsets, for_each_task
from kmemdbg.linux.vmalloc import VmapArea, find_area


class Memory:
    """Sparse little-endian words at virtual addresses; unwritten bytes fault."""

    def __init__(self) -> None:
        self.bytes = {}

    def u64(self, va: int, value: int) -> None:
        for i, b in enumerate(value.to_bytes(8, "little")):
            self.bytes[va + i] = b

    def raw(self, va: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.bytes[va + i] = b

    def read(self, va: int, size: int) -> bytes:
        try:
            return bytes(self.bytes[va + i] for i in range(size))
        except KeyError:
            raise KmemdbgError(f"0x{va:x}: not mapped") from None


def _list(mem: Memory, head: int, nodes) -> None:
    ring = [head] + list(nodes)
    for i, n in enumerate(ring):
        mem.u64(n, ring[(i + 1) % len(ring)])      # next
        mem.u64(n + 8, ring[i - 1])                 # prev


def test_list_for_each_yields_nodes_in_order_and_stops_at_the_head():
    mem = Memory()
    _list(mem, 0x1000, [0x2000, 0x3000, 0x4000])
    assert list(list_for_each(mem.read, 0x1000, 0, 8, "t")) == [0x2000, 0x3000, 0x4000]


def test_list_for_each_rejects_a_wrong_back_link():
    mem = Memory()
    _list(mem, 0x1000, [0x2000, 0x3000])
    mem.u64(0x3000 + 8, 0x1000)                     # prev should be 0x2000
    with pytest.raises(CorruptStructureError, match="has prev 0x0000000000001000"):
        list(list_for_each(mem.read, 0x1000, 0, 8, "t"))


def test_list_for_each_reports_an_unreadable_entry_as_corrupt():
    mem = Memory()
    mem.u64(0x1000, 0x9000)
    mem.u64(0x1008, 0x9000)
    with pytest.raises(CorruptStructureError, match="cannot read 16 bytes"):
        list(list_for_each(mem.read, 0x1000, 0, 8, "t"))


def test_rbtree_inorder_visits_smallest_key_first():
    mem = Memory()
    # rb_node: parent_color at 0, right at 8, left at 16 (the kernel's order)
    tree = {0x200: (0x100, 0x300), 0x100: (0, 0), 0x300: (0, 0x400), 0x400: (0, 0)}
    for node, (left, right) in tree.items():
        mem.u64(node, 0)
        mem.u64(node + 8, right)
        mem.u64(node + 16, left)
    assert list(rbtree_inorder(mem.read, 0x200, 16, 8, 24, "t")) == [0x100, 0x200, 0x300, 0x400]


def test_hlist_for_each_follows_first_then_next_to_null():
    mem = Memory()
    mem.u64(0x10, 0x100)
    mem.u64(0x100, 0x200)
    mem.u64(0x200, 0)
    assert list(hlist_for_each(mem.read, 0x10, "t")) == [0x100, 0x200]


def test_for_each_task_reads_pid_mm_comm_and_stops_at_init_task():
    mem = Memory()
    off = TaskOffsets(tasks=0x40, pid=0x10, mm=0x20, comm=0x60)
    init, t1, t2 = 0x10000, 0x20000, 0x30000
    _list(mem, init + off.tasks, [t1 + off.tasks, t2 + off.tasks])
    for task, pid, mm, comm in ((t1, 1, 0xabc000, b"init"), (t2, 2, 0, b"kthreadd")):
        mem.u64(task + off.pid, pid)
        mem.u64(task + off.mm, mm)
        mem.raw(task + off.comm, comm.ljust(16, b"\0"))
    got = list(for_each_task(mem.read, init, off))
    assert [(t.pid, t.task_va, t.mm_va, t.comm) for t in got] == [(1, t1, 0xabc000, "init"),
                                                                  (2, t2, 0, "kthreadd")]


@pytest.mark.parametrize("value", [0xF0000080, 0xFFFFFF7F, 0xF5000000])
def test_page_type_is_agrees_on_ints_and_numpy_arrays(value):
    words = [0xFFFFFFFF, 0xFFFFFF7F, 0xF5000000, 0xF5001234, 0x00000000, 0xF0000000]
    scalar = [bool(page_type_is(w, value)) for w in words]
    vector = page_type_is(np.array(words, dtype=np.uint32), value).tolist()
    assert scalar == vector


def test_is_slab_page_reads_pg_slab_or_the_page_type_the_same_way_for_arrays():
    marks = SlabMarks(pg_slab=9, slab_value=0xF5000000)
    flags = [1 << 9, 0, 0]
    types = [0xFFFFFFFF, 0xF5000000, 0xFFFFFFFF]
    scalar = [bool(is_slab_page(marks, f, t)) for f, t in zip(flags, types)]
    vector = is_slab_page(marks, np.array(flags, dtype=np.uint64), np.array(types, dtype=np.uint32)).tolist()
    assert scalar == vector == [True, True, False]
    assert not is_slab_page(SlabMarks(None, None), 1 << 9, 0xF5000000)



_TYPE_VALUES = st.one_of(st.none(), st.integers(0, 0xFF).map(lambda b: b << 24),        # 6.9+: a type byte
                         st.integers(0, 0xFFFFFFFF),
                         st.integers(0, 0xFFFFFF).map(lambda low: 0xF0000000 | low))    # older: bits cleared


@given(pg_slab=st.one_of(st.none(), st.integers(0, 70)), slab_value=_TYPE_VALUES,
       mapcount_off=st.sampled_from([None, 24, 48, 60]), raw=st.binary(min_size=64, max_size=64))
def test_the_bytes_test_of_a_struct_page_agrees_with_is_slab_page(pg_slab, slab_value, mapcount_off, raw):
    marks = SlabMarks(pg_slab, slab_value)
    flags = struct.unpack_from("<Q", raw, 0)[0]
    word = struct.unpack_from("<I", raw, mapcount_off)[0] if mapcount_off is not None else None
    assert marks.bytes_test(mapcount_off)(raw) is bool(is_slab_page(marks, flags, word))

def _area(start, end, caller, state="busy"):
    return VmapArea(start, end, end - start, ("vmalloc",), None, caller, 1, None, None, start, end, 0, 0, state)


@st.composite
def _kernel_areas(draw):
    """Areas as the kernel keeps them: busy ones disjoint, a lazily freed one overlapping at
    most the busy area after it; sorted by start."""
    areas, at = [], 0x1000
    for _ in range(draw(st.integers(0, 12))):
        at += draw(st.integers(0, 3)) * 0x1000
        size = draw(st.integers(1, 4)) * 0x1000
        if draw(st.booleans()):         # a lazily freed area, maybe reaching into the next one
            areas.append(_area(at, at + size + draw(st.sampled_from([0, 0x800, 0x1000])), None, "lazy"))
        else:
            areas.append(_area(at, at + size, None))
        at += size
    return sorted(areas, key=lambda a: a.start)


@given(areas=_kernel_areas(), probes=st.lists(st.integers(0, 0x40000), max_size=40))
def test_find_area_is_the_busy_holder_else_the_lowest_lazily_freed_one(areas, probes):
    starts = [a.start for a in areas]
    for va in probes + [a.start for a in areas] + [a.end - 1 for a in areas] + [a.end for a in areas]:
        holders = [a for a in areas if a.start <= va < a.end]
        busy = [a for a in holders if a.state == "busy"]
        assert find_area(areas, starts, va) == (busy[0] if busy else holders[0] if holders else None)


class _Objects:
    def __init__(self, modules, areas):
        self._m, self._a = modules, areas

    def modules(self):
        return self._m

    def vmap_areas(self):
        return self._a


def test_owner_index_prefers_a_module_section_to_its_vmap_area_and_cuts_at_the_next_owner():
    mod = Module("m", "live", 0x5000, 0x2000, (ModuleSection("text", 0x5000, 0x1000),
                                               ModuleSection("data", 0x6000, 0x1000)), 0x5f00)
    areas = (_area(0x4000, 0x8000, "load_module+0x1/0x2"), _area(0x9000, 0xa000, None, "lazy"))
    syms = {"_text": 0x1000, "_etext": 0x2000}
    index = OwnerIndex(syms.get, lambda: _Objects([mod], areas))
    got, end = index.owner(0x5800)
    assert (got.kind, got.name, got.section, got.label, end) == (MODULE, "m", "text", "module m text", 0x6000)
    got, end = index.owner(0x4800)
    assert got.label == "vmap load_module+0x1/0x2 [vmalloc]" and end == 0x5000
    got, _ = index.owner(0x1800)
    assert got.kind == IMAGE_SECTION and got.label == "kernel .text"
    assert index.owner(0x9800)[0] is None                         # lazy areas own nothing in ptdump
    assert index.vmap_area_at(0x9800).state == "lazy"             # but classification finds them
    assert index.module_at(0x6800).section == "data" and index.unavailable == ()


def test_owner_index_records_an_unreadable_module_list_once():
    class Broken(_Objects):
        calls = 0

        def modules(self):
            Broken.calls += 1
            raise CorruptStructureError("modules list: entry 3 at 0x1 comes round again")

    index = OwnerIndex({}.get, lambda: Broken([], ()))
    assert index.module_at(0x10) is None and index.module_at(0x20) is None
    assert Broken.calls == 1
    assert [str(u) for u in index.unavailable] == ["modules: modules list: entry 3 at 0x1 comes round again"]


def _pS_by_scan(mod, syms, va, layout_era):
    """%pS in a module as find_kallsyms_symbol states it, one symbol at a time (the oracle for
    the symbol chosen; the range bounds are symbol_bounds', which the change did not touch)."""
    from kmemdbg.linux.modules import symbol_bounds
    lo, nextval = symbol_bounds(mod, va, layout_era)
    best = None
    for s in syms:
        if lo is not None and s.start < lo:
            continue
        if s.start <= va and (best is None or s.start > best.start):
            best = s
        if va < s.start and (nextval is None or s.start < nextval):
            nextval = s.start
    if best is None or nextval is None:
        return None
    return f"{best.name}+0x{va - best.start:x}/0x{nextval - best.start:x} [{mod.name}]"


@given(starts=st.lists(st.integers(0x4f00, 0x7100), max_size=40), vas=st.lists(st.integers(0x4f00, 0x7100), min_size=1,
                                                                                 max_size=20),
       layout_era=st.booleans())
def test_pS_in_a_module_by_bisection_agrees_with_the_symbol_by_symbol_rule(starts, vas, layout_era):
    from kmemdbg.linux.modules import ModuleSymbol, SymbolOrder, describe_in_module
    mod = Module("m", "live", 0x5000, 0x2000, (ModuleSection("text", 0x5000, 0x800), ModuleSection("rodata", 0x5800, 0x800),
                                               ModuleSection("data", 0x6000, 0x1000)), 0x5f00)
    syms = [ModuleSymbol(a, 0, f"s{i}") for i, a in enumerate(starts)]     # duplicates too: aliases
    order = SymbolOrder.of(syms)
    for va in vas:
        assert describe_in_module(mod, order, va, layout_era) == _pS_by_scan(mod, syms, va, layout_era)
