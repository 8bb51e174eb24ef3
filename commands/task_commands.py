"""Commands about tasks and per-cpu data: ``percpu``, ``tasks``, ``vm``.

Thin shells over :mod:`kmemdbg.taskinfo`: the calls parse arguments and
return its frozen results; the renderers turn them into an
:class:`~kmemdbg.commands.renderers.Output` (text that fits 80 columns, or
JSON items described by ``kmemdbg/schemas/percpu.json``, ``tasks.json``
and ``vm.json``).  :mod:`kmemdbg.commands.table` appends :data:`COMMANDS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..errors import KmemdbgError
from ..parse import parse_address
from ..render import addr, hexa
from . import calls
from .renderers import Output
from .spec import EVERYWHERE, Command, arg

WIDTH = 80


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[:WIDTH - 3] + "..."


# -- percpu ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PercpuResult:
    answers: Tuple[Any, ...]        # kmemdbg.taskinfo.PerCpuAnswer, one per argument
    arguments: Tuple[str, ...]


def call_percpu(inv: calls.Invocation) -> PercpuResult:
    from ..taskinfo import percpu_of

    k = inv.kernel()
    return PercpuResult(tuple(percpu_of(k, parse_address(a, k)) for a in inv.args.symbols),
                        tuple(inv.args.symbols))


def percpu_json(argument: str, a) -> Dict[str, Any]:
    var = a.variable
    return {"argument": argument, "va": hexa(a.va), "linked_va": hexa(a.linked_va), "cpu": a.cpu,
            "variable": None if var is None else {"name": var.name, "va": hexa(var.va),
                                                  "size": var.size_bytes, "type": var.type_name},
            "offset": a.offset,
            "section": {"start": hexa(a.section_start), "end": hexa(a.section_end)},
            "copies": [{"cpu": c.cpu, "va": hexa(c.va), "pa": hexa(c.pa)} for c in a.copies]}


def percpu_text(argument: str, a) -> List[str]:
    var = a.variable
    if var is not None:
        what = f"{var.type_name} {var.name}" if var.type_name else var.name
        head = f"{argument}: per-cpu {what} ({var.size_bytes} bytes) +0x{a.offset:x}"
    elif a.names_known:
        head = f"{argument}: per-cpu section padding, +0x{a.offset:x} from __per_cpu_start"
    else:
        head = f"{argument}: per-cpu +0x{a.offset:x} from __per_cpu_start (no variable names in BTF)"
    lines = [_fit(head), f"  linked at {addr(a.linked_va)}"
             + (f"; {addr(a.va)} is cpu {a.cpu}'s copy" if a.cpu is not None else "")]
    lines += [f"  cpu {c.cpu:<4} {addr(c.va)}  pa {addr(c.pa)}" for c in a.copies]
    return lines


def render_percpu(result: PercpuResult, inv: calls.Invocation) -> Output:
    pairs = list(zip(result.arguments, result.answers))
    if inv.as_json:
        return Output(json_items=[percpu_json(arg_, a) for arg_, a in pairs])
    return Output(text="\n\n".join("\n".join(percpu_text(arg_, a)) for arg_, a in pairs))


# -- tasks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TasksResult:
    rows: Tuple[Any, ...]           # kmemdbg.taskinfo.TaskRow
    notes: Tuple[str, ...]


def call_tasks(inv: calls.Invocation) -> TasksResult:
    from ..taskinfo import list_tasks

    rows, notes = list_tasks(inv.kernel())
    return TasksResult(rows, notes)


def task_row_json(r) -> Dict[str, Any]:
    t = r.task
    return {"pid": t.pid, "tgid": t.tgid, "comm": t.comm, "task": hexa(t.task_va),
            "mm": hexa(t.mm_va or None), "pgd": hexa(r.pgd_va),
            "stack": None if r.stack_start is None else {
                "start": hexa(r.stack_start), "end": hexa(r.stack_end), "region": r.stack_region,
                "vm_struct": hexa(t.stack_vm_va)}}


def render_tasks(result: TasksResult, inv: calls.Invocation) -> Output:
    warnings = tuple(f"kmemdbg: tasks: {n}" for n in result.notes)
    status = 1 if result.notes else 0
    if inv.as_json:
        return Output(json_items=[task_row_json(r) for r in result.rows], warnings=warnings, exit_status=status)
    lines = [f"{'PID':>6} {'COMM':<15} {'TASK':<18} {'MM':<18} STACK"]
    for r in result.rows:
        t = r.task
        comm = t.comm if t.tgid == t.pid else t.comm[:12] + "*"
        lines.append(f"{t.pid:>6} {comm:<15.15} {addr(t.task_va)} {addr(t.mm_va or None):<18} "
                     f"{addr(r.stack_start)}")
    lines.append(f"{len(result.rows)} tasks; * a thread (tgid differs); STACK is task->stack, the "
                 f"lowest address"[:WIDTH])
    return Output(text="\n".join(lines), warnings=warnings, exit_status=status)


# -- vm -------------------------------------------------------------------------------------
def call_vm(inv: calls.Invocation):
    from ..taskinfo import task_vm

    k = inv.kernel()
    args = inv.args
    mm = parse_address(args.mm, k) if args.mm else None
    if args.pid is None and mm is None:
        raise KmemdbgError("vm: give the task with --pid N or its mm with --mm ADDR")
    return task_vm(k, pid=args.pid, mm_va=mm, pages=args.pages)


def _page_json(p) -> Dict[str, Any]:
    return {"va": hexa(p.va), "pa": hexa(p.pa), "page_size": p.page_size,
            "fault": None if p.fault is None else {"level": p.fault_level, "reason": p.fault}}


def vm_json(result) -> Dict[str, Any]:
    t = result.task
    return {"pid": None if t is None else t.pid, "comm": None if t is None else t.comm,
            "mm": hexa(result.mm_va), "pgd_pa": hexa(result.pgd_pa),
            "vmas": [{"start": hexa(v.vma.start), "end": hexa(v.vma.end), "flags": hexa(v.vma.flags),
                      "flag_names": list(v.vma.flag_names), "perms": v.vma.perms, "pgoff": v.vma.pgoff,
                      "file": v.vma.path, "label": v.vma.label or None, "vma": hexa(v.vma.vma_va),
                      "pages": None if v.pages is None else [_page_json(p) for p in v.pages]}
                     for v in result.vmas]}


def page_runs(pages, page_size: int) -> List[Tuple[int, int, Optional[int], Optional[str]]]:
    """(va start, va end, pa of start or None, fault reason) runs of pages whose physical
    addresses follow on (or that fault alike)."""
    runs: List[List[Any]] = []
    for p in pages:
        if runs:
            r = runs[-1]
            if p.pa is None and r[2] is None and r[3] == p.fault or \
                    p.pa is not None and r[2] is not None and p.pa == r[2] + (p.va - r[0]):
                r[1] = p.va + page_size
                continue
        runs.append([p.va, p.va + page_size, p.pa, p.fault])
    return [tuple(r) for r in runs]  # type: ignore[misc]


def vm_text(result) -> List[str]:
    t = result.task
    who = f"PID {t.pid} ({t.comm})  " if t is not None else ""
    lines = [_fit(f"{who}MM {addr(result.mm_va)}  PGD pa 0x{result.pgd_pa:x}"),
             f"{'START':<18} {'END':<18} PERM {'FLAGS':<10} FILE"]
    for v in result.vmas:
        vma = v.vma
        name = vma.path or vma.label
        lines.append(_fit(f"{addr(vma.start)} {addr(vma.end)} {vma.perms} {vma.flags:#010x} {name}"))
        if v.pages is not None:
            for s, e, pa, fault in page_runs(v.pages, result.page_size):
                where = f"pa {addr(pa)}" if pa is not None else f"not mapped ({fault})"
                lines.append(f"  {addr(s)}-{addr(e)} {where}")
    return lines


def render_vm(result, inv: calls.Invocation) -> Output:
    if inv.as_json:
        return Output(json_items=[vm_json(result)])
    return Output(text="\n".join(vm_text(result)))


COMMANDS: Tuple[Command, ...] = (
    Command("percpu", "every cpu's address of a per-cpu variable", (
        arg("symbols", nargs="+", metavar="SYMBOL", help="a per-cpu symbol[+off] or an address in it"),),
        call_percpu, render_percpu, EVERYWHERE),
    Command("tasks", "every task with its pid, comm, mm and kernel stack", (),
            call_tasks, render_tasks, EVERYWHERE),
    Command("vm", "a task's VMAs (start, end, flags, file); -p: each page's translation", (
        arg("--pid", type=int, help="the task", exclusive_group="who"),
        arg("--mm", metavar="ADDR", help="a struct mm_struct address", exclusive_group="who"),
        arg("-p", "--pages", action="store_true", help="translate every page of every VMA")),
        call_vm, render_vm, EVERYWHERE),
)
