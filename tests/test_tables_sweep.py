"""Whole-tree sweeps (``tree.walk_range``, ``tables.sweep``, ``leaves``, ``table_pages``) against the model.

Oracle: the model's ground truth: ``mapped_ranges()`` (coalesced runs of what
was mapped), ``entries()`` and ``entry_pa()`` (where it put every table), never
a reading of the bytes.  Format and root come from the model's VMCOREINFO.
"""
from __future__ import annotations

import random

import pytest

from kmemdbg.arch.base import ENTRY_TABLE, TABLE_LOOP, TABLE_UNREADABLE
from kmemdbg.memory import TableCache
from kmemdbg.tables import Fault, TreeEntry, leaf_pa, leaves, sweep, table_pages
from kmemdbg.tree import fold, walk_range
from kmemdbg.walk import Walker
from test_model_walker import CASE_IDS, CASES, HOLE_PA, _free_va, env, fresh

M64 = (1 << 64) - 1
BASE = CASES[:14]
BASE_IDS = CASE_IDS[:14]


def coalesce(fmt, entries):
    """Leaf entries -> [(va, size, pa, page_size)] runs, joined like the model's
    mapped_ranges(): same leaf size, contiguous in VA and PA."""
    out = []
    for e in entries:
        pa = leaf_pa(fmt, e)
        if out and out[-1][0] + out[-1][1] == e.va and out[-1][2] + out[-1][1] == pa \
                and out[-1][3] == e.size:
            out[-1][1] += e.size
        else:
            out.append([e.va, e.size, pa, e.size])
    return [tuple(r) for r in out]


