"""BTF typing of slab objects on the real Debian kernels' own BTF.

Oracle: the kernels' BTF (pahole-generated from their DWARF at build time) as
the C declarations in include/linux/mm_types.h, sched/signal.h and
ioport.h describe them: ``vm_area_struct.vm_start``/``vm_end`` are user
virtual addresses, ``sighand_struct.action[].sa.sa_handler`` is a function
pointer, ``resource.start`` is a ``resource_size_t``.  Those are the words
that made the misuse rule cry wolf on arm64 before it weighed types.
"""
from __future__ import annotations

import pytest

import kmemdbg
from kmemdbg.audit.field_types import PHYS, POINTER, VIRTUAL, FieldTyper
from realdumps import all_dumps

pytestmark = pytest.mark.real
FULL = [d for d in all_dumps() if d.kind == "full"]


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_user_address_and_pointer_fields_are_not_physical_addresses(dump):
    if dump.missing():
        pytest.skip(dump.missing())
    k = kmemdbg.open(core=dump.path)
    btf = k.objects().btf
    typer = FieldTyper(btf)
    vma = btf.sizeof(btf.struct("vm_area_struct"))
    for member in ("vm_start", "vm_end"):
        f = typer.field_at("vm_area_struct", vma, btf.offset("vm_area_struct", member))
        assert (f.category, f.path) == (VIRTUAL, member), f
    sighand = btf.sizeof(btf.struct("sighand_struct"))
    action = btf.offset("sighand_struct", "action")
    stride = btf.sizeof(btf.struct("k_sigaction"))
    for i in (0, 1, 63):
        f = typer.field_at("sighand_cache", sighand, action + i * stride)
        assert f.category == POINTER and f.path == f"action[{i}].sa.sa_handler", f
    # a cache whose objects are too small for the struct of its name is not typed by it
    assert typer.field_at("vm_area_struct", 8, 0) is None
    # a physical-address typedef is recognised through the typedef chain
    res = btf.sizeof(btf.struct("resource"))
    assert typer.field_of_struct("resource", res, btf.offset("resource", "start")).category == PHYS
    assert typer.field_of_struct("resource", res, btf.offset("resource", "name")).category == POINTER


@pytest.mark.parametrize("dump", FULL, ids=[d.id for d in FULL])
def test_a_per_cpu_word_is_typed_by_the_static_variable_that_holds_it(dump):
    """Each static per-cpu variable's BTF VAR (DATASEC .data..percpu) types the words of every
    CPU's unit at its offset: a pointer variable's word is a pointer, a word past the last
    variable is untyped."""
    if dump.missing():
        pytest.skip(dump.missing())
    k = kmemdbg.open(core=dump.path)
    btf = k.objects().btf
    typer = FieldTyper(btf)
    vars_ = btf.datasec_vars(".data..percpu")
    assert len(vars_) > 50
    pointers = [v for v in vars_ if v[3].resolved().kind == "ptr" and v[1] == 8]
    assert pointers
    off, _size, name, _t = pointers[0]
    f = typer.field_of_percpu(off)
    assert (f.struct, f.category) == (name, POINTER), f
    last = vars_[-1]
    assert typer.field_of_percpu(last[0] + last[1] + 4096) is None
    # the variable's offset is its symbol minus __per_cpu_start (kallsyms, independent of BTF)
    start = k.symbols.address("__per_cpu_start")
    sym = k.symbols.address(name)
    if start is not None and sym is not None:
        assert sym - start == off
