"""What ``__pa()``/``virt_to_phys()`` returns, and how that compares with the walk.

The kernel's arithmetic is the architecture's (``kernel_pa`` and
``virt_to_page`` hooks in ``kmemdbg/arch/<name>/addresses.py``, which cite
the kernel sources); this module dispatches to it and holds the verdicts.

All ``*_pa`` values are physical, ``va`` virtual.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from .arch import UnknownArchitectureError, arch_named
from .arch.spec import PaArithmetic, PageArray
from .layout import MASK64, Layout, Region


def kernel_pa(layout: Layout, va: int) -> PaArithmetic:
    """The kernel's own ``__pa(va)`` for this layout; ``pa`` is None when a quantity is missing."""
    try:
        arch = arch_named(layout.arch)
    except UnknownArchitectureError:
        return PaArithmetic(None, f"no __pa() rules for {layout.arch}", "")
    return arch.kernel_pa(layout, va & MASK64)


def kernel_virt_to_page(layout: Layout, va: int, pages: PageArray) -> PaArithmetic:
    """The kernel's own ``virt_to_page(va)`` (a virtual ``struct page *`` in ``pa``'s place)."""
    try:
        arch = arch_named(layout.arch)
    except UnknownArchitectureError:
        return PaArithmetic(None, f"no __pa() rules for {layout.arch}", "")
    return arch.virt_to_page(layout, va, pages)


OK = "ok"
MISMATCH = "mismatch"
UNMAPPED = "unmapped"
NOT_APPLICABLE = "not-applicable"
VERDICTS = (OK, MISMATCH, UNMAPPED, NOT_APPLICABLE)


class Check(NamedTuple):
    """A verdict on ``virt_to_phys(va)`` (or on a claimed physical address).

    ``linear_pa`` is ``__pa(va)`` by the kernel's arithmetic, ``walk_pa``
    what the page tables say, ``claimed_pa`` what the caller claimed.
    ``true_pages`` gives (va, pa) per page when a range was checked.
    """

    va: int
    linear_pa: Optional[int]
    walk_pa: Optional[int]
    claimed_pa: Optional[int]
    verdict: str
    region: Region
    explanation: str
    branch: str
    debug_virtual: str
    true_pages: Tuple[Tuple[int, Optional[int]], ...] = ()
    bogus: Optional[str] = None


__all__ = ["PaArithmetic", "kernel_pa", "PageArray", "kernel_virt_to_page", "Check", "VERDICTS", "OK", "MISMATCH", "UNMAPPED",
           "NOT_APPLICABLE"]
