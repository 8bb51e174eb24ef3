"""The compiled walk gives exactly what the pure-Python walker gives, or defers to it.

Oracle: the pure-Python :class:`~kmemdbg.walk.Walker` (``KMEMDBG_PURE_PYTHON=1``),
the reference every other walker test checks against drgn, the guest's reports
and the model.  Compared on every committed real-kernel slice and every full
dump in the cache (mapped leaves from both ends of every ptdump range, random
addresses in every layout region, random 64-bit values), and on seeded garbage
tables with holes for every paging format.  Compared: the full walk record,
``translate_one``, ``translate_many`` and virtual reads (bytes, or the same
error line).
"""
from __future__ import annotations

import random

import drgn
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmemdbg import walk_accel
from kmemdbg.errors import KmemdbgError, PhysicalReadError
from kmemdbg.memory import MemorySource, PhysicalView
from kmemdbg.session import Session
from kmemdbg.walk import Walker

from realdumps import all_dumps, kernel_of, open_dump
from test_walker_fuzz import FORMATS

pytestmark = pytest.mark.skipif(not walk_accel.enabled(), reason="kmemdbg._walkc is not built here "
                                                                  "(or KMEMDBG_PURE_PYTHON is set)")

DUMPS = all_dumps()


def pure_walker(monkeypatch, fmt, memory, root, half="both", cache=None) -> Walker:
    monkeypatch.setattr(walk_accel, "ENABLED", False)
    try:
        w = Walker(fmt, memory, root, cache, half=half)
    finally:
        monkeypatch.undo()
    assert w._accel is None
    return w


def read_or_error(session: Session, va: int, size: int):
    try:
        return session.read(va, size)
    except KmemdbgError as err:
        return ("error", str(err))


def compare(fast: Walker, pure: Walker, vas, reads=()) -> int:
    """Assert both walkers agree on ``vas``; returns how many the compiled walk answered itself."""
    answered = 0
    for va in vas:
        answered += fast._accel.translate(va) is not None
        assert fast.walk(va) == pure.walk(va), hex(va)
        assert fast.translate_one(va) == pure.translate_one(va), hex(va)
    assert fast.translate_many(vas) == pure.translate_many(vas)
    return answered


def sample_addresses(k, rng, count=400):
    from kmemdbg.ptdump import ptdump

    vas = []
    for r in ptdump(k, owners=False):
        vas += [r.start, r.end - 1, rng.randrange(r.start, r.end)]
    rng.shuffle(vas)
    vas = vas[:count]
    for region in k.layout.regions:
        if region.end > region.start:
            vas += [rng.randrange(region.start, region.end) for _ in range(20)]
    vas += [rng.getrandbits(64) for _ in range(100)]
    vas += [-1, 1 << 64, (1 << 64) + 0x1000, 0, 0x0000800000000000, 0xFFFF800000000000]
    return vas


@pytest.mark.real
@pytest.mark.parametrize("dump", DUMPS, ids=lambda d: d.id)
def test_real_kernels_compiled_walk_matches_the_pure_walker(dump, monkeypatch):
    k = kernel_of(dump)
    if k.walker._accel is None:
        pytest.skip(f"{dump.id}: the source has no physical view")
    rng = random.Random(dump.id)
    vas = sample_addresses(k, rng)
    t = k.tables
    fast = Walker(t.format, k.memory, t.root_pa, half=k.walker.half)
    pure = pure_walker(monkeypatch, t.format, k.memory, t.root_pa, half=k.walker.half)
    answered = compare(fast, pure, vas)
    assert answered > len(vas) // 3, "the compiled walk answered too few plain walks to be tested"
    # virtual reads: within a page, across pages, across a fault, and of no bytes
    fast_s = Session(k.memory, k.info, t, fast, "fast")
    pure_s = Session(k.memory, k.info, t, pure, "pure")
    for va in vas[:300]:
        for size in (0, 1, 8, 4096, 3 * 4096 + 5):
            assert read_or_error(fast_s, va, size) == read_or_error(pure_s, va, size), (hex(va), size)


