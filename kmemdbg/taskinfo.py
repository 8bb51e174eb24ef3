"""Tasks, their address spaces and per-cpu variables, asked of a :class:`~kmemdbg.kernel.Kernel`.

The library side of the ``percpu``, ``tasks`` and ``vm`` commands: each
function returns a frozen result and never prints.  The kernel objects come
from :mod:`kmemdbg.linux.tasks`, :mod:`kmemdbg.linux.mm` and
:mod:`kmemdbg.linux.percpu`; translations from the kernel's own walker or
the task's (``mm->pgd``).  ``va`` is virtual (kernel or user as named),
``pa`` physical; sizes in bytes; ``end`` exclusive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from .errors import KmemdbgError
from .linux.mm import Vma, read_vmas
from .linux.owners import has_guard
from .linux.percpu import PerCpuLayout, PerCpuVariable
from .linux.tasks import TaskInfo

#: Pages ``vm -p`` translates at most in one command.
MAX_VM_PAGES = 1 << 18


def _objects(kernel):
    objs = kernel.objects()
    if objs is None:
        raise KmemdbgError("; ".join(m for m in kernel.missing if m.startswith("no allocation data"))
                           or "no type information (BTF) in this dump")
    return objs


def _unavailable(kernel, what: str) -> Optional[str]:
    for u in kernel.owners.unavailable:
        if u.what == what:
            return u.reason
    return None


# -- per-cpu --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerCpuCopy:
    """cpu ``cpu``'s copy at kernel virtual ``va``, mapped to physical ``pa`` (None: unmapped)."""

    cpu: int
    va: int
    pa: Optional[int]


@dataclass(frozen=True)
class PerCpuAnswer:
    """Where every cpu's copy of the per-cpu byte at ``va`` is.

    ``linked_va`` is the linked (``&var``) address of the byte, ``variable``
    the BTF variable holding it (None in padding), ``offset`` the byte's
    offset in it, ``cpu`` the cpu whose copy ``va`` itself is (None when
    ``va`` is the linked address)."""

    va: int
    linked_va: int
    cpu: Optional[int]
    variable: Optional[PerCpuVariable]
    offset: int
    section_start: int
    section_end: int
    copies: Tuple[PerCpuCopy, ...]
    names_known: bool = True    # False: BTF lists no per-cpu variables (a slice's BTF subset)


def percpu_layout(kernel) -> PerCpuLayout:
    """The kernel's per-cpu layout; raises KmemdbgError saying why it is not known."""
    _objects(kernel)
    layout = kernel.owners.percpu()
    if layout is None:
        raise KmemdbgError(_unavailable(kernel, "per-cpu variables") or "per-cpu data cannot be located")
    return layout


def percpu_of(kernel, va: int) -> PerCpuAnswer:
    """Every cpu's copy of the per-cpu variable at virtual ``va`` (linked or a cpu's copy).
    Raises KmemdbgError when ``va`` is in neither or the layout is unknown."""
    layout = percpu_layout(kernel)
    hit = layout.find(va)
    if hit is None:
        raise KmemdbgError(f"0x{va:x} is not a static per-cpu address: not in __per_cpu_start.."
                           f"__per_cpu_end (0x{layout.start:x}-0x{layout.end:x}) nor in a cpu's copy of it")
    base = hit.variable.va if hit.variable is not None else layout.start
    linked = base + hit.offset
    copies = tuple(PerCpuCopy(cpu, cva, kernel.walker.walk(cva).pa) for cpu, cva in layout.copies(linked))
    return PerCpuAnswer(va, linked, hit.cpu, hit.variable, hit.offset, layout.start, layout.end, copies,
                        bool(layout.variables))


# -- tasks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskRow:
    """A task with its kernel stack's virtual ``[stack_start, stack_end)`` (``stack_end`` None
    when the stack is not a vmap area, whose size would say), the stack's region kind, and
    ``pgd_va`` (``mm->pgd``, kernel virtual; None for a kernel thread)."""

    task: TaskInfo
    stack_start: Optional[int]
    stack_end: Optional[int]
    stack_region: Optional[str]
    pgd_va: Optional[int]


def list_tasks(kernel) -> Tuple[Tuple[TaskRow, ...], Tuple[str, ...]]:
    """(every task with its stack and page tables, notes on what could not be read).
    Raises KmemdbgError when the task list cannot be read at all."""
    objs = _objects(kernel)
    tasks = kernel.owners.tasks()
    why = _unavailable(kernel, "tasks")
    if why is not None:
        raise KmemdbgError(why)
    page = kernel.tables.format.page_size
    pgd_off = objs.btf.offset("mm_struct", "pgd")
    rows = []
    for t in tasks:
        end = None
        region = None
        if t.stack_va:
            region = kernel.layout.region_of(t.stack_va).kind
            area = kernel.owners.vmap_area_at(t.stack_va)
            if area is not None and area.start == t.stack_va:
                end = area.end - (page if has_guard(area) else 0)
        pgd = None
        if t.mm_va:
            try:
                pgd = int.from_bytes(kernel.read(t.mm_va + pgd_off, 8), "little")
            except KmemdbgError:
                pgd = None
        rows.append(TaskRow(t, t.stack_va, end, region, pgd))
    return tuple(rows), tuple(kernel.owners.task_notes)


