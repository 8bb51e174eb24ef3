"""BTF (BPF Type Format): the kernel's own compact type information.

Debian kernels carry their BTF inside the image, between the symbols
``__start_BTF`` and ``__stop_BTF``.  With it, kmemdbg knows the layout of
``struct vmap_area``, ``struct module`` and friends on a dump that has no
DWARF debug info.

Format facts used here (``include/uapi/linux/btf.h``): a header (``u16``
magic 0xeB9F, ``u8`` version 1, ``u8`` flags, ``u32`` hdr_len, then
``u32`` type_off, type_len, str_off, str_len, offsets counted from the end
of the header), a type section of ``struct btf_type`` records (``u32``
name_off, ``u32`` info with vlen in bits 0-15, kind in bits 24-28 and
kind_flag in bit 31, ``u32`` size-or-type) each followed by kind-specific
data, and a string section of NUL-terminated names.  Type id 0 is ``void``;
the first record is id 1.

Parsing is one pass that only records where each record starts; a type is
decoded the first time it is asked for.  All sizes are in bytes, all member
offsets in bytes from the start of the enclosing struct (bit offsets are
given separately for bitfields).
"""
from __future__ import annotations

import re
import struct
import sys
from array import array
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import KmemdbgError

BTF_MAGIC = 0xEB9F
HEADER = struct.Struct("<HBBIIIII")

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)

KIND_NAMES = {INT: "int", PTR: "ptr", ARRAY: "array", STRUCT: "struct", UNION: "union",
              ENUM: "enum", FWD: "fwd", TYPEDEF: "typedef", VOLATILE: "volatile",
              CONST: "const", RESTRICT: "restrict", FUNC: "func", FUNC_PROTO: "func_proto",
              VAR: "var", DATASEC: "datasec", FLOAT: "float", DECL_TAG: "decl_tag",
              TYPE_TAG: "type_tag", ENUM64: "enum64"}

# Extra u32 words after the 3-word record: (fixed, per vlen entry).
_EXTRA = {INT: (1, 0), PTR: (0, 0), ARRAY: (3, 0), STRUCT: (0, 3), UNION: (0, 3),
          ENUM: (0, 2), FWD: (0, 0), TYPEDEF: (0, 0), VOLATILE: (0, 0), CONST: (0, 0),
          RESTRICT: (0, 0), FUNC: (0, 0), FUNC_PROTO: (0, 2), VAR: (1, 0), DATASEC: (0, 3),
          FLOAT: (0, 0), DECL_TAG: (1, 0), TYPE_TAG: (0, 0), ENUM64: (0, 3)}
_KIND_CODES = {v: k for k, v in KIND_NAMES.items()}
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
_NAMED_KINDS = (INT, STRUCT, UNION, ENUM, FWD, TYPEDEF, FLOAT, ENUM64)
POINTER_SIZE = 8  # kmemdbg reads 64-bit kernels only
#: Debian 6.12's vmlinux BTF is about 6 MiB; a blob claiming more than this is corrupt.
MAX_BTF_BYTES = 1 << 26


class BtfError(KmemdbgError):
    """The BTF blob is malformed, or a type, member or path is not in it."""


