"""The BTF parser against a blob encoded by hand here, and the subset encoder.

Oracle: the layout written into the hand-made blob (offsets in bits, as the
format stores them); for the real kernel, the parser's own answers on the
full blob, which the subset must reproduce.
"""
from __future__ import annotations

import struct
import time

import pytest

from kmemdbg.btf import Btf, BtfError
from realdumps import all_dumps

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST = range(1, 11)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 12, 13, 14, 15, 16, 17, 18, 19


class Blob:
    """A tiny BTF writer that knows nothing of kmemdbg.btf."""

    def __init__(self) -> None:
        self.types = b""
        self.strs = b"\0"

    def s(self, text: str) -> int:
        if not text:
            return 0
        off = len(self.strs)
        self.strs += text.encode() + b"\0"
        return off

    def add(self, name: str, kind: int, size_or_type: int, *extra: int, vlen: int = 0, kflag: int = 0) -> None:
        info = (kflag << 31) | (kind << 24) | vlen
        self.types += struct.pack("<III", self.s(name), info, size_or_type)
        self.types += struct.pack("<%dI" % len(extra), *[e & 0xFFFFFFFF for e in extra])

    def bytes(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strs))
        return hdr + self.types + self.strs


def tiny() -> bytes:
    b = Blob()
    b.add("unsigned int", INT, 4, 32)                                   # 1
    b.add("long unsigned int", INT, 8, 64)                              # 2
    b.add("u32", TYPEDEF, 1)                                            # 3
    b.add("", CONST, 3)                                                 # 4
    b.add("", VOLATILE, 4)                                              # 5 volatile const u32
    b.add("inner", STRUCT, 16, b.s("a"), 2, 0, b.s("b"), 5, 64, vlen=2)  # 6
    b.add("", PTR, 8)                                                   # 7 struct outer *
    # 8: struct outer, kind_flag set: member offset = bitfield size << 24 | bit offset
    b.add("outer", STRUCT, 56,
          b.s("next"), 7, 0,
          b.s("flags"), 1, (3 << 24) | 64,
          b.s("mode"), 1, (5 << 24) | 67,
          b.s("in"), 6, 128,
          b.s("arr"), 9, 256,
          0, 10, 384,
          vlen=6, kflag=1)
    b.add("", ARRAY, 0, 2, 1, 2)                                        # 9 unsigned long[2]
    b.add("", UNION, 8, b.s("x"), 2, 0, b.s("y"), 11, 0, vlen=2)        # 10 anonymous union
    b.add("", PTR, 12)                                                  # 11 struct page *
    b.add("page", FWD, 0)                                               # 12
    b.add("color", ENUM, 4, b.s("RED"), 0, b.s("BLUE"), -1, vlen=2, kflag=1)  # 13 signed
    b.add("", FUNC_PROTO, 0, 0, 1, vlen=1)                              # 14
    b.add("f", FUNC, 14)                                                # 15
    b.add("big", ENUM64, 8, b.s("X"), 0, 1 << 8, vlen=1)                # 16 X = 1 << 40
    b.add("double", FLOAT, 8)                                           # 17
    b.add("tag", DECL_TAG, 8, -1)                                       # 18
    b.add("user", TYPE_TAG, 2)                                          # 19
    b.add("v", VAR, 2, 1)                                               # 20
    b.add(".data", DATASEC, 8, 20, 0, 8, vlen=1)                        # 21
    b.add("outer_t", TYPEDEF, 8)                                        # 22
    return b.bytes()


def test_hand_blob_counts_every_kind():
    btf = Btf.parse(tiny())
    assert btf.type_count == 22
    assert [btf.type(i).kind for i in (13, 15, 16, 17, 18, 19, 20, 21)] == [
        "enum", "func", "enum64", "float", "decl_tag", "type_tag", "var", "datasec"]


def test_plain_member_offsets_in_bytes():
    btf = Btf.parse(tiny())
    outer = btf.struct("outer")
    assert outer.size == 56
    assert outer.member("next").offset == 0
    assert outer.member("in").offset == 16
    assert btf.offset("outer", "in.b") == 24
    assert btf.offset("outer", "arr[1]") == 40


def test_kind_flag_bitfields_give_bit_size_and_offset():
    btf = Btf.parse(tiny())
    flags, mode = btf.struct("outer").member("flags"), btf.struct("outer").member("mode")
    assert (flags.offset, flags.bit_offset, flags.bit_size) == (8, 64, 3)
    assert (mode.offset, mode.bit_offset, mode.bit_size) == (8, 67, 5)


