"""The vmap areas of a kernel as the ``vmap`` command lists them (like crash ``kmem -v``).

Each :class:`VmapEntry` is one area of :mod:`kmemdbg.linux.vmalloc` (busy,
then lazily freed ones where the kernel's lists can be found) with its guard
page (the last page of ``vm_struct.size`` unless ``VM_NO_GUARD``) and whether
the kernel's page tables map that guard page (they never should).

Addresses are kernel virtual; ``end`` values exclusive; sizes in bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import KmemdbgError
from .linux.vmalloc import VmapArea, find_area, guard_range


@dataclass(frozen=True)
class VmapEntry:
    """One vmap area and its guard page: ``guard`` the guard's virtual ``[start, end)`` (None:
    the area has none), ``guard_mapped`` whether the page tables map it (None: no guard)."""

    area: VmapArea
    guard: Optional[Tuple[int, int]]
    guard_mapped: Optional[bool]


@dataclass(frozen=True)
class VmapListing:
    """Every vmap area sorted by start (``query_va`` None), or the one holding virtual
    ``query_va`` with ``in_guard`` saying whether it is in that area's guard page;
    ``unavailable`` names collections of areas that could not be found."""

    entries: Tuple[VmapEntry, ...]
    query_va: Optional[int]
    in_guard: bool
    unavailable: Tuple[str, ...]


def _entry(kernel, area: VmapArea) -> VmapEntry:
    guard = guard_range(area, kernel.tables.format.page_size)
    mapped = None if guard is None else kernel.walker.walk(guard[0]).pa is not None
    return VmapEntry(area, guard, mapped)


def vmap_listing(kernel, va: Optional[int] = None) -> VmapListing:
    """The vmap areas of ``kernel`` (all of them, or the one holding virtual ``va``).

    Raises KmemdbgError (one line) when there is no type information, the
    area lists cannot be read, or no area holds ``va``.
    """
    objs = kernel.objects()
    if objs is None:
        try:
            reason = next((m for m in kernel.missing if m.startswith("no allocation data")),
                          "no type information")
        except KmemdbgError:        # the layout itself is what is missing
            reason = "no type information"
        raise KmemdbgError(f"vmap areas cannot be read: {reason}")
    areas = objs.vmap_areas()         # raises KobjectsError (a KmemdbgError), one line
    unavailable = tuple(objs.unavailable)
    if va is None:
        return VmapListing(tuple(_entry(kernel, a) for a in areas), None, False, unavailable)
    area = find_area(areas, [a.start for a in areas], va)
    if area is None:
        region = kernel.layout.region_of(va)
        raise KmemdbgError(f"0x{va:016x}: in no vmap area (region {region.kind}: {region.name})")
    entry = _entry(kernel, area)
    in_guard = entry.guard is not None and entry.guard[0] <= va < entry.guard[1]
    return VmapListing((entry,), va, in_guard, unavailable)


__all__ = ["VmapEntry", "VmapListing", "vmap_listing"]
