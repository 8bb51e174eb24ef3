"""The compiled walk (:mod:`kmemdbg._walkc`), bound to one walker's format, source and root.

The pure-Python :class:`~kmemdbg.walk.Walker` is the reference; where the
C module was built and the source declares a :meth:`physical_view` (a
read-only buffer and the physical ranges it holds, as a mapped dump file
does), a walker hands the plain case to C: a canonical address whose walk
meets only valid table and leaf entries in tables the view holds whole.
C returns None for everything else and the Python walker answers, faults
and their reasons included.  ``tests/test_walk_accel.py`` checks that both
give the same answer on every fixture, on model cores and on garbage
tables.

Set ``KMEMDBG_PURE_PYTHON=1`` (before kmemdbg is imported) to walk in Python only.  A live source never
gets the compiled walk: its tables change under it and only the Python
walker's per-snapshot memos know when to start over.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional, Sequence, Tuple, Union

from .arch.base import PagingFormat
from .errors import PhysicalReadError
from .memory import PhysicalView

try:
    from . import _walkc
except ImportError:          # built without a C compiler: the pure walker does it all
    _walkc = None

#: The environment variable that turns the compiled walk off.
PURE_ENV = "KMEMDBG_PURE_PYTHON"


@dataclass(frozen=True)
class Accelerator:
    """The compiled walk of one walker: each call answers or returns None (ask Python).

    - ``translate(va) -> (pa, page_size, None) | None``: :meth:`~kmemdbg.walk.Walker.translate_one`'s answer
    - ``walk(va) -> Walk | None``: the full record, as :meth:`kmemdbg.walk.Walker.walk` gives it
    - ``read(va, size) -> bytes | int | None``: ``size`` bytes at virtual ``va``, all pages or
      none; for a read inside one mapped page whose bytes the view does not hold, that
      read's physical address (int) instead, for the source to read or refuse, or the
      source's PhysicalReadError raised where the view declares the source holds nothing
      (:attr:`~kmemdbg.memory.PhysicalView.held`)
    - ``translate_many(vas) -> (pas, page_sizes)``: lists, None where Python must answer
    """

    translate: Callable[[int], Optional[Tuple[int, int, None]]]
    walk: Callable[[int], Optional[object]]
    read: Callable[[int, int], Union[bytes, int, None]]
    translate_many: Callable[[Sequence[int]], Tuple[list, list]]


#: Whether ``KMEMDBG_PURE_PYTHON`` (set, and not 0) asked for the pure-Python code when kmemdbg
#: was imported; every compiled module of kmemdbg stands aside then.
PURE_REQUESTED = os.environ.get(PURE_ENV, "") not in ("", "0")

#: Whether walkers made from now on use the compiled walk: built, and not PURE_REQUESTED.
#: Tests set it to make pure walkers.
ENABLED = _walkc is not None and not PURE_REQUESTED


def enabled() -> bool:
    """True when walkers made now get the compiled walk (:data:`ENABLED`)."""
    return ENABLED


def _format(fmt: PagingFormat):
    """The C walk data of ``fmt`` (kept on the format), or None when C cannot hold it."""
    spec = fmt.__dict__.get("_walkc_format", False)
    if spec is False:
        try:
            spec = _walkc.Format(
                tuple((lv.shift, lv.bits, lv.leaf_ok) for lv in fmt.levels), fmt.valid_mask, fmt.leaf_mask,
                fmt.leaf_value, fmt.page_mask, fmt.page_value, fmt.reserved_table, fmt.reserved_leaf,
                tuple((f.mask, f.shift) for f in fmt.address), fmt.uniform_from, fmt.root_align)
            from .walk import LEAF, MEMO_LIMIT, TABLE, Step, Walk

            spec.records(Step, Walk, tuple(lv.name for lv in fmt.levels), fmt.name, LEAF, TABLE, fmt.flags,
                         fmt.permissions, fmt.flag_bits, fmt.permission_bits, MEMO_LIMIT)
        except (ValueError, OverflowError, TypeError):
            spec = None
        object.__setattr__(fmt, "_walkc_format", spec)   # a frozen dataclass: derived data only
    return spec


def _view(view: PhysicalView):
    """(the C view of ``view`` or None, its accelerators by (format, root, half)), kept on ``view``."""
    got = view.__dict__.get("_walkc")
    if got is None:
        try:
            held = () if view.held is None else (view.held, PhysicalReadError, view.absent)
            cview = _walkc.View(view.buffer, view.segments, *held)
        except (ValueError, OverflowError, TypeError):
            cview = None       # overlapping or unordered ranges: the pure walker reads them
        got = view._walkc = (cview, {})     # type: ignore[attr-defined]
    return got


def accelerator(fmt: PagingFormat, view: Optional[PhysicalView], root_pa: int,
                half_bit: Optional[int]) -> Optional[Accelerator]:
    """The compiled walk of the tables at physical ``root_pa`` in ``view``, or None.

    ``half_bit`` is the VA bit 63 the tables translate (None: both halves).
    """
    if view is None or not enabled():
        return None
    spec = _format(fmt)
    cview, bound = _view(view)
    if spec is None or cview is None:
        return None
    half = -1 if half_bit is None else half_bit
    key = (spec, root_pa, half)      # a fresh walker of the same tables costs a lookup
    got = bound.get(key)
    if got is None:
        got = bound[key] = Accelerator(
            partial(spec.translate, cview, root_pa, half), partial(spec.walk, cview, root_pa, half),
            partial(spec.read, cview, root_pa, half), partial(spec.translate_many, cview, root_pa, half))
    return got


__all__ = ["Accelerator", "accelerator", "enabled", "PURE_ENV"]
