"""virt-to-phys-misuse on damaged kernel state: never a traceback, never a silent gap.

The real full dumps are opened and their memory source is wrapped so that
chosen physical ranges read as garbage or fail: part of the struct page
array missing, garbage page flags, per-cpu offsets pointing outside memory,
every task's stack pointer into a hole.  Each must give an ``incomplete``
finding (or a note) that names what was skipped, no rule error and no
finding above info that is not a real plant.  Oracle for the last part: the
probe's own printout of its plants (truth.json).
"""
from __future__ import annotations

import random

import pytest

import kmemdbg
from kmemdbg.audit import AuditContext, run_audit
from kmemdbg.errors import PhysicalReadError
from realdumps import all_dumps

pytestmark = pytest.mark.real
FULL = [d for d in all_dumps() if d.kind == "full" and d.recipe in ("x86_64-6.12-l4", "arm64-6.12-lpa2")]


class Damaged:
    """A memory source whose ``[lo, hi)`` physical ranges fail (``None``) or read as ``fill(pa, n)``."""

    def __init__(self, inner, damage):
        self.inner, self.damage = inner, damage
        self.zero_fills_holes = inner.zero_fills_holes

    def read(self, pa, size):
        data = None
        for lo, hi, fill in self.damage:
            if pa < hi and pa + size > lo:
                if fill is None:
                    raise PhysicalReadError(pa, size, "damaged for the test")
                data = bytearray(self.inner.read(pa, size) if data is None else data)
                a, b = max(lo, pa), min(hi, pa + size)
                data[a - pa:b - pa] = fill(a, b - a)
        return bytes(data) if data is not None else self.inner.read(pa, size)


def _open(dump, damage_of):
    if dump.missing():
        pytest.skip(dump.missing())
    k = kmemdbg.open(core=dump.path)
    damage = damage_of(k)
    k.memory = Damaged(k.memory, damage)
    k.walker.cache.source = k.memory
    k.walker.cache.clear()
    # the walker reads tables through its own reference to the source
    k.walker.memory = k.memory
    return k


def _pa(k, va):
    pa = k.translate(va).pa
    assert pa is not None
    return pa


def _run(k):
    report = run_audit(k, ["virt-to-phys-misuse"], context=AuditContext(k))
    assert not report.errors, report.errors
    stats = [f for f in report.findings if f.kind == "statistics"]
    assert stats
    return report


def _false_positives(dump, report):
    words = {int(p["word_va"], 16) for p in (dump.truth().get("plants") or {}).get("plants", [])}
    probe = {e["name"]: e for e in dump.truth().get("probe") or []}
    if "bogus_global" in probe:
        words.add(int(probe["bogus_global"]["va"], 16))
        d = probe["desc_fields"]
        words.add(int(d["va"], 16) + int(d["bogus_pa_offset"], 16))
    return [f for f in report.at_least("low") if f.rule == "virt-to-phys-misuse" and f.kind != "incomplete"
            and f.start not in words]


def _incomplete(report, kind):
    return [f.explanation for f in report.findings if f.kind == "incomplete"
            and f.evidence_dict()["memory_kind"] == kind]


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_part_of_the_struct_page_array_missing_is_named(dump):
    def damage(k):
        pages = k.struct_pages()
        vmemmap, size = pages.vmemmap_va, pages.entry_bytes
        ram = AuditContext(k).ram()
        lo_pfn = ram[-1][0] // k.tables.format.page_size
        start = _pa(k, vmemmap + (lo_pfn + 4096) * size)
        return [(start, start + 64 * 1024, None)]           # 1024 struct pages gone
    k = _open(dump, damage)
    report = _run(k)
    for kind in ("slab", "page"):
        text = _incomplete(report, kind)
        assert text and "struct pages of" in text[0] and "not in the dump" in text[0], text
    assert _false_positives(dump, report) == []


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_garbage_page_flags_cost_no_traceback_and_no_false_finding(dump):
    rng = random.Random(5)

    def garbage(pa, n):
        return bytes(rng.getrandbits(8) for _ in range(n))

    def damage(k):
        pages = k.struct_pages()
        vmemmap, size = pages.vmemmap_va, pages.entry_bytes
        ram = AuditContext(k).ram()
        lo_pfn = ram[0][0] // k.tables.format.page_size + 256
        start = _pa(k, vmemmap + lo_pfn * size)
        return [(start, start + 4096, garbage)]             # 64 struct pages of noise
    report = _run(_open(dump, damage))
    assert _false_positives(dump, report) == [], [f.explanation for f in _false_positives(dump, report)]


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_per_cpu_offsets_pointing_outside_memory_are_named(dump):
    def damage(k):
        sym = k.symbols.address("__per_cpu_offset")
        start = _pa(k, sym)
        return [(start, start + 16, lambda pa, n: (0x7777 << 44).to_bytes(8, "little") * (n // 8))]
    report = _run(_open(dump, damage))
    text = _incomplete(report, "percpu")
    assert text and "not mapped in the kernel tables" in text[0], text
    assert _false_positives(dump, report) == []


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_task_stack_pointers_into_a_hole_are_not_trusted(dump):
    """Every task_struct.stack word made to point at an unmapped address: stacks can no longer
    be told apart, which the rule says; their pages are still scanned as vmalloc memory."""
    def damage(k):
        btf = k.objects().btf
        off = btf.offset("task_struct", "stack")
        out = []
        for task in k.tasks():
            pa = _pa(k, task.task_va + off)
            out.append((pa, pa + 8, lambda p, n: (0xDEAD << 48).to_bytes(8, "little")[:n]))
        return out
    report = _run(_open(dump, damage))
    stats = [f for f in report.findings if f.kind == "statistics"][0].evidence_dict()
    assert stats["vmalloc_bytes"] > 0 and stats["stack_bytes"] == 0
    text = _incomplete(report, "stack")
    assert text and "starts a vmap area" in text[0], text
    assert _false_positives(dump, report) == []