class BtfType:
    """One decoded BTF type.

    ``kind`` is a name from :data:`KIND_NAMES`; ``size`` is the size in bytes
    for int, struct, union, enum and float (None otherwise, see
    :meth:`Btf.sizeof`); ``ref_id`` is the type referred to by ptr,
    typedef, const, volatile, restrict, type_tag, func and var; for arrays
    ``ref_id`` is the element type and ``count`` the number of elements.
    """

    __slots__ = ("btf", "type_id", "kind", "name", "size", "ref_id", "count", "kind_flag",
                 "vlen", "_members", "_enum")

    def __init__(self, btf: "Btf", type_id: int, kind: str, name: str, size: Optional[int],
                 ref_id: int, count: int, kind_flag: bool, vlen: int) -> None:
        self.btf = btf
        self.type_id = type_id
        self.kind = kind
        self.name = name
        self.size = size
        self.ref_id = ref_id
        self.count = count
        self.kind_flag = kind_flag
        self.vlen = vlen
        self._members: Optional[Tuple["Member", ...]] = None
        self._enum: Optional[Dict[str, int]] = None

    def __repr__(self) -> str:
        return f"<BtfType #{self.type_id} {self.kind} {self.name or '(anon)'}>"

    @property
    def ref(self) -> "BtfType":
        """The referred-to type (``void`` is a type of kind ``"void"``)."""
        return self.btf.type(self.ref_id)

    def resolved(self) -> "BtfType":
        """This type with typedef, const, volatile, restrict and type_tag stripped."""
        return self.btf.resolve(self)

    @property
    def element(self) -> "BtfType":
        """The element type of an array."""
        if self.kind != "array":
            raise BtfError(f"{self.describe()} is not an array")
        return self.ref

    @property
    def members(self) -> Tuple["Member", ...]:
        """The members of a struct or union, in declaration order (decoded once)."""
        if self._members is None:
            self._members = self.btf._decode_members(self)
        return self._members

    @property
    def enumerators(self) -> Dict[str, int]:
        """Name to value of an enum or enum64."""
        if self._enum is None:
            self._enum = self.btf._decode_enum(self)
        return self._enum

    def member(self, name: str) -> "Member":
        """The member called ``name``, looking inside anonymous structs and unions as C does.

        The offset returned is from the start of this type.  Raises BtfError.
        """
        found = self._find_member(name)
        if found is None:
            raise BtfError(f"{self.describe()} has no member {name!r}")
        return found

    def has_member(self, name: str) -> bool:
        return self._find_member(name) is not None

    def _find_member(self, name: str) -> Optional["Member"]:
        if self.kind not in ("struct", "union"):
            inner = self.resolved()
            if inner is self:
                raise BtfError(f"{self.describe()} is not a struct or union")
            return inner._find_member(name)
        for m in self.members:
            if m.name == name:
                return m
        for m in self.members:
            if m.name == "":
                t = m.type.resolved()
                if t.kind in ("struct", "union"):
                    inner = t._find_member(name)
                    if inner is not None:
                        return Member(inner.name, inner.type, m.offset + inner.offset,
                                      m.bit_offset + inner.bit_offset, inner.bit_size)
        return None

    def describe(self) -> str:
        if self.kind in ("struct", "union", "enum", "fwd"):
            return f"{self.kind} {self.name or '(anonymous)'}"
        return self.name or self.kind


class Member:
    """A struct or union member: ``offset`` in bytes, ``bit_offset`` in bits (both from
    the start of the enclosing type), ``bit_size`` the bitfield width in bits (0 when
    the member is not a bitfield)."""

    __slots__ = ("name", "type", "offset", "bit_offset", "bit_size")

    def __init__(self, name: str, type: BtfType, offset: int, bit_offset: int, bit_size: int) -> None:
        self.name = name
        self.type = type
        self.offset = offset
        self.bit_offset = bit_offset
        self.bit_size = bit_size

    @property
    def offset_bytes(self) -> int:
        return self.offset

    def __repr__(self) -> str:
        bits = f":{self.bit_size}@bit{self.bit_offset}" if self.bit_size else ""
        return f"<Member {self.name} +{self.offset}{bits} {self.type!r}>"


StructType = BtfType  # a BtfType of kind struct or union

_PATH = re.compile(r"\.?([A-Za-z_][A-Za-z_0-9]*)|\[(\d+)\]")