@pytest.mark.real
@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "full"], ids=lambda d: d.id)
def test_real_kernels_pages_the_dump_lacks_are_refused_in_c_with_the_sources_words(dump, monkeypatch):
    """Mapped pages whose frames the dump does not hold (ioremapped device memory): drgn's own
    read of the same address fails too; the compiled read raises the PhysicalReadError the
    source raises on the pure path, the same args and words, without asking the source."""
    k, prog = open_dump(dump)
    if k.walker._accel is None:
        pytest.skip(f"{dump.id}: the source has no physical view")
    t = k.tables
    pure = Session(k.memory, k.info, t, pure_walker(monkeypatch, t.format, k.memory, t.root_pa,
                                                    half=k.walker.half), "pure")
    vas = sample_addresses(k, random.Random(dump.id), count=3000)
    lacked = 0
    for va in vas:
        va &= ~7                    # inside one page: the compiled read's own case
        try:
            pure.read(va, 8)
            continue
        except PhysicalReadError as err:
            want = err
        except KmemdbgError:
            continue                # not mapped: a fault, which the walker test compares
        with pytest.raises(drgn.FaultError):
            prog.read(va, 8)
        with pytest.raises(PhysicalReadError) as got:
            k.walker._accel.read(va, 8)
        assert got.value.args == want.args and str(got.value) == str(want), hex(va)
        lacked += 1
    if dump.recipe.startswith("arm64"):
        assert lacked, "arm64 maps PCIe ECAM, which no dump holds: none of it was sampled"




PAGES = 24


class GarbageImage(MemorySource):
    """Pages of seeded garbage at physical 0..pages*page_size, held in three segments with holes
    between them; entries point mostly back into the image, with valid, table and leaf bits on."""

    def __init__(self, seed: int, page_size: int, pages: int) -> None:
        rng = random.Random(seed)
        words = bytearray()
        for _ in range(pages * page_size // 8):
            kind = rng.random()
            if kind < 0.08:
                val = rng.getrandbits(64)
            elif kind < 0.16:
                val = 0
            else:
                val = rng.randrange(pages) * page_size | rng.choice((1, 3, 0x63, 0xe3, 0x703, 0x1, 0x401, 0x583))
                val |= rng.getrandbits(64) & rng.choice((0, 0, 0, 0, 1 << 63, 0xFFF0000000000000, 0x300,
                                                         1 << 51))
            words += val.to_bytes(8, "little")
        self.data = bytes(words)
        third = pages // 3 * page_size
        hole = page_size
        # [0, third) and [third + hole, 2 * third) and [2 * third + hole + 8, end): a hole of a page,
        # then a hole of a page and 8 bytes, so a table can straddle a segment's end
        self.segments = ((0, third, 0), (third + hole, 2 * third, third + hole),
                         (2 * third + hole + 8, len(self.data), 2 * third + hole + 8))

    def read(self, pa: int, size: int) -> bytes:
        for start, end, off in self.segments:
            if start <= pa and pa + size <= end:
                return self.data[off + pa - start:off + pa - start + size]
        raise PhysicalReadError(pa, size, "a hole of the garbage image")

    def physical_view(self):
        return PhysicalView(self.data, self.segments)


#: what a DeclaredHoles image says of a read it refuses (a template for the first byte's address)
HOLE = "physical {:#x} is in a hole of the garbage image"


class DeclaredHoles(GarbageImage):
    """A garbage image whose view declares where it holds nothing, as a dump file's does."""

    def read(self, pa: int, size: int) -> bytes:
        for start, end, off in self.segments:
            if start <= pa and pa + size <= end:
                return self.data[off + pa - start:off + pa - start + size]
        raise PhysicalReadError(pa, size, HOLE, pa)

    def physical_view(self):
        return PhysicalView(self.data, self.segments, tuple((a, b) for a, b, _o in self.segments), HOLE)


def read_errors(walker: Walker, vas, sizes) -> list:
    """What a session over ``walker`` reads at each of ``vas`` for each of ``sizes``: bytes, or the
    error's type and args."""
    s = Session(walker.memory, None, None, walker, "garbage")
    out = []
    for va in vas:
        for size in sizes:
            try:
                out.append(s.read(va, size))
            except KmemdbgError as err:
                out.append((type(err).__name__, err.args))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(fmt_i=st.integers(0, len(FORMATS) - 1), seed=st.integers(0, 2**32),
       root_page=st.integers(0, PAGES - 1), root_off=st.sampled_from([0, 0, 8, 64]),
       half=st.sampled_from(["both", "upper", "lower"]),
       vas=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=24))
