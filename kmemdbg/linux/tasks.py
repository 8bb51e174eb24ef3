"""The task list: every ``struct task_struct`` on ``init_task.tasks``, and their threads.

Offsets come from BTF (``task_struct.tasks``, ``pid``, ``mm``, ``comm``,
``stack``) and are passed in, so the walk needs no type source of its own.
``init_task.tasks`` holds thread-group leaders only; :func:`read_tasks`
adds every thread through ``signal->thread_head`` / ``task_struct.thread_node``
where BTF has those members (Linux kernel commit 0c740d0afc3b ("introduce
for_each_thread() to replace the buggy while_each_thread()") (in v3.14)).
The idle tasks (pid 0) are on no list and are not listed, as in
``/proc`` and drgn's ``for_each_task()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from ..errors import KmemdbgError
from .reader import ReadVirt, TypedReader, try_read_uint

#: ``TASK_COMM_LEN`` (include/linux/sched.h).
TASK_COMM_LEN = 16


@dataclass(frozen=True)
class TaskOffsets:
    """Byte offsets of the ``struct task_struct`` members the walk reads."""

    tasks: int
    pid: int
    mm: int
    comm: int


@dataclass(frozen=True)
class Task:
    """One task: ``pid``, ``task_va`` (``struct task_struct *``), ``mm_va`` (``struct mm_struct *``,
    0 for a kernel thread) and ``comm`` (``"?"`` when unreadable)."""

    pid: int
    task_va: int
    mm_va: int
    comm: str


def for_each_task(read: ReadVirt, init_task_va: int, off: TaskOffsets, limit: int = 1 << 16) -> Iterator[Task]:
    """Yield every task after ``init_task`` (at virtual ``init_task_va``) on its ``tasks`` list.

    At most ``limit`` tasks.  Raises KmemdbgError (one line) when the list
    loops, a task's pid or the list itself cannot be read.

        >>> [t.pid for t in for_each_task(k.read, k.symbols.address("init_task"), off)][:3]
        [1, 2, 3]
    """
    head = init_task_va + off.tasks
    node = try_read_uint(read, head, 8)
    seen = set()
    count = 0
    while node is not None and node != head and count < limit:
        if node in seen:
            raise KmemdbgError(f"task list loops at 0x{node:x}")
        seen.add(node)
        task = node - off.tasks
        pid = try_read_uint(read, task + off.pid, 4)
        mm = try_read_uint(read, task + off.mm, 8)
        try:
            comm = read(task + off.comm, TASK_COMM_LEN).split(b"\0")[0].decode("ascii", "replace")
        except KmemdbgError:
            comm = "?"
        if pid is None:
            raise KmemdbgError(f"task at 0x{task:x} is not readable")
        count += 1
        yield Task(pid, task, mm or 0, comm)
        node = try_read_uint(read, node, 8)
    if node is None:
        raise KmemdbgError("the task list is not readable in this dump")


def task_stack_va(read: ReadVirt, task: Task, stack_off: int) -> Optional[int]:
    """``task->stack`` (virtual base of the task's kernel stack), or None when unreadable."""
    return try_read_uint(read, task.task_va + stack_off, 8)


@dataclass(frozen=True)
class TaskInfo:
    """One task (a thread) with its address space and kernel stack.

    ``pid`` is the thread's id, ``tgid`` its process's; ``task_va`` the
    ``struct task_struct *``, ``mm_va`` its ``struct mm_struct *`` (0 for a
    kernel thread), ``stack_va`` ``task->stack`` (the lowest virtual address
    of the kernel stack; None when unreadable) and ``stack_vm_va`` its
    ``stack_vm_area`` (``struct vm_struct *`` of a vmapped stack, None when
    the member is absent or the stack is not vmapped).  ``comm`` is ``"?"``
    when unreadable.
    """

    pid: int
    tgid: int
    comm: str
    task_va: int
    mm_va: int
    stack_va: Optional[int]
    stack_vm_va: Optional[int] = None


def read_tasks(objs: TypedReader, limit: int = 1 << 16) -> Tuple[List[TaskInfo], Tuple[str, ...]]:
    """(every task, threads included, in list order; notes on what could not be listed).

    ``objs`` gives symbols, BTF and reads (:class:`kmemdbg.kobjects.KernelObjects`).
    Raises KmemdbgError (one line) when ``init_task`` or ``task_struct`` is
    missing or the task list cannot be read; an unreadable thread list is a
    note, not an error.
    """
    init = objs.symbol("init_task")
    if init is None:
        raise KmemdbgError("no symbol init_task: cannot list tasks (kallsyms without data symbols?)")
    btf = objs.btf
    try:
        off = TaskOffsets(btf.offset("task_struct", "tasks"), btf.offset("task_struct", "pid"),
                          btf.offset("task_struct", "mm"), btf.offset("task_struct", "comm"))
    except KmemdbgError as err:
        raise KmemdbgError(f"task_struct layout unknown: {err}") from None
    has = {m: btf.has_member("task_struct", m) for m in ("tgid", "stack", "stack_vm_area", "signal",
                                                          "thread_node")}
    threads = has["signal"] and has["thread_node"] and btf.has_member("signal_struct", "thread_head")
    notes: List[str] = []
    if not threads:
        notes.append("threads not listed: no task_struct.thread_node / signal_struct.thread_head in BTF")
    out: List[TaskInfo] = []
    seen = set()

    def field(task_va: int, member: str) -> Optional[int]:
        if not has.get(member, True):
            return None
        at, size = objs.field("task_struct", member)
        return int.from_bytes(objs.checked_read(task_va + at, size, f"task_struct.{member}"), "little")

    def info(task_va: int) -> TaskInfo:
        # member by member, not the whole ~10 KiB struct: a slice keeps only the pages read
        raw = objs.checked_read(task_va + off.comm, TASK_COMM_LEN, "task_struct.comm")
        comm = raw.split(b"\0")[0].decode("ascii", "replace")
        pid = field(task_va, "pid")
        tgid = field(task_va, "tgid")
        return TaskInfo(pid, pid if tgid is None else tgid, comm, task_va, field(task_va, "mm") or 0,
                        field(task_va, "stack"), field(task_va, "stack_vm_area") or None)

    for leader in for_each_task(objs.read, init, off, limit):
        if len(out) >= limit:
            break
        members = [leader.task_va]
        if threads:
            try:
                sig = objs.u64(leader.task_va + btf.offset("task_struct", "signal"), "task_struct.signal")
                head = sig + btf.offset("signal_struct", "thread_head")
                node_off = btf.offset("task_struct", "thread_node")
                members = [n - node_off for n in objs.list_nodes(head, f"threads of pid {leader.pid}")]
            except KmemdbgError as err:
                notes.append(f"threads of pid {leader.pid} not listed: {str(err).splitlines()[0]}")
        for task_va in members:
            if task_va in seen:
                continue
            seen.add(task_va)
            try:
                out.append(info(task_va))
            except KmemdbgError as err:
                notes.append(f"task at 0x{task_va:x} not readable: {str(err).splitlines()[0]}")
    return out, tuple(notes)


__all__ = ["Task", "TaskInfo", "TaskOffsets", "for_each_task", "read_tasks", "task_stack_va", "TASK_COMM_LEN"]
