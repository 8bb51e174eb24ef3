"""Commands that look at frames and vmap areas: ``page`` and ``vmap``.

Each is a :class:`~kmemdbg.commands.spec.Command` whose call returns a
frozen result and whose renderer turns it into an
:class:`~kmemdbg.commands.renderers.Output`; :mod:`kmemdbg.commands.table`
appends :data:`COMMANDS` to the table.

``page`` says how its argument is read, never guessing between spaces:
``--pfn N``, ``--pa PA``, ``--page STRUCT_PAGE_VA``, or a plain kernel
virtual address (translated by walking the kernel tables; one inside the
vmemmap region is read as a ``struct page`` pointer, and the output says so).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

from ..pageinfo import GIVEN_PA, GIVEN_PAGE, GIVEN_PFN, GIVEN_VA, page_info, resolve_frame
from ..parse import parse_address, parse_number
from ..render_page import page_json, page_text, vmap_json, vmap_text
from ..vmapinfo import VmapListing, vmap_listing
from .calls import ArgumentError, Invocation, each_argument
from .renderers import Output, _per_argument
from .spec import EVERYWHERE, Command, arg


@dataclass(frozen=True)
class PageResult:
    pages: Tuple[Any, ...]          # kmemdbg.pageinfo.PageInfo or ArgumentError, per argument


@dataclass(frozen=True)
class VmapResult:
    listing: VmapListing
    page_size: int                  # the kernel's base page size, bytes


def call_page(inv: Invocation) -> PageResult:
    k = inv.kernel()
    given = inv.args.given or GIVEN_VA

    def one(text: str):
        value = parse_number(text) if given in (GIVEN_PFN, GIVEN_PA) else parse_address(text, k)
        return page_info(k, resolve_frame(k, given, value))
    return PageResult(each_argument(inv.args.values, one))


def render_page(result: PageResult, inv: Invocation) -> Output:
    more: dict = {}
    if any(not isinstance(p, ArgumentError) and not p.mappings_complete for p in result.pages):
        more = {"warnings": ("kmemdbg: page: some kernel tables could not be swept: mappings under "
                             "them are not listed",), "exit_status": 1}
    return _per_argument(inv, result.pages, page_json, page_text, **more)


def call_vmap(inv: Invocation) -> VmapResult:
    k = inv.kernel()
    va = parse_address(inv.args.address, k) if inv.args.address is not None else None
    return VmapResult(vmap_listing(k, va), k.tables.format.page_size)


def render_vmap(result: VmapResult, inv: Invocation) -> Output:
    listing = result.listing
    if inv.as_json:
        return Output(json_items=[vmap_json(e, listing.query_va, listing.in_guard) for e in listing.entries])
    return Output(text="\n".join(vmap_text(listing, result.page_size)))


def _given(flag: str, const: str, metavar_help: str) -> Any:
    return arg(flag, action="store_const", dest="given", const=const, exclusive_group="given",
               help=metavar_help)


COMMANDS: Tuple[Command, ...] = (
    Command("page", "the struct page of a frame: flags, counts, type, who maps it", (
        arg("values", nargs="+", metavar="VALUE",
            help="a kernel virtual address (default; vmemmap addresses are struct page pointers)"),
        _given("--pfn", GIVEN_PFN, "the values are page frame numbers (hexadecimal)"),
        _given("--pa", GIVEN_PA, "the values are physical addresses"),
        _given("--page", GIVEN_PAGE, "the values are struct page pointers (in vmemmap)")),
        call_page, render_page, EVERYWHERE),
    Command("vmap", "the vmap areas, or the one holding an address (like crash kmem -v)", (
        arg("address", nargs="?", metavar="ADDR", help="show only the area holding this address"),),
        call_vmap, render_vmap, EVERYWHERE),
)
