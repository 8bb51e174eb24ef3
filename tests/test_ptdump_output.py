"""ptdump's command output: 80-column text, --wide, --all, and JSON repeats as single ranges (issue 12).

Oracles: drgn's own page-table walker (``follow_phys``) on the same dump for
every leaf of a strided repeat range and for the holes between them; the
guest kernel's own ptdump of the same boot (truth.json ``kernel_ptdump``,
arch/x86/mm/dump_pagetables.c), whose ESPFIX lines must be leaves of that
range; the text view's ranges against the JSON view's.
"""
from __future__ import annotations

import io
import json
import re

import pytest

from kmemdbg.commands.execute import execute
from kmemdbg.commands.table import parse

from realdumps import all_dumps, open_dump

DUMPS = all_dumps()
X86 = [d for d in DUMPS if d.recipe.startswith("x86_64")]
TRIMMED = [d for d in DUMPS if d.kind == "trimmed"]
_OPEN = {}


def _open(dump):
    if dump.id not in _OPEN:
        _OPEN[dump.id] = open_dump(dump)
    return _OPEN[dump.id]


def run(kernel, *argv):
    args, _ = parse("drgn", list(argv))
    out, err = io.StringIO(), io.StringIO()
    status = execute(args, lambda: kernel, out, err)
    return status, out.getvalue(), err.getvalue()


RANGE = re.compile(r"^0x([0-9a-f]{16})-0x([0-9a-f]{16}) +(\S+) (\S+) +(\S+)")


@pytest.mark.parametrize("dump", TRIMMED, ids=[d.id for d in TRIMMED])
def test_text_fits_80_columns_and_wide_and_all_show_the_same_ranges(dump):
    k, _ = _open(dump)
    status, text, err = run(k, "ptdump")
    assert status in (0, 1), err
    lines = text.splitlines()
    assert lines and max(len(ln) for ln in lines) <= 80, max(lines, key=len)
    status, wide, _ = run(k, "ptdump", "--wide")
    wide_lines = wide.splitlines()
    # --wide: the same ranges, each on its one line, and no continuation lines
    assert [m.groups()[:2] for m in map(RANGE.match, lines) if m] == \
        [m.groups()[:2] for m in map(RANGE.match, wide_lines) if m]
    assert all(RANGE.match(ln) or ln.startswith(("---[", "... ")) for ln in wide_lines)
    # every continuation line of the narrow view belongs to the range above it
    assert all(RANGE.match(ln) or ln.startswith(("---[", "... ", "      ")) for ln in lines)
    status, everything, _ = run(k, "ptdump", "--all")
    skipped = sum(int(ln.split()[1]) for ln in lines if ln.startswith("... "))
    shown = sum(1 for ln in lines if RANGE.match(ln))
    assert sum(1 for ln in everything.splitlines() if RANGE.match(ln)) == shown + skipped
    assert not any(ln.startswith("... ") for ln in everything.splitlines())
    # sizes are human-readable, right-aligned in one column
    sizes = [m.group(3) for m in map(RANGE.match, lines) if m]
    assert all(re.fullmatch(r"\d+(\.\d)?[KMGTP]|\d+B", s) for s in sizes), set(sizes)
    starts = {ln.index(m.group(3)) + len(m.group(3)) for ln in lines for m in [RANGE.match(ln)] if m}
    assert len(starts) == 1