def test_garbage_tables_compiled_walk_matches_the_pure_walker(monkeypatch, fmt_i, seed, root_page, root_off,
                                                              half, vas):
    fmt = FORMATS[fmt_i]
    mem = GarbageImage(seed, fmt.page_size, PAGES)
    root = root_page * fmt.page_size + root_off
    fast = Walker(fmt, mem, root, half=half)
    assert fast._accel is not None
    pure = pure_walker(monkeypatch, fmt, mem, root, half=half)
    compare(fast, pure, vas + canonical(fmt, random.Random(seed), 24))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(fmt_i=st.integers(0, len(FORMATS) - 1), seed=st.integers(0, 2**32),
       root_page=st.integers(0, PAGES - 1), vas=st.lists(st.integers(0, 2**64 - 1), max_size=12))
def test_garbage_tables_compiled_reads_refuse_declared_holes_as_the_source_does(monkeypatch, fmt_i, seed,
                                                                               root_page, vas):
    fmt = FORMATS[fmt_i]
    mem = DeclaredHoles(seed, fmt.page_size, PAGES)
    root = root_page * fmt.page_size
    fast, pure = Walker(fmt, mem, root), pure_walker(monkeypatch, fmt, mem, root)
    vas = vas + canonical(fmt, random.Random(seed), 24)
    sizes = (1, 8, fmt.page_size, fmt.page_size + 9)
    assert read_errors(fast, vas, sizes) == read_errors(pure, vas, sizes)


def test_garbage_tables_compiled_reads_do_refuse_holes_themselves():
    refused = 0
    for fmt in FORMATS:
        for seed in range(12):
            mem = DeclaredHoles(seed, fmt.page_size, PAGES)
            w = Walker(fmt, mem, seed % PAGES * fmt.page_size)
            for va in canonical(fmt, random.Random(seed), 150):
                try:
                    w._accel.read(va, 8)
                except PhysicalReadError as err:
                    assert err.args[2:] == (HOLE, err.pa) and err.size == 8
                    refused += 1
    assert refused >= 10, refused


def canonical(fmt, rng, n):
    """``n`` random addresses in the translated ranges of ``fmt`` (either half)."""
    top = ((1 << 64) - 1) ^ ((1 << fmt.uniform_from) - 1)
    return [rng.getrandbits(fmt.uniform_from) | (top if rng.random() < 0.5 else 0) for _ in range(n)]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_garbage_tables_the_compiled_walk_answers_often_and_the_same(monkeypatch, fmt):
    answered = total = 0
    for seed in range(12):
        mem = GarbageImage(seed, fmt.page_size, PAGES)
        root = seed % PAGES * fmt.page_size
        vas = canonical(fmt, random.Random(seed), 150)
        answered += compare(Walker(fmt, mem, root), pure_walker(monkeypatch, fmt, mem, root), vas)
        total += len(vas)
    # the plain case must occur (1 to 25% of these addresses, by format) for the comparison
    # to test the compiled walk; the faults test its deferral to the pure walker
    assert answered >= 10, (answered, total)


def test_a_replaced_table_turns_the_compiled_walk_off():
    fmt = FORMATS[0]
    mem = GarbageImage(7, fmt.page_size, 12)
    w = Walker(fmt, mem, 0)
    assert w._accel is not None
    w.cache.table(0, fmt.table_size(0))
    w.cache._tables[0] = memoryview(bytes(fmt.table_size(0))).cast("Q")    # a patched root: all zero
    walk = w.walk(0xFFFF888000000000)
    assert w._accel is None
    assert walk.fault is not None and walk.fault.reason == "not-present"


def test_live_sources_and_sources_without_a_view_walk_in_python():
    class Live(GarbageImage):
        live = True

    fmt = FORMATS[0]
    assert Walker(fmt, Live(3, 4096, 12), 0)._accel is None

    class NoView(GarbageImage):
        def physical_view(self):
            return None

    assert Walker(fmt, NoView(3, 4096, 12), 0)._accel is None


def test_overlapping_segments_are_left_to_the_pure_walker():
    fmt = FORMATS[0]
    mem = GarbageImage(5, 4096, 12)
    mem.segments = ((0, 8192, 0), (4096, 12288, 4096))
    assert Walker(fmt, mem, 0)._accel is None