def find_task(kernel, pid: int) -> TaskInfo:
    """The task (thread) with id ``pid``; raises KmemdbgError (one line) when there is none."""
    rows, _ = list_tasks(kernel)
    for r in rows:
        if r.task.pid == pid:
            return r.task
    raise KmemdbgError(f"no task with pid {pid}")


# -- user page tables -------------------------------------------------------------------------
def user_range(arch, fmt) -> Tuple[int, int]:
    """The user half ``[start, end)`` (virtual) of tables of ``fmt``: the lower half of a space
    split by a canonical hole, else the whole low-root (TTBR0-like) space."""
    if arch.root_hole_index(fmt) >= 0:
        return 0, 1 << (fmt.va_bits - 1)
    return arch.kernel_range(fmt, False)


def user_sweep(kernel, pid: int):
    """A :class:`~kmemdbg.ptdump.LeafSweep` over the user half of task ``pid``'s own tables
    (``mm->pgd``), for :func:`kmemdbg.ptdump.ptdump`'s ``sweep``.  Raises KmemdbgError."""
    from .ptdump import LeafSweep

    class UserSweep(LeafSweep):
        def default_range(self) -> Tuple[int, int]:
            return user_range(self.arch, self.format)

    task = find_task(kernel, pid)
    if not task.mm_va:
        raise KmemdbgError(f"pid {pid} ({task.comm}) is a kernel thread: it has no user page tables")
    user = kernel.user_walker(mm=task.mm_va)
    return UserSweep(kernel.tables.format, user.cache, user.root_pa, high=False)


# -- vm ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageTranslation:
    """User virtual ``va`` maps physical ``pa`` (a leaf of ``page_size`` bytes), or
    ``fault`` (a reason) at ``fault_level`` when it does not."""

    va: int
    pa: Optional[int]
    page_size: Optional[int]
    fault: Optional[str]
    fault_level: Optional[str]


@dataclass(frozen=True)
class VmaPages:
    """One VMA and, when asked for, the translation of each of its pages."""

    vma: Vma
    pages: Optional[Tuple[PageTranslation, ...]]


@dataclass(frozen=True)
class TaskVm:
    """The memory map of ``mm_va`` (``struct mm_struct *``, kernel virtual), of task ``task``
    when one was named; ``pgd_pa`` is the physical root of its page tables."""

    task: Optional[TaskInfo]
    mm_va: int
    pgd_pa: int
    page_size: int
    vmas: Tuple[VmaPages, ...]


def task_vm(kernel, pid: Optional[int] = None, mm_va: Optional[int] = None, pages: bool = False) -> TaskVm:
    """The VMAs of task ``pid`` (or of ``mm_va``) and, with ``pages``, every page's translation
    through the task's own tables (at most MAX_VM_PAGES pages).  Raises KmemdbgError (one line)."""
    objs = _objects(kernel)
    task = None
    if mm_va is None:
        if pid is None:
            raise KmemdbgError("give the task with --pid N or its mm with --mm ADDR")
        task = find_task(kernel, pid)
        if not task.mm_va:
            raise KmemdbgError(f"pid {pid} ({task.comm}) is a kernel thread: it has no mm")
        mm_va = task.mm_va
    walker = kernel.user_walker(mm=mm_va)
    vmas = read_vmas(objs, mm_va)
    page = kernel.tables.format.page_size
    out: List[VmaPages] = []
    if pages:
        total = sum((v.end - v.start) // page for v in vmas)
        if total > MAX_VM_PAGES:
            raise KmemdbgError(f"vm -p: {total} pages in {len(vmas)} VMAs is more than the {MAX_VM_PAGES} "
                               "one command translates")
    for v in vmas:
        got = None
        if pages:
            batch = walker.translate_many(range(v.start, v.end, page))
            got = tuple(PageTranslation(va, pa, size, f[1] if f else None, f[0] if f else None)
                        for va, pa, size, f in zip(batch.vas, batch.pas, batch.page_sizes, batch.faults))
        out.append(VmaPages(v, got))
    return TaskVm(task, mm_va, walker.root_pa, page, tuple(out))


__all__ = ["PerCpuCopy", "PerCpuAnswer", "percpu_layout", "percpu_of", "TaskRow", "list_tasks", "find_task",
           "user_range", "user_sweep", "PageTranslation", "VmaPages", "TaskVm", "task_vm", "MAX_VM_PAGES"]