class Btf:
    """A parsed BTF blob.  Build with :meth:`parse`; types are decoded on demand."""

    def __init__(self, words: "array[int]", strings: bytes, offsets: List[int],
                 names: Dict[int, List[int]]) -> None:
        self._words = words
        self._strings = strings
        self._offsets = offsets      # word index of record for type id i (index 0 unused)
        self._by_name_off = names    # name_off -> type ids with that name (named kinds only)
        self._types: Dict[int, BtfType] = {}
        self._void = BtfType(self, 0, "void", "", None, 0, 0, False, 0)
        self._name_cache: Dict[Tuple[str, Tuple[str, ...]], Optional[BtfType]] = {}

    # --- parsing -----------------------------------------------------------------
    @classmethod
    def parse(cls, blob: bytes) -> "Btf":
        """Index ``blob`` (raw ``.BTF`` bytes).  Raises BtfError when it is not BTF."""
        if len(blob) < HEADER.size:
            raise BtfError(f"BTF blob is only {len(blob)} bytes")
        if len(blob) > MAX_BTF_BYTES:
            raise BtfError(f"BTF blob of {len(blob)} bytes is larger than the {MAX_BTF_BYTES} a kernel has")
        magic = int.from_bytes(blob[:2], "little")
        swap = magic != BTF_MAGIC
        if swap and int.from_bytes(blob[:2], "big") != BTF_MAGIC:
            raise BtfError(f"not BTF: magic 0x{magic:04x}, expected 0x{BTF_MAGIC:04x}")
        fmt = ">" if swap else "<"
        _m, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            fmt + "HBBIIIII", blob, 0)
        if version != 1:
            raise BtfError(f"BTF version {version} is not supported (only 1)")
        if hdr_len < HEADER.size or hdr_len > len(blob) or type_off % 4:
            raise BtfError(f"BTF header: hdr_len {hdr_len}, type_off {type_off}: not a BTF header")
        t0, s0 = hdr_len + type_off, hdr_len + str_off
        if t0 + type_len > len(blob) or s0 + str_len > len(blob) or type_len % 4:
            raise BtfError(f"BTF sections (types {type_len} bytes at {t0}, strings {str_len} "
                           f"bytes at {s0}) do not fit in a {len(blob)}-byte blob")
        words = array("I")
        words.frombytes(bytes(blob[t0:t0 + type_len]))
        if swap != (sys.byteorder == "big"):
            words.byteswap()
        strings = bytes(blob[s0:s0 + str_len])
        offsets = [0]
        names: Dict[int, List[int]] = {}
        extra = [(0, 0)] * 32
        for k, v in _EXTRA.items():
            extra[k] = v
        named = set(_NAMED_KINDS)
        n = len(words)
        i = 0
        tid = 1
        append = offsets.append
        while i < n:
            if i + 3 > n:
                raise BtfError(f"BTF type #{tid} is truncated")
            info = words[i + 1]
            kind = (info >> 24) & 0x1F
            if kind == 0 or kind > ENUM64:
                raise BtfError(f"BTF type #{tid} has unknown kind {kind}")
            append(i)
            if kind in named:
                off = words[i]
                if off:
                    lst = names.get(off)
                    if lst is None:
                        names[off] = [tid]
                    else:
                        lst.append(tid)
            fixed, per = extra[kind]
            i += 3 + fixed + per * (info & 0xFFFF)
            tid += 1
        if i != n:
            raise BtfError("BTF type section ends inside a record")
        return cls(words, strings, offsets, names)

    # --- decoding ----------------------------------------------------------------
    @property
    def type_count(self) -> int:
        """Number of types, not counting ``void``."""
        return len(self._offsets) - 1

    def _string(self, off: int) -> str:
        if off >= len(self._strings):
            raise BtfError(f"BTF string offset {off} is beyond the {len(self._strings)}-byte string section")
        end = self._strings.find(b"\0", off)
        return self._strings[off:end if end >= 0 else len(self._strings)].decode("utf-8", "replace")

    def type(self, type_id: int) -> BtfType:
        """The type with id ``type_id`` (0 is ``void``).  Raises BtfError for an unknown id."""
        if type_id == 0:
            return self._void
        t = self._types.get(type_id)
        if t is not None:
            return t
        if not 0 < type_id < len(self._offsets):
            raise BtfError(f"BTF has no type #{type_id} (it has {self.type_count})")
        w = self._words
        i = self._offsets[type_id]
        name_off, info, size_or_type = w[i], w[i + 1], w[i + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        size: Optional[int] = None
        ref, count = 0, 0
        if kind in (INT, STRUCT, UNION, ENUM, FLOAT, ENUM64, DATASEC):
            size = size_or_type
        elif kind == ARRAY:
            ref, count = w[i + 3], w[i + 5]
        elif kind != FWD:
            ref = size_or_type
        t = BtfType(self, type_id, KIND_NAMES[kind], self._string(name_off) if name_off else "",
                    size, ref, count, kflag, vlen)
        self._types[type_id] = t
        return t

    def _decode_members(self, t: BtfType) -> Tuple[Member, ...]:
        if t.kind not in ("struct", "union"):
            raise BtfError(f"{t.describe()} is not a struct or union")
        w = self._words
        i = self._offsets[t.type_id] + 3
        out = []
        for k in range(t.vlen):
            name_off, type_id, off = w[i + 3 * k], w[i + 3 * k + 1], w[i + 3 * k + 2]
            if t.kind_flag:
                bit_size, bit_off = off >> 24, off & 0xFFFFFF
            else:
                bit_size, bit_off = 0, off
            out.append(Member(self._string(name_off) if name_off else "", self.type(type_id),
                              bit_off // 8, bit_off, bit_size))
        return tuple(out)

    def _decode_enum(self, t: BtfType) -> Dict[str, int]:
        w = self._words
        i = self._offsets[t.type_id] + 3
        out: Dict[str, int] = {}
        if t.kind == "enum":
            for k in range(t.vlen):
                v = w[i + 2 * k + 1]
                if t.kind_flag and v >= 1 << 31:  # kind_flag set: signed values
                    v -= 1 << 32
                out[self._string(w[i + 2 * k])] = v
        elif t.kind == "enum64":
            for k in range(t.vlen):
                v = w[i + 3 * k + 1] | (w[i + 3 * k + 2] << 32)
                if t.kind_flag and v >= 1 << 63:
                    v -= 1 << 64
                out[self._string(w[i + 3 * k])] = v
        else:
            raise BtfError(f"{t.describe()} is not an enum")
        return out

    def datasec_vars(self, section: str) -> Tuple[Tuple[int, int, str, BtfType], ...]:
        """(offset, size in bytes, variable name, its type) of each VAR in DATASEC ``section``
        (e.g. ``.data..percpu``), sorted by offset; () when the section is absent."""
        cached = self.__dict__.setdefault("_datasecs", {})
        if section in cached:
            return cached[section]
        out = []
        for type_id in range(1, len(self._offsets)):
            t = self.type(type_id)
            if t.kind != "datasec" or t.name != section:
                continue
            w = self._words
            i = self._offsets[type_id] + 3
            for k in range(t.vlen):
                var = self.type(w[i + 3 * k])
                out.append((w[i + 3 * k + 1], w[i + 3 * k + 2], var.name, var.ref))
            break
        cached[section] = tuple(sorted(out, key=lambda v: v[0]))
        return cached[section]

    # --- lookups -----------------------------------------------------------------
    def find(self, name: str, kinds: Sequence[str] = ("struct", "union", "typedef", "enum",
                                                      "enum64", "int", "float")) -> Optional[BtfType]:
        """The first type called ``name`` whose kind is in ``kinds`` (in that order of preference)."""
        key = (name, tuple(kinds))
        if key in self._name_cache:
            return self._name_cache[key]
        ids: List[int] = []
        needle = b"\0" + name.encode() + b"\0"
        pos = self._strings.find(needle)
        while pos >= 0:
            ids += self._by_name_off.get(pos + 1, ())
            pos = self._strings.find(needle, pos + 1)
        found = None
        if ids:
            types = [self.type(i) for i in sorted(ids)]
            for kind in kinds:
                match = [t for t in types if t.kind == kind]
                if match:
                    found = match[0]
                    break
        self._name_cache[key] = found
        return found

    def struct(self, name: str) -> BtfType:
        """The struct or union ``name`` (a typedef naming one is followed).  Raises BtfError."""
        t = self.find(name, ("struct", "union", "typedef"))
        if t is not None:
            t = t.resolved()
        if t is None or t.kind not in ("struct", "union"):
            raise BtfError(f"BTF has no struct or union {name!r}")
        return t

    def has_struct(self, name: str) -> bool:
        try:
            self.struct(name)
        except BtfError:
            return False
        return True

    def resolve(self, t: BtfType) -> BtfType:
        """``t`` with typedef, const, volatile, restrict and type_tag layers removed."""
        for _ in range(64):
            if t.kind not in ("typedef", "const", "volatile", "restrict", "type_tag"):
                return t
            t = t.ref
        raise BtfError(f"BTF type #{t.type_id}: typedef/qualifier chain longer than 64")

    def sizeof(self, what: "str | BtfType") -> int:
        """Size in bytes of a named struct/union/typedef/int or of a type.  Raises BtfError."""
        t = what if isinstance(what, BtfType) else self.find(what)
        if t is None:
            raise BtfError(f"BTF has no type {what!r}")
        for _ in range(64):
            t = self.resolve(t)
            if t.kind == "ptr":
                return POINTER_SIZE
            if t.kind == "array":
                return t.count * self.sizeof(t.ref)
            if t.size is not None:
                return t.size
            raise BtfError(f"{t.describe()} has no size")
        raise BtfError("type too deep")  # pragma: no cover

    def member_path(self, struct_name: "str | BtfType", path: str) -> Member:
        """Resolve ``path`` like ``"busy.root"`` or ``"mem[3].size"`` within a struct.

        Returns a Member whose offsets are from the start of the outer struct.
        Raises BtfError naming the first component that does not exist.
        """
        t = self.struct(struct_name) if isinstance(struct_name, str) else struct_name
        outer = t.describe()
        offset = bit = 0
        m: Optional[Member] = None
        pos = 0
        for match in _PATH.finditer(path):
            if match.start() != pos:
                raise BtfError(f"bad member path {path!r}")
            pos = match.end()
            name, index = match.group(1), match.group(2)
            cur = self.resolve(t)
            if name is not None:
                if cur.kind not in ("struct", "union") or not cur.has_member(name):
                    raise BtfError(f"{outer} has no member {path[:pos]!r}")
                m = cur.member(name)
                offset += m.offset
                bit += m.bit_offset
                t = m.type
            else:
                if cur.kind != "array":
                    raise BtfError(f"{outer}: {path[:match.start()]!r} is not an array")
                k = int(index)
                esize = self.sizeof(cur.ref)
                offset += k * esize
                bit += 8 * k * esize
                t = cur.ref
                m = Member(path[:pos], t, offset, bit, 0)
        if m is None or pos != len(path):
            raise BtfError(f"bad member path {path!r}")
        return Member(m.name, t, offset, bit, m.bit_size)

    def offset(self, struct_name: "str | BtfType", path: str) -> int:
        """Byte offset of ``path`` within ``struct_name``.  Raises BtfError."""
        return self.member_path(struct_name, path).offset

    def has_member(self, struct_name: str, path: str) -> bool:
        """Whether ``struct_name`` exists and has member ``path``."""
        try:
            self.member_path(struct_name, path)
        except BtfError:
            return False
        return True

    # --- subset encoder ----------------------------------------------------------
    def encode_subset(self, names: Iterable[str]) -> bytes:
        """A minimal valid BTF blob holding the named types and what their layout needs.

        Each name is looked up as a struct, union, enum or typedef (names not
        in this BTF are skipped).  Members keep their types by value (ints,
        enums, arrays, nested structs and unions, typedef chains), so every
        offset and size is the same as here.  A pointer keeps its target when
        that is one of the named types, an int, float or enum; a pointer to
        another struct or union becomes a pointer to a FWD of the same name,
        and any other pointer a pointer to ``void``.
        """
        return _SubsetEncoder(self, names).encode()


class _SubsetEncoder:
    def __init__(self, btf: Btf, names: Iterable[str]) -> None:
        self.btf = btf
        self.roots: Dict[int, BtfType] = {}
        for name in names:
            t = btf.find(name, ("struct", "union", "enum", "enum64", "typedef"))
            if t is not None:
                self.roots[t.type_id] = t
        self.root_ids = {t.resolved().type_id for t in self.roots.values()}
        self.records: List[List[int]] = []   # u32 words per new type
        self.new_id: Dict[int, int] = {}
        self.fwd_id: Dict[Tuple[str, bool], int] = {}
        self.strs = bytearray(b"\0")
        self.str_off: Dict[str, int] = {"": 0}

    def s(self, text: str) -> int:
        off = self.str_off.get(text)
        if off is None:
            off = self.str_off[text] = len(self.strs)
            self.strs += text.encode() + b"\0"
        return off

    def alloc(self) -> int:
        self.records.append([])
        return len(self.records)

    def info(self, kind: int, vlen: int = 0, kflag: bool = False) -> int:
        return (int(kflag) << 31) | (kind << 24) | vlen

    def keep(self, t: BtfType) -> int:
        if t.type_id == 0:
            return 0
        got = self.new_id.get(t.type_id)
        if got is not None:
            return got
        nid = self.new_id[t.type_id] = self.alloc()
        kind = _KIND_CODES[t.kind]
        w = self.btf._words
        i = self.btf._offsets[t.type_id]
        if kind in (INT, FLOAT, ENUM, ENUM64):
            fixed, per = _EXTRA[kind]
            rec = [self.s(t.name), w[i + 1], w[i + 2]] + list(w[i + 3:i + 3 + fixed])
            if kind in (ENUM, ENUM64):
                for k in range(t.vlen):
                    ent = list(w[i + 3 + per * k:i + 3 + per * (k + 1)])
                    ent[0] = self.s(self.btf._string(ent[0]))
                    rec += ent
        elif kind in _MODIFIERS:
            rec = [self.s(t.name), self.info(kind), self.keep(t.ref)]
        elif kind == PTR:
            rec = [0, self.info(PTR), self.pointee(t.ref)]
        elif kind == ARRAY:
            rec = [0, self.info(ARRAY), 0, self.keep(t.ref), self.keep(self.btf.type(w[i + 4])), t.count]
        elif kind in (STRUCT, UNION):
            rec = [self.s(t.name), w[i + 1], t.size or 0]
            for k in range(t.vlen):
                name_off, type_id, off = w[i + 3 + 3 * k:i + 6 + 3 * k]
                rec += [self.s(self.btf._string(name_off)) if name_off else 0,
                        self.keep(self.btf.type(type_id)), off]
        elif kind == FWD:
            rec = [self.s(t.name), w[i + 1], 0]
        else:
            # functions, vars and sections are not member types; keep nothing of them
            raise BtfError(f"cannot keep {t.kind} {t.name!r} by value in a BTF subset")
        self.records[nid - 1] = rec
        return nid

    def pointee(self, t: BtfType) -> int:
        base = t.resolved()
        if base.kind in ("struct", "union", "fwd"):
            if base.type_id in self.root_ids:
                return self.keep(t)
            if not base.name:
                return 0
            is_union = base.kind == "union" or (base.kind == "fwd" and base.kind_flag)
            key = (base.name, is_union)
            if key not in self.fwd_id:
                nid = self.alloc()
                self.records[nid - 1] = [self.s(base.name), self.info(FWD, 0, is_union), 0]
                self.fwd_id[key] = nid
            return self.fwd_id[key]
        if base.kind in ("int", "float", "enum", "enum64"):
            return self.keep(t)
        if base.kind == "ptr":
            nid = self.alloc()
            self.records[nid - 1] = [0, self.info(PTR), self.pointee(base.ref)]
            return nid
        return 0

    def encode(self) -> bytes:
        for t in self.roots.values():
            self.keep(t)
        words = array("I", [x for rec in self.records for x in rec])
        if sys.byteorder == "big":
            words.byteswap()
        types = words.tobytes()
        strs = bytes(self.strs)
        return HEADER.pack(BTF_MAGIC, 1, 0, HEADER.size, 0, len(types), len(types), len(strs)) + types + strs


__all__ = ["Btf", "BtfType", "Member", "StructType", "BtfError", "KIND_NAMES", "BTF_MAGIC"]