@pytest.mark.parametrize("dump", X86, ids=[d.id for d in X86])
def test_espfix_comes_out_as_one_strided_repeat_range_that_drgn_and_the_kernel_agree_with(dump):
    import _drgn
    import drgn

    k, prog = _open(dump)
    status, out, err = run(k, "--json", "ptdump", "--start", "0xffffff0000000000", "--end", "0xffffff8000000000")
    assert status == 0, err
    items = json.loads(out)["results"]
    espfix = [o for o in items if o["region"]["kind"] == "espfix"]
    assert len(espfix) == 1, [(o["start"], o["end"]) for o in espfix][:5]
    r = espfix[0]
    start, end, pa, size, stride = (int(r["start"], 16), int(r["end"], 16), int(r["pa"], 16), r["page_size"],
                                    r["stride"])
    assert r["pa_rule"] == "repeat" and r["pa_period"] == size and stride > size
    assert (end - start - size) % stride == 0
    pages = (end - start - size) // stride + 1
    assert pages >= 4096            # one per 64 KiB of ESPFIX_PAGE_SPACE, per CPU slot
    pgd = drgn.Object(prog, "void *", k.tables.root_va)

    def drgn_pa(va):
        try:
            return _drgn._linux_helper_follow_phys(prog, pgd, va)
        except drgn.FaultError:
            return None
    for i in sorted({0, 1, 2, pages // 3, pages // 2, pages - 2, pages - 1} | set(range(0, pages, 997))):
        va = start + i * stride
        assert drgn_pa(va + 0x123) == pa + 0x123, f"leaf {i} at 0x{va:x}"
        if i < pages - 1:
            assert drgn_pa(va + size) is None, f"the hole after leaf {i} at 0x{va + size:x}"
    # the kernel's own ptdump lists the first ESPFIX leaves: each is one of ours, read-only NX
    kernel = []
    for line in dump.truth().get("kernel_ptdump") or []:
        m = re.match(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+\S+\s+(.*?)\s*(pte|pmd|pud|p4d|pgd)$", line.strip())
        if m and m.group(3).strip() and 0xFFFFFF0000000000 <= int(m.group(1), 16) < 0xFFFFFF8000000000:
            kernel.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3).split()))
    if not kernel:
        pytest.skip(f"{dump.id}: no kernel ptdump in truth.json")
    for s, e, words in kernel:
        assert e - s == size and (s - start) % stride == 0 and start <= s < end, (hex(s), hex(e))
        assert "ro" in words and "NX" in words and not r["permissions"]["kernel"]["w"]


@pytest.mark.parametrize("dump", X86, ids=[d.id for d in X86])
def test_ptdump_json_of_the_whole_kernel_is_small(dump):
    k, _ = _open(dump)
    status, out, err = run(k, "--json", "ptdump")
    assert status in (0, 1), err
    items = json.loads(out)["results"]
    # before: 65,536 ESPFIX objects (22 MB); the repeats now are one range each
    assert len(items) < 2000 and len(out) < 4 << 20, (len(items), len(out))


def _model_flags(m):
    from kmemdbg.model import arm64 as a64
    from kmemdbg.model import x86

    return x86.PAGE_KERNEL_RO if m.params["arch"] == "x86_64" else a64.PAGE_KERNEL_RO


@pytest.mark.parametrize("mode", ["x86_64-4level", "arm64-4k-48", "arm64-64k-52"])
def test_lone_leaves_of_one_frame_at_a_stride_are_one_json_range_the_model_agrees_with(tmp_path, mode):
    """Oracle: the model's ground truth (``KernelModel.truth``) at every leaf and every hole."""
    import kmemdbg
    from kmemdbg.model import build_kernel

    m = build_kernel(mode, seed=7)
    ps = m.space.geometry.page_size
    flags = _model_flags(m)
    frame = m.allocator.alloc(ps)
    base = m.params["vmalloc_used"][1] + 64 * ps
    stride, count = 16 * ps, 40
    for i in range(count):
        m.space.map(base + i * stride, frame, ps, ps, flags)
    other = base + count * stride + 64 * ps        # two lone leaves only: left apart
    for i in range(2):
        m.space.map(other + i * stride, frame, ps, ps, flags)
    path = tmp_path / "m.core"
    m.write_vmcore(str(path))
    k = kmemdbg.open(core=str(path))
    status, out, err = run(k, "--json", "ptdump", "--start", hex(base), "--end", hex(other + 4 * stride))
    assert status == 0, err
    items = json.loads(out)["results"]
    strided = [o for o in items if o["stride"]]
    assert len(strided) == 1 and len([o for o in items if not o["stride"]]) == 2, items
    r = strided[0]
    assert (int(r["start"], 16), r["stride"], r["page_size"], r["pa_rule"]) == (base, stride, ps, "repeat")
    end = int(r["end"], 16)
    assert end == base + (count - 1) * stride + ps
    for va in range(base, end, stride // 4):
        t = m.truth(va + 8)
        mapped = (va - base) % stride < ps
        assert t.mapped == mapped, hex(va)
        if mapped:
            assert t.pa == int(r["pa"], 16) + (va + 8 - base) % r["pa_period"], hex(va)
