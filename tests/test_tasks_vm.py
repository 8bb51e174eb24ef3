"""Per-cpu variables, tasks, stacks, VMAs and user page tables, on real kernels.

Oracles, each independent of kmemdbg:

- the guest's own reports in truth.json: the probe module's ``stack_thread`` line (pid, task, stack, stack size and a
  frame address of its kthread);
- drgn on the same dump: its own kallsyms reader (symbol values), ``prog.read``
  of ``__per_cpu_offset`` and ``nr_cpu_ids`` (no types needed), its C page-table walker
  (``follow_phys``) given the task's ``mm->pgd`` read by drgn; and, where the
  recipe's debug vmlinux was fetched (x86_64-6.1-l4), drgn's own helpers
  ``for_each_task``, ``for_each_vma``, ``d_path`` and ``per_cpu_ptr``.

No address is written down here: every one comes from truth.json or drgn on
the same boot.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import kmemdbg
from kmemdbg.errors import KmemdbgError

from realdumps import all_dumps, debug_vmlinux, kernel_of

drgn = pytest.importorskip("drgn")
_drgn = pytest.importorskip("_drgn")

pytestmark = pytest.mark.real
DUMPS = all_dumps()
FULL = [d for d in DUMPS if d.kind == "full"]
_progs = {}
kernel = kernel_of


def prog(dump, dwarf: bool = False):
    key = (dump.id, dwarf)
    if key not in _progs:
        p = drgn.Program()
        p.set_core_dump(dump.path)
        if not dwarf:
            from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

            p.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(p), enable_index=0)
        else:
            path = debug_vmlinux(dump.recipe)
            if path is None:
                pytest.skip(f"no debug vmlinux for {dump.recipe} (python3 .ci/fetch_dbg_vmlinux.py {dump.recipe})")
            p.load_debug_info([path])
        _progs[key] = p
    return _progs[key]


def run(dump, *argv, timeout=180):
    return subprocess.run([sys.executable, "-m", "kmemdbg", "--core", dump.path, *argv],
                          capture_output=True, text=True, timeout=timeout)


def results(out):
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["results"]


def ksym(dump, name):
    """The symbol's value by drgn's own kallsyms reader (None when kallsyms lacks it)."""
    try:
        return prog(dump).symbol(name).address
    except LookupError:
        return None


def u64(p, va):
    return int.from_bytes(p.read(va, 8), "little")


def stack_thread(dump):
    st = (dump.truth().get("plants") or {}).get("stack_thread")
    if not st:
        pytest.skip(f"{dump.recipe}: no probe stack_thread in truth.json")
    return {k: int(v, 16) for k, v in st.items() if k != "is_vmalloc_addr"}


def schema_errors(command, envelope):
    pytest.importorskip("jsonschema")
    from kmemdbg import schema

    return schema.errors(command, envelope, strict=True)


# -- per-cpu -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_percpu_copies_are_symbol_plus_each_cpus_per_cpu_offset_read_by_drgn(dump):
    k = kernel(dump)
    var, offsets, nr = ksym(dump, "runqueues"), ksym(dump, "__per_cpu_offset"), ksym(dump, "nr_cpu_ids")
    if var is None or offsets is None or nr is None:
        # Debian's arm64 6.1 kallsyms has no data symbols: this cannot be answered, and is said
        from kmemdbg.taskinfo import percpu_layout

        with pytest.raises(KmemdbgError, match="no symbol __per_cpu_start"):
            percpu_layout(k)
        out = run(dump, "percpu", "0xffff800008000000")
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith("kmemdbg: ") and "__per_cpu" in out.stderr, out.stderr
        return
    p = prog(dump)
    count = int.from_bytes(p.read(nr, 4), "little")
    want = [(cpu, (var + u64(p, offsets + 8 * cpu)) & (2**64 - 1)) for cpu in range(count)]
    items = results(run(dump, "--json", "percpu", "runqueues+0x10"))
    assert len(items) == 1
    item = items[0]
    assert [(c["cpu"], int(c["va"], 16)) for c in item["copies"]] == [(c, va + 0x10) for c, va in want]
    assert int(item["linked_va"], 16) == var + 0x10 and item["cpu"] is None
    root = ksym(dump, "init_top_pgt") or ksym(dump, "swapper_pg_dir")
    if root is not None:
        for c in item["copies"]:
            # the copy's frame: drgn's C walker of the kernel's own tables
            want_pa = _drgn._linux_helper_follow_phys(p, drgn.Object(p, "void *", root), int(c["va"], 16))
            assert int(c["pa"], 16) == want_pa, c
    if dump.kind == "full":
        # the name and offset come from BTF's .data..percpu; the kernel's kallsyms agree
        assert item["variable"]["name"] == "runqueues" and item["offset"] == 0x10
        assert int(item["variable"]["va"], 16) == var
    # a cpu's copy leads back to the same variable and names its cpu
    last_cpu, last_va = want[-1]
    again = results(run(dump, "--json", "percpu", hex(last_va + 8)))[0]
    assert again["cpu"] == last_cpu and int(again["linked_va"], 16) == var + 8
    assert not schema_errors("percpu", json.loads(run(dump, "--json", "percpu", "runqueues").stdout))


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_classify_of_a_per_cpu_symbol_and_of_a_cpu_copy_names_the_variable(dump):
    k = kernel(dump)
    var, offsets = ksym(dump, "runqueues"), ksym(dump, "__per_cpu_offset")
    if var is None or offsets is None:
        pytest.skip(f"{dump.recipe}: kallsyms has no data symbols")
    cls = k.classify(var + 4)
    assert cls.allocation is not None and cls.allocation.kind == "percpu-variable", cls
    assert cls.allocation.name == "runqueues" and cls.allocation.start == var
    cpu0 = (var + u64(prog(dump), offsets)) & (2**64 - 1)
    cls = k.classify(cpu0 + 4)
    assert cls.allocation.kind == "percpu-variable" and cls.allocation.name == "runqueues"
    assert cls.allocation.start == cpu0 and "cpu 0's copy" in cls.allocation.detail
    out = run(dump, "classify", "runqueues")
    assert out.returncode == 0 and "percpu-variable runqueues" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_percpu_agrees_with_drgns_per_cpu_ptr_with_debug_info(dump):
    if dump.recipe != "x86_64-6.1-l4" and debug_vmlinux(dump.recipe) is None:
        pytest.skip("drgn's per_cpu_ptr needs the recipe's debug vmlinux")
    from drgn.helpers.linux.cpumask import for_each_possible_cpu
    from drgn.helpers.linux.percpu import per_cpu_ptr

    kernel(dump)
    p = prog(dump, dwarf=True)
    rq = p["runqueues"].address_of_()
    want = {cpu: per_cpu_ptr(rq, cpu).value_() for cpu in for_each_possible_cpu(p)}
    item = results(run(dump, "--json", "percpu", "runqueues"))[0]
    got = {c["cpu"]: int(c["va"], 16) for c in item["copies"]}
    assert {c: got[c] for c in want} == want


# -- tasks and stacks --------------------------------------------------------------------------
@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_tasks_lists_the_probes_kthread_with_its_task_and_vmapped_stack(dump):
    k = kernel(dump)
    if ksym(dump, "init_task") is None:
        out = run(dump, "tasks")
        assert out.returncode == 1 and out.stderr.strip().startswith("kmemdbg: no symbol init_task"), out.stderr
        return
    st = stack_thread(dump)
    env = json.loads(run(dump, "--json", "tasks").stdout)
    assert not schema_errors("tasks", env)
    rows = {r["pid"]: r for r in env["results"]}
    row = rows[st["pid"]]
    assert int(row["task"], 16) == st["task"] and row["mm"] is None
    assert int(row["stack"]["start"], 16) == st["stack"]
    assert int(row["stack"]["end"], 16) == st["stack"] + st["stack_size"]
    assert row["stack"]["region"] == "vmalloc"
    init = rows[1]
    assert init["mm"] is not None and init["pgd"] is not None
    # drgn reads the same mm->pgd word at the mm kmemdbg names (the offset is BTF's)
    pgd_off = k.objects().btf.offset("mm_struct", "pgd")
    assert u64(prog(dump), int(init["mm"], 16) + pgd_off) == int(init["pgd"], 16)
    text = run(dump, "tasks").stdout
    assert all(len(line) <= 80 for line in text.splitlines())


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_tasks_agree_with_drgns_for_each_task_with_debug_info(dump):
    if debug_vmlinux(dump.recipe) is None:
        pytest.skip("drgn's for_each_task needs the recipe's debug vmlinux")
    from drgn.helpers.linux.pid import for_each_task

    k = kernel(dump)
    p = prog(dump, dwarf=True)
    want = {(t.pid.value_(), t.tgid.value_(), t.comm.string_().decode(), t.value_(), t.mm.value_(),
             t.stack.value_()) for t in for_each_task(p)}
    got = {(r.task.pid, r.task.tgid, r.task.comm, r.task.task_va, r.task.mm_va, r.task.stack_va)
           for r in __import__("kmemdbg.taskinfo", fromlist=["x"]).list_tasks(k)[0]}
    assert got == want


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_classify_names_stack_task_guard_page_and_the_page_below_the_stack(dump):
    k = kernel(dump)
    st = stack_thread(dump)
    pid = st["pid"]
    page = k.tables.format.page_size
    cls = k.classify(st["frame"])
    assert cls.region.kind == "vmalloc"
    a = cls.allocation
    if ksym(dump, "init_task") is None:
        # no task list to name the stack's task from: the vmap area only, and the reason listed
        assert a is not None and a.kind == "vmap-area" and not a.name.startswith("stack of"), a
        assert any(m.startswith("tasks unreadable: no symbol init_task") for m in k.missing), k.missing
        return
    assert a is not None and a.name.startswith(f"stack of pid {pid} ("), a
    assert a.start == st["stack"] and f"task 0x{st['task']:x}" in a.detail
    top = st["stack"] + st["stack_size"]
    assert f"{top - st['frame']} bytes below the stack top" in a.detail
    # the guard page after the stack's pages (vmallocinfo counts it in the area's size)
    guard = k.classify(top + 16).allocation
    assert guard is not None and "guard page, 16 bytes past the end of vmap area" in guard.detail, guard
    # where an overflow lands: the page below the stack (a gap, or the guard page of the area before)
    below = k.classify(st["stack"] - 16).allocation
    assert below is not None and f"16 bytes below the stack of pid {pid} (" in below.detail, below
    assert k.classify(st["stack"] - 16 - page).allocation is None or \
        f"stack of pid {pid}" not in (k.classify(st["stack"] - 16 - page).allocation.detail or "")
    out = run(dump, "--json", "classify", hex(top + 16))
    assert "guard page" in results(out)[0]["allocation"]["detail"]


# -- VMAs and user page tables -----------------------------------------------------------------
def _init_vm(dump, pages=False):
    k = kernel(dump)
    if k.symbols.address("init_task") is None:
        pytest.skip(f"{dump.recipe}: kallsyms has no data symbols (no init_task)")
    argv = ["--json", "vm", "--pid", "1"] + (["-p"] if pages else [])
    env = json.loads(run(dump, *argv).stdout)
    assert not schema_errors("vm", env)
    return k, env["results"][0]


def _drgn_pgd(dump, k, item):
    pgd_off = k.objects().btf.offset("mm_struct", "pgd")
    p = prog(dump)
    return p, drgn.Object(p, "void *", u64(p, int(item["mm"], 16) + pgd_off))


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_vm_p_translations_agree_with_drgns_walker_and_cover_every_mapped_user_page(dump):
    k, item = _init_vm(dump, pages=True)
    vmas = item["vmas"]
    assert len(vmas) >= 3
    bounds = [(int(v["start"], 16), int(v["end"], 16)) for v in vmas]
    assert all(s < e for s, e in bounds) and all(e1 <= s2 for (_, e1), (s2, _) in zip(bounds, bounds[1:]))
    p, pgd = _drgn_pgd(dump, k, item)
    mapped = 0
    for v in vmas:
        for pg in v["pages"]:
            va = int(pg["va"], 16)
            try:
                want = _drgn._linux_helper_follow_phys(p, pgd, va)
            except drgn.FaultError:
                want = None
            assert (int(pg["pa"], 16) if pg["pa"] else None) == want, (v["start"], pg)
            mapped += want is not None
    assert mapped > 20
    # every user leaf of the task's tables (drgn's walker) is inside one of the VMAs
    from kmemdbg.tables import leaves

    walker = k.user_walker(mm=int(item["mm"], 16))
    for leaf in leaves(k.tables.format, walker.cache, walker.root_pa, 0, 1 << 47, high=False):
        assert _drgn._linux_helper_follow_phys(p, pgd, leaf.va) is not None
        assert any(s <= leaf.va < e for s, e in bounds), hex(leaf.va)
    assert any(v["file"] and v["file"].startswith("/") and "x" in v["perms"] for v in vmas)
    assert [v["label"] for v in vmas].count("[stack]") == 1


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_vm_agrees_with_drgns_for_each_vma_and_d_path_with_debug_info(dump):
    if debug_vmlinux(dump.recipe) is None:
        pytest.skip("drgn's for_each_vma needs the recipe's debug vmlinux")
    from drgn.helpers.linux.fs import d_path
    from drgn.helpers.linux.mm import for_each_vma
    from drgn.helpers.linux.pid import find_task

    k, item = _init_vm(dump)
    p = prog(dump, dwarf=True)
    want = [(v.vm_start.value_(), v.vm_end.value_(), v.vm_flags.value_(),
             d_path(v.vm_file.f_path).decode() if v.vm_file else None)
            for v in for_each_vma(find_task(p, 1).mm)]
    got = [(int(v["start"], 16), int(v["end"], 16), int(v["flags"], 16), v["file"]) for v in item["vmas"]]
    assert got == want


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_ptdump_pid_ranges_map_what_drgns_walker_maps(dump):
    k, item = _init_vm(dump)
    p, pgd = _drgn_pgd(dump, k, item)
    out = run(dump, "--json", "ptdump", "--pid", "1")
    ranges = results(out)
    assert not schema_errors("ptdump", json.loads(out.stdout))
    assert ranges and all(r["region"]["kind"] == "user" for r in ranges)
    page = k.tables.format.page_size
    for r in ranges:
        start, end = int(r["start"], 16), int(r["end"], 16)
        for va in {start, end - page}:
            want = _drgn._linux_helper_follow_phys(p, pgd, va)
            assert int(r["pa"], 16) + (va - start) == want, r
        assert r["permissions"]["user"]["r"]
    text = run(dump, "ptdump", "--pid", "2")
    assert text.returncode == 1 and text.stderr.count("\n") == 1 and "kernel thread" in text.stderr


# -- slices ------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", ["x86_64-6.12-l4", "arm64-6.12-lpa2"])
def test_a_fresh_slice_keeps_what_tasks_vm_and_vtop_pid_read(recipe, tmp_path):
    dump = next(d for d in FULL if d.recipe == recipe)
    k = kernel(dump)
    from kmemdbg.slice import slice_core

    out = tmp_path / "s.core"
    slice_core(dump.path, str(out))
    s = kmemdbg.open(core=str(out))
    full_vm = _init_vm(dump)[1]
    text = next(v for v in full_vm["vmas"] if v["file"])
    va = int(text["start"], 16) + 0x18
    p, pgd = _drgn_pgd(dump, k, full_vm)
    assert s.translate_user(va, pid=1).pa == _drgn._linux_helper_follow_phys(p, pgd, va)
    from kmemdbg.taskinfo import list_tasks, task_vm

    assert [(r.task.pid, r.task.comm, r.stack_start) for r in list_tasks(s)[0]] == \
        [(r.task.pid, r.task.comm, r.stack_start) for r in list_tasks(k)[0]]
    got = task_vm(s, pid=1)
    assert [(v.vma.start, v.vma.end, v.vma.flags, v.vma.path) for v in got.vmas] == \
        [(int(v["start"], 16), int(v["end"], 16), int(v["flags"], 16), v["file"]) for v in full_vm["vmas"]]
    assert os.path.getsize(out) < 8 << 20


@pytest.mark.parametrize("dump", [d for d in DUMPS if d.kind == "trimmed"],
                         ids=[d.id for d in DUMPS if d.kind == "trimmed"])
def test_task_commands_on_committed_slices_answer_or_say_why_in_one_line(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    for argv in (("tasks",), ("vm", "--pid", "1"), ("vtop", "--pid", "1", "0x400000")):
        out = run(dump, *argv)
        if out.returncode != 0:
            # slices made before the task types were kept have no task_struct in their BTF
            assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
            assert out.stderr.startswith("kmemdbg: ") and "Traceback" not in out.stderr
            assert "task_struct" in out.stderr or "init_task" in out.stderr, out.stderr


# -- bad input ---------------------------------------------------------------------------------
def test_bad_task_and_percpu_input_is_one_line():
    dump = next((d for d in FULL if not d.missing() and d.recipe.startswith("x86_64-6.12")), None)
    if dump is None:
        pytest.skip("no full x86-64 6.12 dump built")
    cases = [(("vm",), 1, "give the task with --pid N"),
             (("vm", "--pid", "99999"), 1, "no task with pid 99999"),
             (("vm", "--pid", "2"), 1, "is a kernel thread"),
             (("percpu", "init_task"), 1, "is not a static per-cpu address"),
             (("percpu", "no_such_symbol_xyz"), 1, "no_such_symbol_xyz"),
             (("vm", "--pid", "1", "--mm", "0x0"), 2, "usage")]
    for argv, status, words in cases:
        out = run(dump, *argv)
        assert out.returncode == status, (argv, out.stderr)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("kmemdbg: "), (argv, out.stderr)
        assert words in out.stderr, (argv, out.stderr)
