"""The task list: every ``struct task_struct`` on ``init_task.tasks``.

Offsets come from BTF (``task_struct.tasks``, ``pid``, ``mm``, ``comm``,
``stack``) and are passed in, so the walk needs no type source of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

from ..errors import KmemdbgError
from .reader import ReadVirt, try_read_uint

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


__all__ = ["Task", "TaskOffsets", "for_each_task", "task_stack_va", "TASK_COMM_LEN"]
