"""One index of who owns a kernel virtual address: image sections, module sections, vmap areas.

Classification (:meth:`kmemdbg.kernel.Kernel.classify`), the page-table dump
(:func:`kmemdbg.ptdump.ptdump`) and the audits all ask this index.  Each of
its sources is read once, on first use; a source that cannot be read
is left empty and its reason kept as an :class:`Unavailable` value (no
query changes what the index holds).

Classification also asks :meth:`OwnerIndex.special` for the names a vmap
area or a page cannot give by itself: the task whose kernel stack holds an
address (from the task list), a vmap area's guard page, and the per-cpu
variable an address is a copy (or the linked offset) of.

Addresses are kernel virtual; ``end`` is exclusive.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import KmemdbgError
from .modules import Module
from .percpu import PerCpuHit, PerCpuLayout, read_percpu_layout
from .tasks import TaskInfo, read_tasks
from .vmalloc import VM_NO_GUARD, VmapArea, find_area

#: The image's sections: (name without the dot, start symbol, end symbol), in lookup order.
IMAGE_SECTIONS = (("text", "_text", "_etext"), ("rodata", "__start_rodata", "__end_rodata"),
                  ("init", "__init_begin", "__init_end"), ("data", "_sdata", "_edata"),
                  ("bss", "__bss_start", "__bss_stop"))

#: Kinds of :class:`Owner`.
IMAGE_SECTION, MODULE, VMAP_AREA = "image-section", "module", "vmap-area"


@dataclass(frozen=True)
class Owner:
    """What owns ``[start, end)``.

    ``kind`` is IMAGE_SECTION (``name`` like ``.text``), MODULE (``name`` the
    module, ``section`` its memory range: ``text``, ``init_data``...) or
    VMAP_AREA (``name`` its caller, purpose or first flag; ``flags`` the
    vmallocinfo words; ``area`` the whole :class:`VmapArea`).
    """

    kind: str
    start: int
    end: int
    name: str
    section: Optional[str] = None
    flags: Tuple[str, ...] = ()
    area: Optional[VmapArea] = None
    module: Optional[Module] = None

    @property
    def label(self) -> str:
        """One line naming the owner: ``kernel .text``, ``module NAME SECTION``, ``vmap CALLER [flags]``."""
        if self.kind == IMAGE_SECTION:
            return f"kernel {self.name}"
        if self.kind == MODULE:
            return f"module {self.name} {self.section}"
        words = " ".join(self.flags)
        return f"vmap {self.name}" + (f" [{words}]" if words else "")


#: Kinds of :class:`Special` (an allocation's ``kind``): a per-cpu variable; stacks and guard
#: pages stay vmap areas (their ``name`` and ``detail`` say more).
PERCPU_VARIABLE = "percpu-variable"
#: The unmapped page just below a task's vmapped stack, in no vmap area.
STACK_GUARD = "stack-guard"
#: cpus a per-cpu detail lists before it says how many more there are
PERCPU_SHOWN_CPUS = 4


@dataclass(frozen=True)
class Special:
    """A finer name for virtual ``va`` than its region's allocation: ``kind``, ``name``,
    ``[start, end)`` virtual, ``caller``, ``flags`` and ``detail`` as an allocation has them,
    with the ``task`` (stack) or ``percpu`` hit behind it."""

    kind: str
    name: str
    start: int
    end: int
    caller: Optional[str]
    flags: Tuple[str, ...]
    detail: str
    task: Optional[TaskInfo] = None
    percpu: Optional[PerCpuHit] = None


def task_label(task: TaskInfo) -> str:
    """``pid N (comm)``, with the thread group when the task is not its leader."""
    tg = f", thread of {task.tgid}" if task.tgid != task.pid else ""
    return f"pid {task.pid} ({task.comm}{tg})"


def area_label(area: VmapArea) -> str:
    """A vmap area in one phrase: ``vmap area 0x...-0x... (caller)``."""
    who = area.caller_name or (area.flags[0] if area.flags else "")
    return f"vmap area 0x{area.start:x}-0x{area.end:x}" + (f" ({who})" if who else "")


def has_guard(area: VmapArea) -> bool:
    """Whether the last page of ``area`` (its ``end`` counts it) is a guard page: a busy area
    with a ``vm_struct`` not made with VM_NO_GUARD."""
    return area.state == "busy" and area.vm_flags is not None and not area.vm_flags & VM_NO_GUARD


@dataclass(frozen=True)
class Unavailable:
    """A source of the index that could not be read: ``what`` (``modules``, ``vmap areas``) and why."""

    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type name when it has none)."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def image_section_owners(symbol: Callable[[str], Optional[int]]) -> Tuple[Owner, ...]:
    """The image sections whose start and end symbols ``symbol(name) -> va`` resolves, in
    IMAGE_SECTIONS order (empty sections left out)."""
    out = []
    for name, lo, hi in IMAGE_SECTIONS:
        a, b = symbol(lo), symbol(hi)
        if a is not None and b is not None and b > a:
            out.append(Owner(IMAGE_SECTION, a, b, f".{name}"))
    return tuple(out)


def module_owners(modules: Sequence[Module]) -> Tuple[Owner, ...]:
    """Every memory range of every module, sorted by start."""
    rows = [Owner(MODULE, sec.start, sec.end, mod.name, sec.name, module=mod)
            for mod in modules for sec in mod.sections]
    return tuple(sorted(rows, key=lambda o: (o.start, o.end)))


def vmap_owner(area: VmapArea) -> Owner:
    """A vmap area as an owner, named by its caller (``%pS``), else its first flag."""
    what = area.caller_name or (area.flags[0] if area.flags else "vmap area")
    return Owner(VMAP_AREA, area.start, area.end, what, flags=area.flags, area=area)


class OwnerIndex:
    """Who owns a kernel virtual address, for one kernel (see the module doc).

    ``symbol(name) -> va`` gives image section bounds; ``objects()`` returns
    the kernel's :class:`~kmemdbg.kobjects.KernelObjects` or None (no type
    information: no modules, no vmap areas).
    """

    def __init__(self, symbol: Callable[[str], Optional[int]], objects: Callable[[], object]) -> None:
        self._symbol = symbol
        self._objects = objects
        self._image: Optional[Tuple[Owner, ...]] = None
        self._image_index: Optional[Tuple[List[int], List[Optional[Owner]]]] = None
        self._modules: Optional[Tuple[Owner, ...]] = None
        self._mod_starts: List[int] = []
        self._areas: Optional[Tuple[VmapArea, ...]] = None
        self._area_starts: List[int] = []
        self._last_area: Tuple[int, Optional[VmapArea]] = (-1, None)   # classify asks twice per va
        self._spans: Optional[Tuple[Owner, ...]] = None
        self._span_starts: List[int] = []
        self._unavailable: dict = {}
        self._tasks: Optional[Tuple[TaskInfo, ...]] = None
        self._task_notes: Tuple[str, ...] = ()
        self._stacks: dict = {}
        self._percpu: Optional[PerCpuLayout] = None
        self._percpu_read = False

    # -- the three sources, each read once ----------------------------------------------
    def image_sections(self) -> Tuple[Owner, ...]:
        if self._image is None:
            self._image = image_section_owners(self._symbol)
        return self._image

    def modules(self) -> Tuple[Owner, ...]:
        """Module sections sorted by start (empty when the module list cannot be read)."""
        if self._modules is None:
            self._modules = self._read("modules", lambda objs: module_owners(objs.modules()))
            self._mod_starts = [o.start for o in self._modules]
        return self._modules

    def vmap_areas(self) -> Tuple[VmapArea, ...]:
        """Every vmap area, busy and lazily freed, sorted by start (empty when unreadable)."""
        if self._areas is None:
            self._areas = self._read("vmap areas", lambda objs: tuple(objs.vmap_areas()))
            self._area_starts = [a.start for a in self._areas]
        return self._areas

    def tasks(self) -> Tuple[TaskInfo, ...]:
        """Every task, threads included (empty when the task list cannot be read)."""
        if self._tasks is None:
            def read(objs) -> tuple:
                got, self._task_notes = read_tasks(objs)
                return tuple(got)
            self._tasks = self._read("tasks", read)
            self._stacks = {t.stack_va: t for t in self._tasks if t.stack_va}
        return self._tasks

    @property
    def task_notes(self) -> Tuple[str, ...]:
        """What the task walk could not list (threads of a group, an unreadable task)."""
        return self._task_notes

    def task_of_stack_base(self, stack_va: int) -> Optional[TaskInfo]:
        """The task whose ``task->stack`` is virtual ``stack_va``, or None."""
        if self._tasks is None:
            self.tasks()
        return self._stacks.get(stack_va)

    def percpu(self) -> Optional[PerCpuLayout]:
        """The per-cpu layout (:class:`~kmemdbg.linux.percpu.PerCpuLayout`), or None with the
        reason in :attr:`unavailable` (no type information, no per-cpu symbols)."""
        if not self._percpu_read:
            self._percpu_read = True
            got = self._read("per-cpu variables", lambda objs: (read_percpu_layout(
                objs.symbol, objs.read, objs.btf.datasec_vars(".data..percpu")),))
            self._percpu = got[0] if got else None
        return self._percpu

    def _read(self, what: str, read: Callable[[object], tuple]) -> tuple:
        """``read(objects)``, or () with the reason kept when there are no types or it fails."""
        objs = self._objects()
        if objs is None:
            return ()
        try:
            return read(objs)
        except KmemdbgError as err:  # BtfError, a corrupt list or tree
            self._unavailable[what] = Unavailable(what, first_line(err))
            return ()

    @property
    def unavailable(self) -> Tuple[Unavailable, ...]:
        """The sources read so far that could not be read, with their reasons."""
        return tuple(self._unavailable.values())

    # -- point lookups --------------------------------------------------------------------
    def image_section_at(self, va: int) -> Optional[Owner]:
        """The image section holding virtual ``va`` (first in IMAGE_SECTIONS order), or None."""
        cuts, owners = self._image_index or self._index_image()
        return owners[bisect.bisect_right(cuts, va) - 1]

    def _index_image(self) -> Tuple[List[int], List[Optional[Owner]]]:
        """(cuts, owner of [cut, next cut)): the image sections flattened once, the first in
        IMAGE_SECTIONS order winning where they overlap; None where no section is."""
        sections = self.image_sections()
        cuts = sorted({0} | {o.start for o in sections} | {o.end for o in sections})
        owners = [next((o for o in sections if o.start <= c < o.end), None) for c in cuts]
        self._image_index = (cuts, owners)
        return self._image_index

    def module_at(self, va: int) -> Optional[Owner]:
        """The module section holding virtual ``va``, or None."""
        rows = self.modules()
        i = bisect.bisect_right(self._mod_starts, va) - 1
        if i < 0 or not va < rows[i].end:
            return None
        return rows[i]

    def vmap_area_at(self, va: int) -> Optional[VmapArea]:
        """The vmap area holding virtual ``va`` (a busy one before a lazily freed one), or None."""
        last = self._last_area
        if last[0] == va:
            return last[1]
        areas = self.vmap_areas()
        area = find_area(areas, self._area_starts, va) if areas else None
        self._last_area = (va, area)
        return area

    # -- finer names for classification --------------------------------------------------
    def special(self, va: int, region_kind: str, page_size: int) -> Optional[Special]:
        """A task stack, a guard page or a per-cpu variable holding virtual ``va``, or None.

        ``region_kind`` is the region :class:`~kmemdbg.layout.Layout` gives
        ``va``; ``page_size`` the kernel's base page size in bytes.  A vmap
        area is only looked at in the vmalloc and module regions; per-cpu
        copies in any kernel region, the linked (offset-like) per-cpu section
        wherever it is (x86-64 links it at 0, in the user half).
        """
        if region_kind == "vmalloc" or region_kind == "module":
            if self._objects() is None:
                return None
            got = self._stack_or_guard(va, page_size)
            if got is not None:
                return got
        layout = self._percpu if self._percpu_read else self.percpu()   # None without type information
        if layout is None or region_kind == "non-canonical":
            return None
        if region_kind == "user" and not layout.start <= va < layout.end:
            return None
        hit = layout.find(va)
        return percpu_special(layout, hit) if hit is not None else None

    def _stack_or_guard(self, va: int, page_size: int) -> Optional[Special]:
        area = self.vmap_area_at(va)
        if area is None:
            # in no area: just below a stack is where an overflow of that stack lands
            base = va - va % page_size + page_size
            below = self.task_of_stack_base(base)
            if below is None:
                return None
            return Special(STACK_GUARD, f"below the stack of {task_label(below)}", base - page_size, base,
                           None, (), f"unmapped, {base - va} bytes below the stack of {task_label(below)} "
                           f"(0x{base:x}): where an overflow of that stack lands", task=below)
        task = self.task_of_stack_base(area.start) if area.state == "busy" else None
        guard = has_guard(area) and va >= area.end - page_size
        if task is None and not guard:
            return None
        name = f"stack of {task_label(task)}" if task is not None else (
            area.purpose or area.caller_name or (area.flags[0] if area.flags else "vmap area"))
        parts = []
        if guard:
            past = va - (area.end - page_size)
            parts.append(f"guard page, {past} bytes past the end of {area_label(area)}")
            below = self.task_of_stack_base(area.end)
            if below is not None:
                parts.append(f"{area.end - va} bytes below the stack of {task_label(below)}")
        elif task is not None:
            top = area.end - (page_size if has_guard(area) else 0)
            parts.append(f"task 0x{task.task_va:x}, {top - va} bytes below the stack top 0x{top:x}")
        return Special(VMAP_AREA, name, area.start, area.end, area.caller_name, area.flags,
                       "; ".join(parts), task=task)

    # -- the ptdump view --------------------------------------------------------------------
    def _merged(self) -> Tuple[Owner, ...]:
        """Image sections and busy vmap areas, one owner per distinct range (image first)."""
        if self._spans is None:
            merged = {}
            for o in self.image_sections() + tuple(vmap_owner(a) for a in self.vmap_areas()
                                                   if a.state == "busy"):
                merged.setdefault((o.start, o.end), o)
            self._spans = tuple(sorted(merged.values(), key=lambda o: (o.start, o.end, o.label)))
            self._span_starts = [o.start for o in self._spans]
        return self._spans

    @staticmethod
    def _find(starts: Sequence[int], spans: Sequence[Owner], va: int) -> Tuple[Optional[Owner], int]:
        i = bisect.bisect_right(starts, va) - 1
        best = None
        for j in range(max(0, i - 3), i + 1):
            o = spans[j]
            if o.start <= va < o.end and (best is None or o.start >= best.start):
                best = o
        nxt = starts[i + 1] if i + 1 < len(starts) else 1 << 64
        return best, nxt

    def owner(self, va: int) -> Tuple[Optional[Owner], int]:
        """(owner of virtual ``va`` or None, virtual end of that owner's range or of the gap).

        A module section is more specific than the vmap area holding it, so
        modules come first; the end is cut at the next owner's start.
        """
        mods = self.modules()
        best, nxt = self._find(self._mod_starts, mods, va) if mods else (None, 1 << 64)
        if best is not None:
            return best, min(best.end, nxt)
        nxt_mod = nxt
        spans = self._merged()
        best, nxt = self._find(self._span_starts, spans, va) if spans else (None, 1 << 64)
        if best is not None:
            return best, min(best.end, nxt, nxt_mod)
        return None, min(nxt, nxt_mod)


def percpu_special(layout: PerCpuLayout, hit: PerCpuHit) -> Special:
    """The :class:`Special` of a per-cpu hit: the variable (or the section, in padding), the
    cpu's copy's range, and where the other copies are."""
    var = hit.variable
    name = var.name if var is not None else "per-cpu section" if layout.variables else "per-cpu data"
    linked = (var.va if var is not None else layout.start)
    size = var.size_bytes if var is not None else layout.size_bytes
    what = f"{var.type_name} " if var is not None and var.type_name else ""
    if hit.cpu is None:
        start = linked
        lead = f"per-cpu offset 0x{linked:x} (+0x{hit.offset:x}) of {what}{name}" if var is not None else (
            f"per-cpu offset 0x{hit.va:x} in __per_cpu_start..__per_cpu_end"
            + ("" if layout.variables else " (no variable names in BTF)"))
        copies = layout.copies(hit.va)
        shown = ", ".join(f"cpu {c} 0x{v:x}" for c, v in copies[:PERCPU_SHOWN_CPUS])
        more = f" and {len(copies) - PERCPU_SHOWN_CPUS} more" if len(copies) > PERCPU_SHOWN_CPUS else ""
        detail = f"{lead}; this byte of each cpu: {shown}{more}"
    else:
        start = hit.va - hit.offset
        detail = (f"cpu {hit.cpu}'s copy of {what}{name}, +0x{hit.offset:x}; "
                  if var is not None or layout.variables else f"cpu {hit.cpu}'s copy of per-cpu offset "
                  f"0x{linked + hit.offset:x} (no variable names in BTF); ") + (
                  f"linked at 0x{linked:x}, __per_cpu_offset[{hit.cpu}] 0x{layout.offsets[hit.cpu]:x}")
    return Special(PERCPU_VARIABLE, name, start, start + max(size, 1), None,
                   (f"cpu{hit.cpu}",) if hit.cpu is not None else (), detail, percpu=hit)


__all__ = ["Owner", "OwnerIndex", "Unavailable", "Special", "PERCPU_VARIABLE", "STACK_GUARD", "percpu_special",
           "task_label", "area_label", "has_guard", "IMAGE_SECTIONS", "IMAGE_SECTION", "MODULE", "VMAP_AREA",
           "image_section_owners", "module_owners", "vmap_owner", "first_line"]