def test_typedef_const_volatile_chain_resolves_to_int():
    btf = Btf.parse(tiny())
    b = btf.member_path("outer", "in.b")
    assert [b.type.kind, b.type.ref.kind, b.type.ref.ref.kind] == ["volatile", "const", "typedef"]
    assert b.type.resolved().name == "unsigned int"
    assert btf.sizeof(b.type) == 4
    assert btf.sizeof("u32") == 4
    assert btf.struct("outer_t").name == "outer"


def test_anonymous_union_members_are_found_as_in_c():
    btf = Btf.parse(tiny())
    assert btf.struct("outer").member("y").offset == 48
    assert btf.offset("outer", "x") == 48
    assert btf.has_member("outer", "y") and not btf.has_member("outer", "z")


def test_arrays_pointers_and_enums():
    btf = Btf.parse(tiny())
    arr = btf.struct("outer").member("arr").type
    assert (arr.kind, arr.count, arr.element.name, btf.sizeof(arr)) == ("array", 2, "long unsigned int", 16)
    assert btf.sizeof(btf.struct("outer").member("next").type) == 8
    assert btf.find("color", ("enum",)).enumerators == {"RED": 0, "BLUE": -1}
    assert btf.find("big", ("enum64",)).enumerators == {"X": 1 << 40}


def test_missing_names_and_bad_blobs_raise_btf_error():
    btf = Btf.parse(tiny())
    with pytest.raises(BtfError, match="no member 'in.zz'"):
        btf.offset("outer", "in.zz")
    with pytest.raises(BtfError, match="no struct or union 'nope'"):
        btf.struct("nope")
    with pytest.raises(BtfError, match="magic"):
        Btf.parse(b"\0" * 32)
    with pytest.raises(BtfError, match="do not fit"):
        Btf.parse(tiny()[:-4])


def test_subset_round_trips_offsets_and_forwards_foreign_pointers():
    full = Btf.parse(tiny())
    sub = Btf.parse(full.encode_subset(["outer", "not_there"]))
    for path in ("next", "flags", "mode", "in", "in.b", "arr[1]", "x", "y"):
        a, b = full.member_path("outer", path), sub.member_path("outer", path)
        assert (a.offset, a.bit_offset, a.bit_size) == (b.offset, b.bit_offset, b.bit_size), path
    assert sub.sizeof("outer") == 56 and sub.sizeof("inner") == 16
    assert sub.struct("outer").member("next").type.ref.name == "outer"  # named type: kept
    y = sub.struct("outer").member("y").type.ref
    assert (y.kind, y.name) == ("fwd", "page")
    assert sub.find("f", ("func",)) is None
    assert sub.type_count < full.type_count


def _real_blob():
    """The kernel's own BTF from the first full x86-64 or arm64 dump in the cache."""
    from kmemdbg.kobjects import drgn_kallsyms
    from kmemdbg.session import open_core
    for d in all_dumps():
        if d.kind == "full" and not d.missing():
            session = open_core(d.path)
            symbol, _ = drgn_kallsyms(d.path)
            start, stop = symbol("__start_BTF"), symbol("__stop_BTF")
            if start is not None and stop is not None:
                return d.recipe, session.read(start, stop - start)
    return None, None


@pytest.mark.real
def test_kernel_blob_parses_fast_and_subset_keeps_offsets():
    recipe, blob = _real_blob()
    if blob is None:
        pytest.skip("no full dump with __start_BTF: run python3 vmcores/build.py x86_64-6.12-l4")
    t0 = time.perf_counter()
    btf = Btf.parse(blob)
    parse_s = time.perf_counter() - t0
    assert parse_s < 1.0, f"{recipe}: parsing {len(blob)} bytes of BTF took {parse_s:.3f} s"
    from kmemdbg.kobjects import SUBSET_TYPES
    sub = Btf.parse(btf.encode_subset(SUBSET_TYPES))
    assert len(sub._strings) + 4 * len(sub._words) < 64 << 10
    for struct_name, path in (("vmap_area", "va_start"), ("vmap_area", "list"), ("vmap_area", "vm"),
                              ("vm_struct", "caller"), ("vm_struct", "phys_addr"), ("module", "list"),
                              ("module", "name"), ("module", "kallsyms"), ("mod_kallsyms", "strtab")):
        assert sub.offset(struct_name, path) == btf.offset(struct_name, path)
    for name in ("vmap_area", "vm_struct", "module"):
        assert sub.sizeof(name) == btf.sizeof(name)