def model_tables(space):
    """{table pa: depth} of every table on the path of every entry the model recorded."""
    geo = space.geometry
    out = {}
    for level, va, raw, kind in space.entries():
        for d in range(geo.depth_of(level) + 1):
            out[space.entry_pa(va, d) & ~(geo.table_bytes - 1)] = d
    return out


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_leaves_coalesce_to_exactly_the_model_mapped_ranges(case):
    e = env(case)
    cache = TableCache(e.model.memory)
    got = coalesce(e.fmt, leaves(e.fmt, cache, e.tables.root_pa))
    assert got == [tuple(r) for r in e.ranges]
    # every table page read exactly once for the whole sweep
    assert cache.reads == e.model.space.table_count()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_user_tree_leaves_are_the_user_mapped_ranges(case):
    e = env(case)
    user = e.model.user
    got = coalesce(e.fmt, leaves(e.fmt, TableCache(e.model.memory), user.root_pa, high=False))
    assert got == [tuple(r) for r in user.mapped_ranges()]
    assert all(va < 1 << 63 for va, *_ in got)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_table_pages_finds_every_table_the_model_wrote_at_its_level(case):
    e = env(case)
    for space, root in ((e.model.space, e.tables.root_pa), (e.model.user, e.model.user.root_pa)):
        got = table_pages(e.fmt, TableCache(e.model.memory), root,
                          high=space is e.model.space)
        want = model_tables(space)
        assert got == want
        assert len(got) == space.table_count()


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_sweep_yields_entries_in_va_order_and_each_leaf_walks_the_same(case):
    e = env(case)
    items = list(sweep(e.fmt, TableCache(e.model.memory), e.tables.root_pa))
    assert all(isinstance(i, TreeEntry) for i in items)
    vas = [i.va for i in items]
    assert vas == sorted(vas)
    walker = e.walker()
    leafs = [i for i in items if i.kind == "leaf"]
    for item in leafs[::max(len(leafs) // 400, 1)]:
        w = walker.walk(item.va + item.size - 1)
        assert (w.pa, w.page_size) == (leaf_pa(e.fmt, item) + item.size - 1, item.size)
        assert w.steps[-1].raw == item.raw and tuple(s.raw for s in w.steps) == item.raws
        assert e.fmt.levels[item.level].name == w.steps[-1].level


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_va_window_yields_only_leaves_overlapping_it(case):
    e = env(case)
    cache = TableCache(e.model.memory)
    full = list(leaves(e.fmt, cache, e.tables.root_pa))
    mid = e.ranges[len(e.ranges) // 2]
    lo, hi = mid.va + 1, mid.va + mid.size + 5 * e.model.params["page_size"]
    got = list(leaves(e.fmt, cache, e.tables.root_pa, lo, hi))
    assert got == [x for x in full if x.va + x.size > lo and x.va < hi]
    assert got and got[0].va <= lo


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_shared_table_at_the_same_level_is_yielded_under_both_vas(case):
    """A last-level table made reachable from a second entry one level up (as the KASAN
    early shadow shares tables): its leaves come out at both VAs, it is read once and
    table_pages lists it once, at its level."""
    model, kt = fresh(case)
    sp, geo = model.space, model.space.geometry
    last = len(geo.levels) - 1
    va1 = next(va for level, va, raw, kind in sp.entries()
               if kind == "mapped" and level == geo.levels[last].name)
    shared = sp.entry_pa(va1, last) & ~(geo.table_bytes - 1)
    span = geo.levels[last - 1].entry_span
    base1 = va1 & ~(span - 1) & M64
    base2 = _free_va(model, span, last - 1, random.Random(1))
    sp.plant(base2, geo.levels[last - 1].name, sp.encoder.table(shared))
    cache = TableCache(model.memory)
    out = list(leaves(kt.format, cache, kt.root_pa))
    under1 = [(x.va - base1, leaf_pa(kt.format, x), x.raw) for x in out
              if base1 <= x.va < base1 + span]
    under2 = [(x.va - base2, leaf_pa(kt.format, x), x.raw) for x in out
              if base2 <= x.va < base2 + span]
    assert under1 and under1 == under2
    assert all(x.table_pa == shared for x in out if base2 <= x.va < base2 + span)
    pages = table_pages(kt.format, TableCache(model.memory), kt.root_pa)
    assert pages[shared] == last
    assert list(pages).count(shared) == 1
    assert cache.reads == len(pages)
    # the walker agrees on the second VA (oracle: the model's truth at the first)
    off = under1[0][0] + 0x10
    w = Walker(kt.format, model.memory, kt.root_pa).walk(base2 + off)
    assert w.pa == model.truth(base1 + off).pa


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
@pytest.mark.parametrize("target", ["root", "parent"])
def test_table_loop_yields_a_tree_fault_and_the_sweep_terminates(case, target):
    model, kt = fresh(case)
    sp, geo = model.space, model.space.geometry
    last = len(geo.levels) - 1
    va = next(va for level, va, raw, kind in sp.entries()
              if kind == "mapped" and level == geo.levels[last].name)
    pointee = kt.root_pa if target == "root" else \
        sp.entry_pa(va, last - 1) & ~(geo.table_bytes - 1)
    want_level = 0 if target == "root" else last - 1
    sp.plant(va, geo.levels[last - 1].name, sp.encoder.table(pointee))
    items = list(sweep(kt.format, TableCache(model.memory), kt.root_pa))
    faults = [i for i in items if isinstance(i, Fault)]
    assert len(faults) == 1
    f = faults[0]
    assert (f.reason, f.depth, f.level, f.table_pa) == (TABLE_LOOP, last, geo.levels[last].name, pointee)
    span = geo.levels[last - 1].entry_span
    assert f.va == va & ~(span - 1) & M64 and f.size == span
    assert geo.levels[want_level].name in f.detail
    # the rest of the tree is still swept: every other model range is a leaf run
    got = coalesce(kt.format, [i for i in items if isinstance(i, TreeEntry) and i.kind == "leaf"])
    assert got == [tuple(r) for r in model.mapped_ranges()]


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_table_in_a_physical_hole_yields_table_unreadable_and_is_not_a_table_page(case):
    model, kt = fresh(case)
    sp, geo = model.space, model.space.geometry
    va = next(va for level, va, raw, kind in sp.entries()
              if kind == "mapped" and level == geo.levels[-1].name)
    sp.plant(va, geo.levels[1].name if len(geo.levels) > 2 else geo.levels[0].name,
             sp.encoder.table(HOLE_PA))
    depth = 2 if len(geo.levels) > 2 else 1
    items = list(sweep(kt.format, TableCache(model.memory), kt.root_pa))
    faults = [i for i in items if isinstance(i, Fault)]
    assert [(f.reason, f.depth, f.level, f.table_pa) for f in faults] == \
        [(TABLE_UNREADABLE, depth, geo.levels[depth].name, HOLE_PA)]
    assert f"0x{HOLE_PA:x}" in faults[0].detail
    assert HOLE_PA not in table_pages(kt.format, TableCache(model.memory), kt.root_pa)
    got = coalesce(kt.format, [i for i in items if isinstance(i, TreeEntry) and i.kind == "leaf"])
    assert got == [tuple(r) for r in model.mapped_ranges()]


@pytest.mark.parametrize("case", CASES[:14] + CASES[15:17], ids=CASE_IDS[:14] + CASE_IDS[15:17])
def test_sweep_and_leaf_sweep_report_a_reserved_entry_alike(case):
    """A valid entry with a reserved encoding is one reserved-bits Fault in both sweeps
    (the tree sweep used to drop it) and the walk faults on it at the same entry."""
    from kmemdbg.arch.base import RESERVED
    from kmemdbg.ptdump import LeafSweep
    from test_model_walker import _deep_mapped_va, _reserved_plants

    model, _ = fresh(case)
    for why, level, raw, _ in _reserved_plants(case, model):
        m2, kt2 = fresh(case, with_phys_bits=True)
        va = _deep_mapped_va(m2)
        entry_pa = m2.space.plant(va, level, raw)
        items = list(sweep(kt2.format, TableCache(m2.memory), kt2.root_pa))
        tree = [f for f in items if isinstance(f, Fault) and f.reason == RESERVED]
        ls = LeafSweep(kt2.format, TableCache(m2.memory), kt2.root_pa)
        ls.runs(0, 1 << 64)
        flat = [f for f in ls.faults if f.reason == RESERVED]
        assert len(tree) == 1, why
        f = tree[0]
        assert (f.level, f.entry_pa, f.raw) == (level, entry_pa, raw), why
        assert f.start <= va < f.end, why
        assert [(g.level, g.start, g.end, g.table_pa, g.raw, g.detail) for g in flat] == \
            [(f.level, f.start, f.end, f.table_pa, f.raw, f.detail)], why
        w = Walker(kt2.format, m2.memory, kt2.root_pa).walk(va)
        assert (w.fault.reason, w.fault.entry_pa) == (RESERVED, entry_pa), why


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_scalar_and_table_decode_agree(case):
    """PagingFormat.decode and decode_table give the same kind for every entry of every table."""
    import numpy as np

    from kmemdbg.arch.base import ENTRY_INVALID, ENTRY_LEAF, ENTRY_RESERVED, ENTRY_TABLE

    model, kt = fresh(case)
    fmt, cache = kt.format, TableCache(model.memory)
    rng = random.Random(5)
    for pa, level in table_pages(fmt, cache, kt.root_pa).items():
        table = cache.table(pa, fmt.table_size(level))
        raws = list(table) + [rng.getrandbits(64) for _ in range(64)]
        valid, leaf, tab, bad = fmt.decode_table(np.array(raws, dtype=np.uint64), level)
        for k, raw in enumerate(raws):
            want = ENTRY_LEAF if leaf[k] else ENTRY_TABLE if tab[k] else \
                ENTRY_RESERVED if bad[k] else ENTRY_INVALID
            assert fmt.decode(raw, level) == want, (hex(raw), level)
            assert bool(valid[k]) == (want != ENTRY_INVALID)


class _PageCounter:
    """A folding visitor of :func:`kmemdbg.tree.walk_range`: counts pages, records faults."""

    def __init__(self, fmt):
        self.fmt = fmt
        self.pages = []
        self.faults = []

    def page(self, table_pa, level, base, table, ctx, descend):
        self.pages.append((table_pa, level))
        n = 1
        if level < len(self.fmt.levels) - 1:
            for raw in table:
                if self.fmt.decode(raw, level) == ENTRY_TABLE:
                    n += yield from descend(self.fmt.output_address(raw), level + 1, 0, ctx)
        return n

    def again(self, table_pa, level, base, ctx):
        yield from ()
        return 0

    def fault(self, table_pa, level, base, reason, ctx, other_level, detail):
        yield from ()
        self.faults.append((reason, table_pa, level, other_level))
        return 0


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_tree_walk_visits_each_model_table_once_and_folds_to_the_root(case):
    e = env(case)
    cache = TableCache(e.model.memory)
    v = _PageCounter(e.fmt)
    level_of = {}
    n = fold(walk_range(e.fmt, cache, e.tables.root_pa, v, level_of))
    assert n == len(v.pages) == len(set(v.pages)) == e.model.space.table_count()
    assert dict(v.pages) == level_of and not v.faults


@pytest.mark.parametrize("case", BASE[:4], ids=BASE_IDS[:4])
def test_tree_walk_gives_a_table_seen_at_another_level_to_the_fault_hook(case):
    model, kt = fresh(case)
    sp, geo = model.space, model.space.geometry
    last = len(geo.levels) - 1
    va = next(va for level, va, raw, kind in sp.entries()
              if kind == "mapped" and level == geo.levels[last].name)
    sp.plant(va, geo.levels[last - 1].name, sp.encoder.table(kt.root_pa))
    v = _PageCounter(kt.format)
    fold(walk_range(kt.format, TableCache(model.memory), kt.root_pa, v))
    assert v.faults == [(TABLE_LOOP, kt.root_pa, last, 0)]
