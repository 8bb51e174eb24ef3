"""User addresses translated through a task's own page tables, on real kernels.

Oracle: drgn's C walker given the same ``mm->pgd`` (read independently
through drgn) on every user leaf of the task.  The tasks come from the
kernel's ``init_task`` list read with BTF offsets.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import kmemdbg
from kmemdbg.errors import KmemdbgError
from kmemdbg.tables import leaves

from realdumps import all_dumps

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")

FULL = [d for d in all_dumps() if d.kind == "full"]


@pytest.mark.real
@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_user_walk_of_init_agrees_with_drgn(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    k = kmemdbg.open(core=dump.path)
    try:
        tasks = k.tasks()
    except KmemdbgError as err:
        # Debian's arm64 6.1 has no data symbols in kallsyms (no KALLSYMS_ALL)
        assert "init_task" in str(err)
        pytest.skip(str(err))
    users = [t for t in tasks if t.mm_va]
    assert tasks[0].pid in (0, 1, 2) and users, tasks[:3]
    pid, mm, comm = users[0].pid, users[0].mm_va, users[0].comm
    walker = k.user_walker(pid)
    prog = drgn.Program()
    prog.set_core_dump(dump.path)
    pgd_va = k._read_int(mm + k.objects().btf.offset("mm_struct", "pgd"), 8)
    pgd = drgn.Object(prog, "void *", pgd_va)
    vas = [leaf.va + 0x18 for leaf in leaves(k.tables.format, walker.cache, walker.root_pa,
                                                0, 1 << 56, high=False)]
    assert len(vas) > 20, f"{comm} has too few user pages"
    for va in vas:
        try:
            want = _drgn._linux_helper_follow_phys(prog, pgd, va)
        except drgn.FaultError:
            want = None
        walk = walker.walk(va)
        assert walk.pa == want, hex(va)
        assert walk.permissions.user_read
    # and an address nobody maps faults with a reason, in the user half
    walk = walker.walk(0x10)
    assert walk.fault is not None and walk.fault.reason in ("not-present", "swap", "prot-none")
    # the command line gives the same answer
    out = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", dump.path, "--json", "vtop",
                          "--pid", str(pid), hex(vas[0])], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["pa"] == hex(walker.walk(vas[0]).pa)


@pytest.mark.real
def test_unknown_pid_is_one_line():
    dump = next((d for d in FULL if not d.missing() and d.recipe.startswith("x86")), None)
    if dump is None:
        pytest.skip("no full x86 dump built")
    out = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", dump.path, "vtop", "--pid", "99999",
                          "0x400000"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.strip() == "kmemdbg: no task with pid 99999"
