"""The one descent over a page-table tree, with visitor callbacks.

The shape of the kernel's ``mm/ptdump.c``: :func:`walk_range` owns the
descent (which table pages are read, in which order, once per level), and a
:class:`TreeVisitor` says what a page, a shared page met again and a fault
mean to it.  The visitor receives whole table pages, so a numpy visitor
decodes a page at once (:class:`kmemdbg.ptdump.LeafSweep`) and a scalar one
walks its entries (:func:`kmemdbg.tables.sweep`, :func:`kmemdbg.tables.table_pages`).

The walker guarantees, for every visitor:

- a table page met again at a *different* level is a loop: ``fault`` is
  called with reason ``table-loop`` and the page is not descended;
- a table page met again at the *same* level (a shared table: the KASAN early
  shadow) goes to ``again`` first, which may answer for it (a memo, a count)
  or return :data:`READ` to have it visited again from the table cache;
- an unreadable page is a ``fault`` with reason ``table-unreadable``.

Hooks are generator functions: what they yield is yielded by the walk (a
lazy sweep yields its entries and faults), what they return is the result of
that subtree (a folding sweep returns its runs).  ``base`` is the
table-index bits of the first address a table covers (not sign-extended:
the visitor turns it into a virtual address with its architecture's
``va_of``); ``table_pa`` is physical.

Point translation (:meth:`kmemdbg.walk.Walker.walk`) and batch translation
(``translate_many``) follow one path, not a range, and stay specialised hot
paths over the same decoder (:meth:`PagingFormat.decode` masks).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Generator, Optional, Protocol

from .arch.base import TABLE_LOOP, TABLE_UNREADABLE, PagingFormat
from .errors import PhysicalReadError
from .memory import TableCache

#: Returned by :meth:`TreeVisitor.again` to have a shared table visited again.
READ = object()

#: ``descend(table_pa, level, base, ctx)``: the walk of a child table, to ``yield from``.
Descend = Callable[[int, int, int, Any], Generator[Any, None, Any]]


class TreeVisitor(Protocol):
    """What a tree walk does at each table page (every hook is a generator function)."""

    def page(self, table_pa: int, level: int, base: int, table: memoryview, ctx: Any,
             descend: Descend) -> Generator[Any, None, Any]:
        """Visit the entries of the readable table page at physical ``table_pa``.

        ``table`` holds its ``1 << bits`` raw entries; ``ctx`` is what the parent
        passed to ``descend`` (the raw entries above, a key of their attributes).
        Children are walked with ``yield from descend(child_pa, level + 1, child_base, child_ctx)``.
        """
        ...

    def again(self, table_pa: int, level: int, base: int, ctx: Any) -> Generator[Any, None, Any]:
        """A table page already visited at ``level`` is reached again: return its result or :data:`READ`."""
        ...

    def fault(self, table_pa: int, level: int, base: int, reason: str, ctx: Any,
              other_level: Optional[int], detail: str) -> Generator[Any, None, Any]:
        """The page cannot be visited: ``reason`` is ``table-loop`` (``other_level`` is the
        level index it was met at first) or ``table-unreadable`` (``detail`` says why)."""
        ...


def walk_range(fmt: PagingFormat, cache: TableCache, root_pa: int, visitor: TreeVisitor,
               level_of: Optional[Dict[int, int]] = None, ctx: Any = None,
               ) -> Generator[Any, None, Any]:
    """The walk of the tree rooted at physical ``root_pa`` with ``visitor``: a generator of
    what the visitor yields, whose return value is the root's result (see :func:`fold`).

    ``level_of`` (physical table address -> level index of its first visit) is
    filled as pages are visited; pass one to keep it across walks (a sweep
    that answers several ranges) or to read it afterwards.  The VA range is
    the visitor's: it descends only the children its range needs.  Root
    alignment is the caller's to check (callers differ in what a misaligned
    root means).
    """
    seen_at = {} if level_of is None else level_of
    size_of = fmt.table_size

    def read(table_pa: int, level: int, base: int, ctx: Any) -> Generator[Any, None, Any]:
        seen_at[table_pa] = level
        try:
            table = cache.table(table_pa, size_of(level))
        except PhysicalReadError as err:
            return visitor.fault(table_pa, level, base, TABLE_UNREADABLE, ctx, None, err.reason)
        return visitor.page(table_pa, level, base, table, ctx, descend)

    def shared(table_pa: int, level: int, base: int, ctx: Any) -> Generator[Any, None, Any]:
        got = yield from visitor.again(table_pa, level, base, ctx)
        if got is READ:
            got = yield from read(table_pa, level, base, ctx)
        return got

    def descend(table_pa: int, level: int, base: int, ctx: Any) -> Generator[Any, None, Any]:
        # a plain function returning the visitor's generator: a first visit adds no
        # generator frame of its own to the chain every yielded item passes through
        seen = seen_at.get(table_pa)
        if seen is None:
            return read(table_pa, level, base, ctx)
        if seen != level:
            return visitor.fault(table_pa, level, base, TABLE_LOOP, ctx, seen, "")
        return shared(table_pa, level, base, ctx)

    return descend(root_pa, 0, 0, ctx)


def fold(walk: Generator[Any, None, Any]) -> Any:
    """Drive a walk whose visitor yields nothing (it folds its subtrees) and return its result."""
    try:
        item = next(walk)
    except StopIteration as done:
        return done.value
    raise AssertionError(f"a folding visitor yielded {item!r}")


__all__ = ["READ", "Descend", "TreeVisitor", "walk_range", "fold"]
