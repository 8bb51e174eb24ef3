"""Audit rules on MMU models with planted defects, in every paging mode; bad input.

Oracle: what the test planted in the model (through the model's own encoders,
which share no code with kmemdbg.arch) and the model's ground truth.  The
model has no vmap_area lists, module list or symbols, so the test hands the
audit the records a kernel would have: the vmap areas it allocated and the
data range it wrote into (AuditContext overrides).

Rules covered: wx, user-kernel, linear-integrity, vmalloc-integrity,
virt-to-phys-misuse.  exec-alias and text-rw are left out of the "clean"
property: the model maps kernel and module text with a writable linear alias
(it does not mirror the kernel's set_memory_ro of aliases) and has no symbols
for section bounds.
"""
from __future__ import annotations

import random
import shutil
from collections import Counter

import pytest

import kmemdbg
from kmemdbg import cli
from kmemdbg.audit import Area, AuditContext, run_audit
from kmemdbg.model import MODES, build_kernel
from kmemdbg.model import arm64 as a64
from kmemdbg.model import x86

M64 = (1 << 64) - 1
G = 1 << 30
TB = 1 << 40
RULES = ["wx", "user-kernel", "linear-integrity", "vmalloc-integrity", "virt-to-phys-misuse"]
DEFECTS = ("wx", "user", "linear", "unmapped", "bogus")
HOLE_PA = 0x10_0000_0000


class CountingMemory:
    """Counts reads of table-sized blocks per physical address."""

    def __init__(self, inner, size):
        self.inner, self.size, self.counts = inner, size, Counter()
        self.zero_fills_holes = getattr(inner, "zero_fills_holes", False)

    def read(self, pa, size):
        if size == self.size:
            self.counts[pa] += 1
        return self.inner.read(pa, size)


def _flags(m):
    if m.params["arch"] == "x86_64":
        return x86.PAGE_KERNEL, x86.PAGE_KERNEL_EXEC, x86.PAGE_KERNEL | {"US"}
    return a64.PAGE_KERNEL, a64.PAGE_KERNEL_EXEC, a64.PAGE_KERNEL | {"USER"}


def _pa_arith(m, va):
    """__pa() as the kernel computes it, written out from the model's own parameters."""
    p = m.params
    if p["arch"] == "x86_64":
        return (va - p["page_offset"]) & M64
    return (va - p["kimage_voffset"]) & M64


def _build(tmp_path, mode, seed, defects):
    """A model with ``defects`` planted; returns (kernel, context, planted {defect: va})."""
    m = build_kernel(mode, seed=seed)
    ps = m.params["page_size"]
    last = m.mode.geometry().levels[-1].name
    kernel_flags, exec_flags, user_flags = _flags(m)
    areas, planted = [], {}

    def area(size, flags=None):
        va = m.vmalloc(size, flags=flags)
        areas.append(Area(va, va + size + ps, va + size, "test vmalloc", ("vmalloc",)))
        return va

    data_va = m.kmalloc(ps)
    ordinary = area(4 * ps)
    if "wx" in defects:
        planted["wx"] = area(ps, exec_flags)
    if "user" in defects:
        # a fresh top-level slot, so every table above the leaf is created with user access
        va = m.params["vmalloc_start"] + (16 * TB if m.params["arch"] == "x86_64" else 0)
        va = (va + (1 << 39)) if m.params["arch"] == "x86_64" else m.params["vmalloc_used"][1] + 64 * ps
        table = x86.USER_TABLE if m.params["arch"] == "x86_64" else frozenset()
        m.space.map(va, m.allocator.alloc(ps), ps, ps, user_flags, table_flags=table)
        planted["user"] = va
    if "linear" in defects:
        va = m.params["kfence_pool_va"]          # a non-present guard page of the KFENCE pool
        m.space.plant(va, last, m.space.encoder.leaf(m.allocator.alloc(ps), ps, True, kernel_flags))
        planted["linear"] = va
    if "unmapped" in defects:
        va = area(4 * ps)
        m.space.plant(va + 2 * ps, last, 0)
        planted["unmapped"] = va + 2 * ps
    if "bogus" in defects:
        pa = m.truth(data_va).pa
        m.memory.write_u64(pa + 0x18, _pa_arith(m, ordinary))
        m.memory.write_u64(pa + 0x20, ordinary)         # the pointer it came from, as a driver keeps it
        planted["bogus"] = data_va + 0x18
    path = tmp_path / f"{mode}.core"
    m.write_vmcore(str(path))
    k = kmemdbg.open(core=str(path))
    ctx = AuditContext(k, areas=areas, sections={}, module_sections=[],
                       static_data=[(data_va, data_va + ps, "model data page")])
    return m, k, ctx, planted


def _found(report, defect, va):
    rule = {"wx": "wx", "user": "user-kernel", "linear": "linear-integrity",
            "unmapped": "vmalloc-integrity", "bogus": "virt-to-phys-misuse"}[defect]
    return [f for f in report.at_least("low") if f.rule == rule and f.start is not None
            and f.start <= va < (f.end or f.start + 1)]


def _above_info(report):
    """Findings above info other than the misuse rule's ``incomplete`` ones, which on the model
    (no symbols, no types, no struct pages) must name the kinds it could not scan."""
    incomplete = [f for f in report.findings if f.kind == "incomplete"]
    assert {f.evidence_dict()["memory_kind"] for f in incomplete} >= {"module", "percpu", "slab", "page"}
    return [f for f in report.at_least("low") if f.kind != "incomplete"]


