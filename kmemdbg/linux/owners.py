"""One index of who owns a kernel virtual address: image sections, module sections, vmap areas.

Classification (:meth:`kmemdbg.kernel.Kernel.classify`), the page-table dump
(:func:`kmemdbg.ptdump.ptdump`) and the audits all ask this index.  Each of
its three sources is read once, on first use; a source that cannot be read
is left empty and its reason kept as an :class:`Unavailable` value (no
query changes what the index holds).

Addresses are kernel virtual; ``end`` is exclusive.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import KmemdbgError
from .modules import Module
from .vmalloc import VmapArea, find_area

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
        self._modules: Optional[Tuple[Owner, ...]] = None
        self._mod_starts: List[int] = []
        self._areas: Optional[Tuple[VmapArea, ...]] = None
        self._area_starts: List[int] = []
        self._spans: Optional[Tuple[Owner, ...]] = None
        self._span_starts: List[int] = []
        self._unavailable: dict = {}

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
        for o in self.image_sections():
            if o.start <= va < o.end:
                return o
        return None

    def module_at(self, va: int) -> Optional[Owner]:
        """The module section holding virtual ``va``, or None."""
        rows = self.modules()
        i = bisect.bisect_right(self._mod_starts, va) - 1
        if i < 0 or not va < rows[i].end:
            return None
        return rows[i]

    def vmap_area_at(self, va: int) -> Optional[VmapArea]:
        """The vmap area holding virtual ``va`` (a busy one before a lazily freed one), or None."""
        areas = self.vmap_areas()
        return find_area(areas, self._area_starts, va) if areas else None

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


__all__ = ["Owner", "OwnerIndex", "Unavailable", "IMAGE_SECTIONS", "IMAGE_SECTION", "MODULE", "VMAP_AREA",
           "image_section_owners", "module_owners", "vmap_owner", "first_line"]
