"""The prose of every virt_to_phys verdict, built in one place.

:func:`judge` turns the facts of one check (the address's region and
allocation, ``__pa()`` arithmetic, what the page tables say, what a bogus
physical address holds) into a :class:`~kmemdbg.virt_to_phys.Check` with
its explanation.  It reads nothing itself: the caller passes the facts and a
``describe(pa)`` callable for the physical address a verdict must name.

Addresses: ``va`` virtual, ``*_pa`` physical.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

from .physinfo import PhysInfo
from .records import new_record
from .virt_to_phys import MISMATCH, NOT_APPLICABLE, OK, UNMAPPED, Check, PaArithmetic


class WalkFault(NamedTuple):
    """Why the page tables give no frame for the address: ``reason`` at table ``level``."""

    level: Optional[str]
    reason: str


def judge(va: int, claimed_pa: Optional[int], walk_pa: Optional[int], fault: Optional[WalkFault],
          true_pages: Tuple[Tuple[int, Optional[int]], ...], region, allocation, arith: PaArithmetic,
          describe: Callable[[int], PhysInfo]) -> Check:
    """The verdict on virtual ``va``: ``__pa(va)`` (or ``claimed_pa``) against ``walk_pa``.

    ``region``/``allocation`` come from classification, ``arith`` from the
    kernel's ``__pa()`` arithmetic, ``fault`` from the walk (None when it
    mapped ``va`` to ``walk_pa``), ``true_pages`` the (va, pa) of every page
    of a checked range.  ``describe(pa)`` says what a wrong physical address
    holds; it is called only when a verdict names one.
    """
    # where va is: "<kind> address (<region name>)[, <allocation kind> <name>]"
    where = (f"{region.kind} address ({region.name})" if allocation is None else
             f"{region.kind} address ({region.name}), {allocation.kind} {allocation.name}")
    if region.kind == "non-canonical" or (fault is not None and fault.reason == "non-canonical"):
        return Check(va, arith.pa, None, claimed_pa, NOT_APPLICABLE, region,
                     f"{where}: no translation exists for it", arith.branch, arith.debug_virtual, true_pages)
    if arith.pa is None and claimed_pa is None:
        return Check(va, None, walk_pa, None, NOT_APPLICABLE, region,
                     f"{where}: __pa() cannot be computed: {arith.branch}", arith.branch, "", true_pages)
    subject = claimed_pa if claimed_pa is not None else arith.pa
    label = "the claimed physical address is" if claimed_pa is not None else "__pa() arithmetic gives"
    if fault is not None:
        bogus = describe(subject)
        text = (f"{where}: {label} 0x{subject:x}, but the page tables do not map it "
                f"({fault.reason} at {fault.level}); 0x{subject:x} is {bogus.detail}")
        return Check(va, arith.pa, None, claimed_pa, UNMAPPED, region, text, arith.branch,
                     arith.debug_virtual, true_pages, bogus.kind)
    if subject == walk_pa:
        text = f"{where}: {label} {subject:#x}, as the page tables say"
        return new_record(Check, (va, arith.pa, walk_pa, claimed_pa, OK, region, text, arith.branch,
                                  arith.debug_virtual, true_pages, None))
    bogus = describe(subject)
    how = f" ({arith.branch})" if claimed_pa is None else ""
    text = (f"{where}: {label} 0x{subject:x}{how}, which is {bogus.detail}; "
            f"the page tables map it to 0x{walk_pa:x}")
    if claimed_pa is not None and arith.pa is not None and claimed_pa == arith.pa:
        text += "; the claimed value equals __pa() of the pointer: virt_to_phys() used on a " \
                "non-linear address"
    if true_pages and len({p for _, p in true_pages if p is not None}) > 1:
        text += f"; the range spans {len(true_pages)} pages"
    return new_record(Check, (va, arith.pa, walk_pa, claimed_pa, MISMATCH, region, text, arith.branch,
                              arith.debug_virtual, true_pages, bogus.kind))


def vmap_detail(area) -> str:
    """The detail of a vmap-area allocation: ``"N pages, phys 0x..., lazy"`` as far as known."""
    detail = f"{area.nr_pages} pages" if area.nr_pages else ""
    if area.phys_addr:
        detail += f"{', ' if detail else ''}phys 0x{area.phys_addr:x}"
    if area.state != "busy":
        detail += f"{', ' if detail else ''}{area.state}"
    return detail


def slab_detail(offset: int, object_size: Optional[int]) -> str:
    """The detail of a slab-object allocation at byte ``offset`` in an object of ``object_size``."""
    if object_size:
        return f"offset {offset:#x} in a {object_size}-byte object"     # offset >= 0: "0x..."
    return "slab page (cache unknown: no struct slab type)"


__all__ = ["judge", "WalkFault", "vmap_detail", "slab_detail"]