CASES = [(mode, seed) for mode in sorted(MODES) for seed in (1, 2)]


@pytest.mark.parametrize("mode,seed", CASES, ids=[f"{m}-{s}" for m, s in CASES])
def test_every_planted_defect_is_found_and_nothing_else(tmp_path, mode, seed):
    rng = random.Random(f"{mode}{seed}")
    defects = [d for d in DEFECTS if rng.random() < 0.6] or [rng.choice(DEFECTS)]
    m, k, ctx, planted = _build(tmp_path, mode, seed, defects)
    counting = CountingMemory(k.walker.cache.source, k.tables.format.table_bytes)
    k.walker.cache.source = counting
    report = run_audit(k, RULES, context=ctx)
    assert not report.errors, report.errors
    for defect, va in planted.items():
        assert _found(report, defect, va), f"{mode}: planted {defect} at 0x{va:x} not found: " + \
            "; ".join(f.explanation for f in report.at_least("low"))
    # nothing else: every finding above info is one of the planted defects, or says honestly
    # which memory the misuse rule could not scan (the model has no symbols or types)
    for f in _above_info(report):
        assert any(f in _found(report, d, va) for d, va in planted.items()), f.explanation
    # each table page read at most once in the whole audit
    assert counting.counts and max(counting.counts.values()) == 1


@pytest.mark.parametrize("mode", sorted(MODES))
def test_clean_model_has_no_finding_above_info(tmp_path, mode):
    m, k, ctx, planted = _build(tmp_path, mode, 3, ())
    report = run_audit(k, RULES, context=ctx)
    assert not report.errors, report.errors
    assert _above_info(report) == [], [f.explanation for f in _above_info(report)]
    kinds = {f.kind for f in report.findings}
    # the model's KFENCE-like pool has non-present guard pages: reported as holes, not findings
    assert "hole" in kinds
    if m.params["arch"] == "x86_64":
        assert "vsyscall" in kinds        # the model maps the legacy vsyscall page user-readable


# -- bad input ---------------------------------------------------------------------------------

def _bad_tables(tmp_path, what):
    m = build_kernel("x86_64-4level", seed=5)
    va = m.vmalloc(4 * 4096)
    if what == "loop":
        m.space.plant(va, "PMD", m.space.encoder.table(m.space.root_pa))
    else:
        m.space.plant(va, "PMD", x86.table_entry(HOLE_PA))
    path = tmp_path / "bad.core"
    m.write_vmcore(str(path))
    return kmemdbg.open(core=str(path))


@pytest.mark.parametrize("what,reason", [("loop", "table-loop"), ("hole", "table-unreadable")])
def test_bad_table_is_a_finding_and_the_other_rules_run(tmp_path, what, reason):
    k = _bad_tables(tmp_path, what)
    report = run_audit(k, ["wx", "linear-integrity"])
    bad = [f for f in report.findings if f.rule == "page-tables"]
    assert [f.kind for f in bad] == [reason], [f.explanation for f in bad]
    assert any(f.rule == "linear-integrity" for f in report.findings)
    assert report.exit_status("low") == 1


def test_truncated_dump_reports_and_continues(tmp_path):
    from realdumps import FIXTURES
    src = FIXTURES + "/x86_64-6.12-l4/vmcore.slice"
    half = tmp_path / "half.core"
    shutil.copyfile(src, half)
    with open(half, "r+b") as f:
        f.truncate(f.seek(0, 2) // 2)
    with pytest.raises(kmemdbg.errors.SourceError):
        kmemdbg.open(core=str(half))
    k = kmemdbg.open(core=str(half), allow_truncated=True)
    report = run_audit(k)
    assert report.findings or report.errors
    kinds = {f.kind for f in report.findings if f.rule == "page-tables"}
    assert kinds <= {"table-unreadable", "reserved-bits"}
    status = cli.main(["--core", str(half), "--allow-truncated", "--json", "audit", "--rule", "wx"])
    assert status in (0, 1, 2)


def test_unknown_rule_is_one_line_and_exit_2(capsys):
    status = cli.main(["--core", "no-such-file", "audit", "--rule", "no-such-rule"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "no-such-rule" in err[0] and "virt-to-phys-misuse" in err[0]


def test_audit_that_cannot_open_exits_2(capsys):
    assert cli.main(["--core", "no-such-file", "audit"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_addresses_rule_reads_lines_and_json(tmp_path):
    m = build_kernel("x86_64-4level", seed=6)
    va = m.vmalloc(2 * 4096)
    lin = m.kmalloc(64)
    path = tmp_path / "m.core"
    m.write_vmcore(str(path))
    k = kmemdbg.open(core=str(path))
    lines = [f"{va:x}", f"0x{lin:x}", f'{{"va": "0x{va:x}", "claimed_pa": "0x{m.truth(va).pa:x}"}}',
             "", "# comment", "zz"]
    report = run_audit(k, ["addresses"], addresses=lines)
    verdicts = [f.kind for f in report.findings]
    assert verdicts == ["mismatch", "ok", "ok"]
    assert report.errors and report.errors[0][1].startswith("line 6")
    # a mismatch is high severity; the bad line makes the audit incomplete otherwise
    assert report.exit_status("high") == 1
    assert run_audit(k, ["addresses"], addresses=[f"{lin:x}", "zz"]).exit_status("low") == 2
