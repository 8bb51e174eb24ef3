"""The generic walker against the MMU model, in every paging mode.

Oracle: the model's ground truth (``KernelModel.truth`` / ``AddressSpace.truth``),
a record of what was mapped that is never a walk of the bytes, written by
encoders that share no code with ``kmemdbg.arch``.  The walker is set up the
way a dump is opened: format and root from the model's VMCOREINFO text through
``kernel_tables``, so the VMCOREINFO path is under test too.

Known disagreements between kmemdbg and the model are pinned by strict
xfail tests at the end of this file (each names the kmemdbg line at fault);
the property tests leave exactly those cases out so that they stay green.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmemdbg.arch.base import (NON_CANONICAL, NOT_PRESENT, PROT_NONE, RESERVED, SWAP, TABLE_LOOP,
                               TABLE_UNREADABLE)
from kmemdbg.kernel_tables import kernel_tables
from kmemdbg.model import MODES, build_kernel
from kmemdbg.model import arm64 as a64
from kmemdbg.model import x86
from kmemdbg.vmcoreinfo import VmcoreInfo
from kmemdbg.walk import Walker

M64 = (1 << 64) - 1
K, M, G = 1 << 10, 1 << 20, 1 << 30
#: A physical range that is RAM in no model (x86 RAM ends near 2 GiB, arm64 near
#: 3 GiB, the high 52-bit bank starts at 0xb000000000000).
HOLE_PA = 0x10_0000_0000


@dataclass(frozen=True)
class Case:
    id: str
    mode: str
    kw: Tuple[Tuple[str, object], ...] = ()

    @property
    def kwargs(self) -> dict:
        return dict(self.kw)

    @property
    def arch(self) -> str:
        return MODES[self.mode].arch

    @property
    def era(self) -> str:
        return self.kwargs.get("era", "6.9")


CASES = [Case(mode, mode) for mode in sorted(MODES)] + [
    Case("x86_64-4level-nokaslr", "x86_64-4level", (("kaslr", False),)),
    Case("x86_64-4level-sme47-pa48", "x86_64-4level", (("sme_mask", 1 << 47), ("phys_bits", 48))),
    Case("x86_64-5level-sme47-pa48", "x86_64-5level", (("sme_mask", 1 << 47), ("phys_bits", 48))),
    Case("x86_64-5level-nokaslr", "x86_64-5level", (("kaslr", False),)),
    Case("arm64-4k-52-nokaslr", "arm64-4k-52", (("kaslr", False),)),
    Case("arm64-64k-52on48-nokaslr", "arm64-64k-52on48", (("kaslr", False),)),
    Case("arm64-4k-48-era5.11", "arm64-4k-48", (("era", "5.11"),)),
    Case("arm64-64k-52on48-era5.11", "arm64-64k-52on48", (("era", "5.11"),)),
    Case("arm64-64k-52-era5.11", "arm64-64k-52", (("era", "5.11"),)),
    Case("arm64-4k-39-era5.4", "arm64-4k-39", (("era", "5.4"),)),
    Case("arm64-16k-47-era5.4", "arm64-16k-47", (("era", "5.4"),)),
    Case("arm64-64k-42-era5.4", "arm64-64k-42", (("era", "5.4"),)),
    Case("arm64-4k-48-era4.x", "arm64-4k-48", (("era", "4.x"), ("kaslr", False))),
    Case("arm64-16k-48-era4.x", "arm64-16k-48", (("era", "4.x"),)),
    Case("arm64-64k-48-era4.x", "arm64-64k-48", (("era", "4.x"),)),
]
CASE_IDS = [c.id for c in CASES]
ARM64_CASES = [c for c in CASES if c.arch == "arm64"]


# -- building the models ----------------------------------------------------------------------

def _free_va(model, size: int, depth: int, rng: random.Random) -> int:
    """A ``size``-aligned kernel VA in the vmalloc area where every ``depth``-level entry of
    ``[va, va + size)`` is free (the model's truth is "unmapped" no deeper than ``depth``)."""
    sp = model.space
    step = sp.geometry.levels[depth].entry_span
    lo, hi = model.params["vmalloc_start"], model.params["vmalloc_end"]
    first = -(-lo // size)

    def free(va: int) -> bool:
        for off in range(0, size, step):
            t = sp.truth(va + off)
            if t.status != "unmapped" or t.level is None or sp.geometry.depth_of(t.level) > depth:
                return False
        return True

    for _ in range(4096):
        va = (first + rng.randrange(max((hi - size) // size - first, 1))) * size
        if free(va):
            return va
    raise AssertionError(f"no free 0x{size:x}-aligned VA in the vmalloc area")


def pa_limit(model) -> int:
    """Usable physical address bits: MAXPHYADDR / the OA encoding, below the C-bit."""
    p = model.params
    limit = p["phys_bits"] if p["arch"] == "x86_64" else (48 if p["pa_encoding"] == "48" else 52)
    if p["sme_mask"]:
        limit = min(limit, p["sme_mask"].bit_length() - 1)
    return limit


def _pick_pa(model, size: int, rng: random.Random, high: bool) -> int:
    """A ``size``-aligned physical address; with ``high`` it uses the top PA bits the
    machine and encoding allow (bits 51..48 on 52-bit PA machines, avoiding the C-bit)."""
    limit, sme = pa_limit(model), model.params["sme_mask"]
    if high:
        top = 0xF << 48 if limit == 52 else 1 << (limit - 1)
        pa = top | rng.getrandbits(limit - 1)
    else:
        pa = rng.getrandbits(limit - 1)
    pa &= ((1 << limit) - 1) & ~(size - 1) & ~sme
    return pa


def _leaf_flags(arch: str, rng: random.Random):
    if arch == "x86_64":
        return rng.choice([x86.PAGE_KERNEL, x86.PAGE_KERNEL_RO, x86.PAGE_KERNEL_ROX,
                           x86.PAGE_KERNEL_EXEC, x86.PAGE_KERNEL_NOCACHE,
                           x86.PAGE_USER_RO_EXEC | {"RW"}])
    return rng.choice([a64.PAGE_KERNEL, a64.PAGE_KERNEL_RO, a64.PAGE_KERNEL_ROX,
                       a64.PAGE_KERNEL_EXEC, a64.PAGE_KERNEL | {"USER"},
                       a64.PAGE_KERNEL_ROX | {"USER"}])


def _table_flags(arch: str, rng: random.Random):
    if arch == "x86_64":
        return rng.choice([x86.KERNEL_TABLE, x86.USER_TABLE, x86.KERNEL_TABLE | {"NX"},
                           x86.USER_TABLE - {"RW"}])
    return rng.choice([a64.KERNEL_TABLE, a64.LINEAR_TABLE, frozenset({"APTable1"}),
                       frozenset({"APTable0", "UXNTable"}), frozenset()])


def enrich(model, rng: random.Random) -> List[Tuple[int, int]]:
    """Add a leaf of every size the geometry allows (with PAs using the top bits the machine
    has), and on arm64 contiguous runs at the last level and the level above it.

    Returns ``(va, size)`` of what was added.
    """
    sp, geo, arch = model.space, model.space.geometry, model.params["arch"]
    added = []
    for depth, lv in enumerate(geo.levels):
        if not lv.leaf_ok:
            continue
        size = lv.entry_span
        for high in (True, False):
            va = _free_va(model, 2 * size, depth, rng)
            sp.map(va, _pick_pa(model, size, rng, high), size, size, _leaf_flags(arch, rng),
                   table_flags=_table_flags(arch, rng))
            added.append((va, size))
    if arch == "arm64":
        last = len(geo.levels) - 1
        for depth in (last, last - 1):
            if depth < 0 or not geo.levels[depth].leaf_ok:
                continue
            span = geo.levels[depth].entry_span
            run = a64.cont_entries(geo.page_shift, depth != last) * span
            va = _free_va(model, 2 * run, depth, rng)
            # one run and a half: the half run must not get the hint
            pa = _pick_pa(model, run, rng, high=depth == last)
            sp.map(va, pa, run + run // 2, span, _leaf_flags(arch, rng), cont=True,
                   table_flags=_table_flags(arch, rng))
            added.append((va, run + run // 2))
    return added


@dataclass
class Env:
    case: Case
    model: object
    tables: object                      # KernelTables from the VMCOREINFO text
    ranges: list
    user_entries: list

    @property
    def fmt(self):
        return self.tables.format

    def walker(self, root_pa: Optional[int] = None) -> Walker:
        # arm64 kernel tables (TTBR1) translate the upper half, user tables the lower
        half = "both"
        if self.case.arch == "arm64":
            half = "upper" if root_pa in (None, self.tables.root_pa) else "lower"
        return Walker(self.fmt, self.model.memory,
                      self.tables.root_pa if root_pa is None else root_pa, half=half)


def build(case: Case, seed: int):
    model = build_kernel(case.mode, seed=seed, **case.kwargs)
    model.kmalloc(3 * 4096)
    model.vmalloc(5 * model.params["page_size"])
    model.vmalloc(2 * M, huge=True)
    enrich(model, random.Random(f"{case.id}/{seed}"))
    return model


@functools.lru_cache(maxsize=None)
def env(case: Case, seed: int = 0) -> Env:
    """A model of ``case`` with every leaf size, read back through its VMCOREINFO."""
    model = build(case, seed)
    kt = kernel_tables(VmcoreInfo.parse(model.vmcoreinfo()), model.params["arch"])
    return Env(case, model, kt, list(model.mapped_ranges()), list(model.user.entries()))


def all_envs():
    return [env(c) for c in CASES]


# -- comparing a walk with the truth -----------------------------------------------------------

def known_disagreement(case: Case, t, space: str) -> Optional[str]:
    """Why kmemdbg is known to differ from the model for this truth, or None.

    Each reason has a strict xfail test below.
    """
    return None


def swap_detail_comparable(case: Case) -> bool:
    # arm64 6.10+ moved the swap type to bits 6..10 and the offset to 12..61;
    # kmemdbg picks the layout from the release (the model's eras carry one each).
    return True


def expected_batch(t) -> Tuple[Optional[int], Optional[int], Optional[Tuple[Optional[str], str]]]:
    """(pa, page_size, fault) translate_many must report for truth ``t``."""
    if t.status == "mapped":
        return t.pa, t.page_size, None
    reason = {"unmapped": NOT_PRESENT, "non-canonical": NON_CANONICAL, "prot-none": PROT_NONE,
              "swap": SWAP, "not-present": NOT_PRESENT}[t.status]
    return None, None, (t.level, reason)


def assert_walk_is_truth(case: Case, fmt, walk, t, space: str = "kernel") -> None:
    """The single-walk record agrees with the model's truth for the same VA."""
    va = t.va
    got = walk.fault.message(va) if walk.fault else f"pa 0x{walk.pa:x} size 0x{walk.page_size:x}"
    ctx = f"{case.id} {space} 0x{va:016x}: model {t.status} ({t.reason}), walker {got}"
    if t.status == "mapped":
        assert walk.fault is None, ctx
        assert (walk.pa, walk.page_size) == (t.pa, t.page_size), ctx
        leaf = walk.steps[-1]
        assert (leaf.level, leaf.entry_pa, leaf.raw, leaf.kind) == \
            (t.level, t.entry_pa, t.raw, "leaf"), ctx
        if case.arch == "arm64":
            assert ("CONT" in leaf.flags) == (t.contiguous_size is not None), ctx
        perms = walk.permissions
        assert perms.kernel_read
        assert perms.kernel_write == t.writable, ctx
        assert perms.user_read == t.user, ctx
        # The model's "executable" is the kernel's view without SMEP; kmemdbg
        # applies SMEP (x86) / the implicit PXN of EL0-writable pages (arm64,
        # which the model applies too), so on x86 a user page is never
        # kernel-executable.
        kexec = t.executable and not (case.arch == "x86_64" and t.user)
        assert perms.kernel_exec == kexec, ctx
        if case.arch == "x86_64" and case.kwargs.get("sme_mask"):
            sme = case.kwargs["sme_mask"]
            assert all(s.raw & sme for s in walk.steps), ctx
            assert "ENC" in leaf.flags and not walk.pa & sme, ctx
        return
    assert walk.fault is not None and walk.pa is None and walk.page_size is None, ctx
    fault = walk.fault
    if t.status == "non-canonical":
        assert (fault.reason, fault.level, walk.steps) == (NON_CANONICAL, None, ()), ctx
        return
    expected = {"unmapped": NOT_PRESENT, "prot-none": PROT_NONE, "swap": SWAP,
                "not-present": NOT_PRESENT}[t.status]
    assert fault.reason == expected, ctx
    if t.level is None and "TTBR" in (t.reason or ""):
        # the other half of an arm64 address space: these tables never see it
        assert (fault.level, walk.steps) == (None, ()), ctx
        return
    assert (fault.level, fault.entry_pa, fault.raw) == (t.level, t.entry_pa, t.raw), ctx
    assert walk.steps[-1].kind == "invalid" and len(walk.steps) == \
        fmt.level_named(t.level) + 1, ctx
    if t.status == "swap" and swap_detail_comparable(case):
        assert f"type {t.swap_type} " in fault.detail, ctx
        assert f"offset 0x{t.swap_offset:x}" in fault.detail, ctx


def check_addresses(e: Env, vas, space: str = "kernel") -> dict:
    """Walk ``vas`` singly and in one batch; both must match the truth.  Returns status counts."""
    if space == "kernel":
        truth, root = e.model.truth, e.tables.root_pa
    else:
        truth, root = e.model.user.truth, e.model.user.root_pa
    walker = e.walker(root)
    truths = [truth(va) for va in vas]
    counts: dict = {}
    kept = []
    for t in truths:
        if t.status == "raw" or known_disagreement(e.case, t, space):
            continue
        counts[t.status] = counts.get(t.status, 0) + 1
        assert_walk_is_truth(e.case, e.fmt, walker.walk(t.va), t, space)
        kept.append(t)
    batch = e.walker(root).translate_many([t.va for t in kept])
    for i, t in enumerate(kept):
        got = (batch.pas[i], batch.page_sizes[i], batch.faults[i])
        assert got == expected_batch(t), (e.case.id, space, hex(t.va), t.status, t.reason, got)
    return counts


# -- address strategies ---------------------------------------------------------------------

def in_scope(e: Env, va: int, space: str) -> bool:
    """Addresses the property tests check: all but the two known-bug zones on arm64
    (the other TTBR half, and VAs between the run-time and the table VA size)."""
    return True


def addresses(e: Env, space: str = "kernel"):
    """Mapped addresses (by range and by size), edges of mappings, region samples,
    random canonical and non-canonical values."""
    ranges = e.ranges if space == "kernel" else \
        [r for r in e.model.user.mapped_ranges()]
    ps = e.model.params["page_size"]
    inside = st.sampled_from(ranges).flatmap(
        lambda r: st.integers(0, r.size - 1).map(lambda off: (r.va + off) & M64))
    edges = st.tuples(st.sampled_from(ranges), st.booleans(), st.integers(0, 4 * ps)).map(
        lambda x: ((x[0].va - 1 - x[2]) if x[1] else (x[0].va + x[0].size + x[2])) & M64)
    bits = e.model.params["runtime_va_bits"]
    if space == "kernel":
        regions = st.sampled_from(e.model.regions).flatmap(
            lambda r: st.integers(r[1], max(r[1], r[2] - 1)))
        if e.case.arch == "arm64":
            canonical = st.integers((1 << 64) - (1 << bits), M64)
        else:
            canonical = st.integers((1 << 64) - (1 << (bits - 1)), M64)
        entries = st.nothing()
    else:
        regions = st.integers(0, (1 << (bits - 1)) - 1)
        canonical = st.integers(0, (1 << (bits - 1)) - 1)
        entries = st.sampled_from(e.user_entries).flatmap(
            lambda ent: st.integers(0, ps - 1).map(lambda off: ent[1] + off))
    noncanonical = st.integers(0, M64)
    return st.one_of(inside, inside, edges, regions, canonical, noncanonical, entries).filter(
        lambda va: in_scope(e, va, space))


# -- properties: every mode ------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vmcoreinfo_gives_the_model_root_and_format(case):
    e = env(case)
    p = e.model.params
    assert e.tables.root_pa == p["root_pa"]
    assert e.tables.root_va == p["root_va"]
    assert [lv.name for lv in e.fmt.levels] == [lv.name for lv in e.model.space.geometry.levels]
    assert [lv.shift for lv in e.fmt.levels] == [lv.shift for lv in e.model.space.geometry.levels]
    assert [lv.leaf_ok for lv in e.fmt.levels] == \
        [lv.leaf_ok for lv in e.model.space.geometry.levels]
    assert e.fmt.page_size == p["page_size"]
    assert e.fmt.va_bits == p["walk_va_bits"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_random_kernel_addresses_walk_to_the_model_truth(case, data):
    e = env(case)
    vas = data.draw(st.lists(addresses(e, "kernel"), min_size=1, max_size=80))
    check_addresses(e, vas, "kernel")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_user_addresses_walk_to_the_model_truth(case, data):
    e = env(case)
    vas = data.draw(st.lists(addresses(e, "user"), min_size=1, max_size=60))
    check_addresses(e, vas, "user")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_recorded_entry_first_and_last_byte_match_truth(case):
    """Exhaustive over the model's record: each entry (leaf, non-present, PROT_NONE,
    swap) at its first and last byte, kernel and user roots."""
    e = env(case)
    counts: dict = {}
    for space, entries, geo in (("kernel", list(e.model.space.entries()), e.model.space.geometry),
                                ("user", e.user_entries, e.model.user.geometry)):
        vas = []
        for level, va, raw, kind in entries:
            span = geo.levels[geo.depth_of(level)].entry_span
            vas += [va, (va + span - 1) & M64]
        for status, n in check_addresses(e, vas, space).items():
            counts[(space, status)] = counts.get((space, status), 0) + n
    assert counts[("kernel", "mapped")] > 100
    assert counts[("user", "mapped")] >= 5
    assert counts.get(("user", "swap"), 0) >= 2
    if not (case.arch == "arm64" and case.era != "6.9"):
        assert counts.get(("user", "prot-none"), 0) >= 2
    # KFENCE-like pool: every other page of 2 MiB is a non-present guard (2 bytes each);
    # on x86 they are a known disagreement (xfail test below)
    if case.arch == "arm64":
        assert counts.get(("kernel", "not-present"), 0) == 2 * M // e.model.params["page_size"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_leaf_size_of_the_mode_is_walked(case):
    """One leaf of each size the geometry allows, including the blocks that need 52-bit
    output addresses (4K L0, 16K L1, 64K L1) and PAs using bits 51..48."""
    e = env(case)
    geo = e.model.space.geometry
    want = {lv.entry_span for lv in geo.levels if lv.leaf_ok}
    walker = e.walker()
    seen = {}
    for r in e.ranges:
        t = e.model.truth(r.va)
        w = walker.walk(r.va)
        assert_walk_is_truth(case, e.fmt, w, t)
        seen.setdefault(r.page_size, []).append(w.pa)
    assert set(seen) == want
    if e.model.params["phys_bits"] == 52 and e.model.params["pa_encoding"] != "48":
        assert any(pa >> 48 == 0xF for pas in seen.values() for pa in pas)
    # the top leaf sizes (x86 1G, arm64 L0/L1 blocks) have a high-PA instance too
    top = max(want)
    assert any(pa >> (pa_limit(e.model) - 1) for pa in seen[top])


@pytest.mark.parametrize("case", ARM64_CASES, ids=[c.id for c in ARM64_CASES])
def test_contiguous_runs_translate_per_entry_with_the_hint(case):
    e = env(case)
    walker = e.walker()
    runs = [(lvl, va) for lvl, va, raw, kind in e.model.space.entries()
            if kind == "mapped" and raw >> a64.LEAF_BITS["CONT"] & 1]
    assert runs
    for lvl, va in runs[::7]:
        t = e.model.truth(va + 0x123)
        w = walker.walk(va + 0x123)
        assert_walk_is_truth(case, e.fmt, w, t)
        assert "CONT" in w.steps[-1].flags and t.contiguous_size > t.page_size
    # the half run after a full run keeps the entries but drops the hint
    last = len(e.fmt.levels) - 1
    half = [va for lvl, va, raw, kind in e.model.space.entries()
            if kind == "mapped" and not raw >> a64.LEAF_BITS["CONT"] & 1 and lvl == e.fmt.levels[last].name]
    assert half


@pytest.mark.parametrize("case", [c for c in CASES if c.arch == "x86_64"],
                         ids=[c.id for c in CASES if c.arch == "x86_64"])
def test_x86_sme_bit_is_kept_out_of_every_table_and_leaf_address(case):
    e = env(case)
    sme = case.kwargs.get("sme_mask", 0)
    assert e.fmt.param("sme_mask") == sme
    walker = e.walker()
    for r in e.ranges[::5]:
        w = walker.walk(r.va)
        assert w.pa == e.model.truth(r.va).pa
        for step in w.steps:
            assert bool(step.raw & sme) == bool(sme)
            assert not step.table_pa & sme if sme else True


# -- planted garbage -----------------------------------------------------------------------

def fresh(case: Case, seed: int = 5, with_phys_bits: bool = False):
    """A new model (safe to plant into) and its tables from VMCOREINFO.  VMCOREINFO has no
    MAXPHYADDR, so kernel_tables assumes 52 unless ``with_phys_bits`` passes the model's."""
    model = build_kernel(case.mode, seed=seed, **case.kwargs)
    extra = {"phys_bits": model.params["phys_bits"]} if with_phys_bits else {}
    kt = kernel_tables(VmcoreInfo.parse(model.vmcoreinfo()), model.params["arch"], **extra)
    return model, kt


def _path_tables(model, va) -> List[int]:
    """Physical addresses of the tables the model's geometry puts on the path of ``va``."""
    sp = model.space
    out = []
    for d in range(len(sp.geometry.levels)):
        entry_pa = sp.entry_pa(va, d)
        if entry_pa is None:
            break
        out.append(entry_pa & ~(sp.geometry.table_bytes - 1))
    return out


def _deep_mapped_va(model) -> int:
    """A base-page mapped VA (all levels present) from the model's own record."""
    last = model.space.geometry.levels[-1].name
    for level, va, raw, kind in model.space.entries():
        if kind == "mapped" and level == last:
            return va
    raise AssertionError("no base page")


@pytest.mark.parametrize("case", CASES[:14], ids=CASE_IDS[:14])
def test_table_pointing_back_at_the_root_is_a_table_loop(case):
    model, kt = fresh(case)
    va = _deep_mapped_va(model)
    levels = model.space.geometry.levels
    # plant at the level above the last: its "next table" is the root again
    above = levels[-2].name
    model.space.plant(va, above, model.space.encoder.table(model.space.root_pa))
    walker = Walker(kt.format, model.memory, kt.root_pa)
    w = walker.walk(va)
    assert w.fault is not None and w.fault.reason == TABLE_LOOP
    assert w.fault.level == levels[-1].name and w.fault.table_pa == kt.root_pa
    assert len(w.steps) == len(levels) - 1
    assert f"0x{kt.root_pa:x}" in w.fault.detail
    assert Walker(kt.format, model.memory, kt.root_pa).translate_many([va, va + 8]).faults == \
        ((levels[-1].name, TABLE_LOOP),) * 2


@pytest.mark.parametrize("case", CASES[:14], ids=CASE_IDS[:14])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_table_pointing_at_any_table_above_it_loops_or_stays_bounded(case, data):
    """Plant, at a random level of a mapped path, a table entry pointing at a random table
    of that path at or above the planted level.  The walk meets that table at a second
    level and must say table-loop; the batch must agree."""
    model, kt = fresh(case, seed=data.draw(st.integers(0, 3)))
    va = _deep_mapped_va(model)
    levels = model.space.geometry.levels
    tables = _path_tables(model, va)
    depth = data.draw(st.integers(0, len(levels) - 2))
    target = data.draw(st.integers(0, depth))
    model.space.plant(va, levels[depth].name, model.space.encoder.table(tables[target]))
    probes = [va, va + 8, va ^ (1 << levels[-1].shift)]
    walker = Walker(kt.format, model.memory, kt.root_pa)
    walks = [walker.walk(p) for p in probes]
    for w in walks:
        assert len(w.steps) <= len(levels)
    assert walks[0].fault is not None and walks[0].fault.reason == TABLE_LOOP
    assert walks[0].fault.level == levels[depth + 1].name
    assert walks[0].fault.table_pa == tables[target]
    batch = Walker(kt.format, model.memory, kt.root_pa).translate_many(probes)
    for i, w in enumerate(walks):
        assert (batch.pas[i], batch.faults[i]) == \
            (w.pa, None if w.fault is None else (w.fault.level, w.fault.reason))


@pytest.mark.parametrize("case", CASES[:14], ids=CASE_IDS[:14])
def test_table_entry_into_a_physical_hole_is_table_unreadable_naming_level_and_pa(case):
    model, kt = fresh(case)
    va = _deep_mapped_va(model)
    levels = model.space.geometry.levels
    for depth in range(len(levels) - 1):
        m2, kt2 = fresh(case)
        m2.space.plant(va, levels[depth].name, m2.space.encoder.table(HOLE_PA))
        assert not m2.memory.in_ram(HOLE_PA)
        w = Walker(kt2.format, m2.memory, kt2.root_pa).walk(va)
        assert w.fault is not None and w.fault.reason == TABLE_UNREADABLE, w.fault
        assert w.fault.level == levels[depth + 1].name
        assert w.fault.table_pa == HOLE_PA
        assert f"0x{HOLE_PA:x}" in w.fault.message(va)
        assert [s.kind for s in w.steps] == ["table"] * (depth + 1)
        assert Walker(kt2.format, m2.memory, kt2.root_pa).translate_many([va]).faults == \
            ((levels[depth + 1].name, TABLE_UNREADABLE),)


def _reserved_plants(case: Case, model) -> List[Tuple[str, str, int, str]]:
    """(why, level name, raw, va) entries the architecture defines as faulting on
    reserved bits or a reserved descriptor type."""
    geo = model.space.geometry
    enc = model.space.encoder
    levels = geo.levels
    out = []
    pa = 0x4000_0000
    if case.arch == "x86_64":
        # PS in a PML4E/PML5E is reserved (SDM 4.5, table 4-15/4-12)
        out.append(("PS in the top level", levels[0].name, enc.table(pa) | 1 << x86.PS_BIT, ""))
        # bits above MAXPHYADDR in a 4K PTE (#PF with RSVD) on a 46-bit machine
        if model.params["phys_bits"] < 52 and not case.kwargs.get("sme_mask"):
            out.append(("PA bit 50 set", levels[-1].name, enc.leaf(pa, 4096, True, x86.PAGE_KERNEL)
                        | 1 << 50, ""))
        # a 2 MiB leaf whose bit 13 (reserved below the 2M frame) is set
        out.append(("bit 13 in a 2M leaf", levels[-2].name,
                    enc.leaf(pa & ~(2 * M - 1), 2 * M, False, x86.PAGE_KERNEL) | 1 << 13, ""))
    else:
        # bits[1:0] = 0b01 at the last level is a reserved descriptor type
        last = enc.leaf(pa, geo.page_size, True, a64.PAGE_KERNEL)
        out.append(("block encoding at the last level", levels[-1].name, last & ~2, ""))
        # a block where the granule forbids one (e.g. 4K L0 without LPA2)
        for lv in levels[:-1]:
            if not lv.leaf_ok:
                out.append((f"block at {lv.name}", lv.name,
                            enc.leaf(0, lv.entry_span, False, a64.PAGE_KERNEL), ""))
                break
        if model.params["pa_encoding"] == "48":
            out.append(("OA bit 48 in a 48-bit page", levels[-1].name, last | 1 << 48, ""))
    return out


@pytest.mark.parametrize("case", CASES[:14] + CASES[15:17], ids=CASE_IDS[:14] + CASE_IDS[15:17])
def test_reserved_bits_and_descriptor_types_fault_as_reserved(case):
    model, _ = fresh(case)
    plants = _reserved_plants(case, model)
    assert plants
    for why, level, raw, _ in plants:
        m2, kt2 = fresh(case, with_phys_bits=True)
        va = _deep_mapped_va(m2)
        entry_pa = m2.space.plant(va, level, raw)
        assert m2.space.truth(va).status == "raw"
        w = Walker(kt2.format, m2.memory, kt2.root_pa).walk(va)
        assert w.fault is not None and w.fault.reason == RESERVED, (why, w.fault)
        assert (w.fault.level, w.fault.entry_pa, w.fault.raw) == (level, entry_pa, raw), why
        assert Walker(kt2.format, m2.memory, kt2.root_pa).translate_many([va]).faults == \
            ((level, RESERVED),), why


@pytest.mark.parametrize("case", CASES[:14], ids=CASE_IDS[:14])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_garbage_entries_give_the_same_answer_single_and_batched(case, data):
    """Random raw values planted at random levels on mapped paths: no exception, bounded
    steps, batch == single walks, and every mapped address elsewhere still matches truth."""
    model, kt = fresh(case, seed=data.draw(st.integers(0, 3)))
    levels = model.space.geometry.levels
    ranges = list(model.mapped_ranges())
    planted = []
    for _ in range(data.draw(st.integers(1, 4))):
        r = data.draw(st.sampled_from(ranges))
        va = r.va + data.draw(st.integers(0, r.size - 1))
        depth = data.draw(st.integers(0, len(levels) - 1))
        raw = data.draw(st.one_of(st.integers(0, M64), st.sampled_from(
            [model.space.encoder.table(t) for t in _path_tables(model, va)] + [1, 3, 0x63])))
        try:
            model.space.plant(va, levels[depth].name, raw)
        except ValueError:
            continue
        planted.append(va)
    probes = planted + [r.va for r in ranges[::9]]
    walker = Walker(kt.format, model.memory, kt.root_pa)
    walks = [walker.walk(v) for v in probes]
    batch = Walker(kt.format, model.memory, kt.root_pa).translate_many(probes)
    case_ = Case(case.id, case.mode, case.kw)
    for i, (v, w) in enumerate(zip(probes, walks)):
        assert len(w.steps) <= len(levels)
        assert (batch.pas[i], batch.page_sizes[i], batch.faults[i]) == \
            (w.pa, w.page_size, None if w.fault is None else (w.fault.level, w.fault.reason))
        t = model.truth(v)
        if t.status != "raw":
            assert_walk_is_truth(case_, kt.format, w, t)


# -- known disagreements (strict xfails; see the final report) ---------------------------------

@pytest.mark.parametrize("case", [c for c in ARM64_CASES if c.era == "6.9"][:3],
                         ids=[c.id for c in ARM64_CASES if c.era == "6.9"][:3])
def test_arm64_6_10_swap_entry_detail_names_type_and_offset(case):
    e = env(case)
    walker = e.walker(e.model.user.root_pa)
    for level, va, raw, kind in e.user_entries:
        if kind == "swap":
            t = e.model.user.truth(va)
            w = walker.walk(va)
            assert w.fault.reason == SWAP
            assert f"type {t.swap_type} " in w.fault.detail and \
                f"offset 0x{t.swap_offset:x}" in w.fault.detail, (w.fault.detail, t)


@pytest.mark.parametrize("case", [c for c in ARM64_CASES if c.era != "6.9"],
                         ids=[c.id for c in ARM64_CASES if c.era != "6.9"])
def test_arm64_pre_6_10_swap_entry_detail_names_type_and_offset(case):
    """The layout kmemdbg decodes today: the older eras agree with the model."""
    e = env(case)
    walker = e.walker(e.model.user.root_pa)
    n = 0
    for level, va, raw, kind in e.user_entries:
        if kind == "swap":
            t = e.model.user.truth(va)
            w = walker.walk(va)
            assert w.fault.reason == SWAP
            assert f"type {t.swap_type} " in w.fault.detail
            assert f"offset 0x{t.swap_offset:x}" in w.fault.detail
            n += 1
    assert n == 2


@pytest.mark.parametrize("case", [c for c in ARM64_CASES if c.era != "6.9"][:3],
                         ids=[c.id for c in ARM64_CASES if c.era != "6.9"][:3])
def test_arm64_pre_6_10_prot_none_is_prot_none(case):
    e = env(case)
    walker = e.walker(e.model.user.root_pa)
    for level, va, raw, kind in e.user_entries:
        if kind == "prot-none":
            assert raw >> a64.OLD_PROT_NONE_BIT & 1
            assert walker.walk(va).fault.reason == PROT_NONE


@pytest.mark.parametrize("case", [CASES[CASE_IDS.index(i)] for i in
                                  ("x86_64-4level", "x86_64-5level-sme47-pa48")],
                         ids=["x86_64-4level", "x86_64-5level-sme47-pa48"])
def test_x86_kfence_guard_page_in_the_direct_map_is_not_present(case):
    e = env(case)
    va = e.model.params["kfence_pool_va"]
    t = e.model.truth(va)
    assert t.status == "not-present" and t.raw >> 8 & 1
    w = e.walker().walk(va)
    assert w.fault.reason == NOT_PRESENT, w.fault


@pytest.mark.parametrize("case", [CASES[CASE_IDS.index(i)] for i in
                                  ("arm64-4k-48", "arm64-16k-52on47", "arm64-4k-39")],
                         ids=["arm64-4k-48", "arm64-16k-52on47", "arm64-4k-39"])
def test_arm64_user_half_address_through_the_kernel_root_faults(case):
    e = env(case)
    walker = e.walker()
    low = [r.va & ((1 << e.model.params["runtime_va_bits"]) - 1) for r in e.ranges[:50]]
    assert all(e.model.truth(va).status == "unmapped" for va in low)
    assert all(walker.walk(va).fault is not None for va in low), \
        [(hex(va), hex(walker.walk(va).pa or 0)) for va in low[:3]]


@pytest.mark.parametrize("case", [CASES[CASE_IDS.index("arm64-64k-52on48")]],
                         ids=["arm64-64k-52on48"])
def test_arm64_64k_52on48_beyond_t1sz_is_non_canonical(case):
    e = env(case)
    va = (1 << 64) - (1 << 52) + 0x10000
    assert e.model.truth(va).status == "non-canonical"
    w = e.walker().walk(va)
    assert w.fault is not None and w.fault.reason == NON_CANONICAL, w.fault


@pytest.mark.parametrize("kaslr", [True, False])
def test_model_builds_x86_4level_kernel_on_a_52bit_pa_machine(kaslr):
    """A 4-level kernel on a 52-bit MAXPHYADDR CPU: RAM stays inside the 2^46-byte direct map."""
    m = build_kernel("x86_64-4level", seed=0, phys_bits=52, kaslr=kaslr)
    assert all(end <= 1 << 46 for _s, end in m.params["ram"])


def test_model_refuses_arm64_16k_52bit_before_6_9():
    """16K pages with 52-bit VA came with LPA2 in v6.9: older eras are refused, not mislaid."""
    with pytest.raises(ValueError, match="only since v6.9"):
        build_kernel("arm64-16k-52on47", seed=0, era="5.11")
