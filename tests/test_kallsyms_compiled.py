"""The compiled kallsyms_names expansion gives exactly what the Python decoder gives, or defers to it.

Oracle: :meth:`kmemdbg.kallsyms.Kallsyms._names`, the Python decoder that
``tests/test_sources.py`` checks against drgn's own kallsyms loader on every
dump.  Compared on every real-kernel dump (the whole symbol table: names, type
letters, addresses) and on seeded garbage tables: random tokens, one- and
two-byte lengths, empty records, records that expand to nothing, tables that
end early, counts that run past the last readable page.  Where the compiled
expansion gives None (the table does not fit the piece it read), the Python
decoder must be what answers.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmemdbg import kallsyms
from kmemdbg.errors import KmemdbgError
from kmemdbg.kallsyms import Kallsyms, KallsymsError

from realdumps import all_dumps, kernel_of

pytestmark = pytest.mark.skipif(kallsyms._kallsymsc is None, reason="kmemdbg._kallsymsc is not built here")

DUMPS = all_dumps()


def decode_both(monkeypatch, info, read):
    """(compiled, pure): the Kallsyms each path builds, or the error line each raises."""
    out = []
    for compiled in (True, False):
        monkeypatch.setattr(kallsyms, "COMPILED", compiled)
        try:
            out.append(Kallsyms(info, read))
        except KmemdbgError as err:
            out.append(("error", str(err)))
    return out


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_real_kernels_compiled_expansion_matches_the_python_decoder(monkeypatch, dump):
    k = kernel_of(dump)
    fast, pure = decode_both(monkeypatch, k.info, k.read)
    assert not isinstance(pure, tuple), pure
    assert (fast.names, fast.types, fast.addresses) == (pure.names, pure.types, pure.addresses)
    if dump.kind == "full":           # a whole dump holds the table in one piece: C must have answered
        info = k.info
        tokens = Kallsyms._tokens(k.read, info.symbol("kallsyms_token_table"), info.symbol("kallsyms_token_index"))
        count = len(pure.names)
        assert kallsyms._expand_compiled(info, k.read, info.symbol("kallsyms_names"), count, tokens) is not None


class Blob:
    """Whole pages at virtual NAMES_VA and nothing else readable (as a slice past its last page)."""

    NAMES_VA = 0xFFFF_FFFF_8100_0000

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, va: int, size: int) -> bytes:
        off = va - self.NAMES_VA
        if off < 0 or off + size > len(self.data):
            raise KmemdbgError(f"0x{va:x}: {size} bytes not in the blob")
        return self.data[off:off + size]


def record(n: int, body: bytes) -> bytes:
    head = bytes([n]) if n < 0x80 else bytes([0x80 | (n & 0x7F), n >> 7])
    return head + body


@st.composite
def tables(draw):
    tokens = [draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=4)) for _ in range(256)]
    recs = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["plain", "plain", "plain", "wide", "empty"]))
        if kind == "empty":
            recs.append(b"\0")
            continue
        n = draw(st.integers(1, 12)) if kind == "plain" else draw(st.integers(0x80, 0x120))
        recs.append(record(n, bytes(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)))))
    data = b"".join(recs)
    data = data[:draw(st.one_of(st.just(len(data)), st.integers(0, len(data))))]
    # what follows the records up to the page's end (a source reads whole pages): zeros,
    # or one repeated byte, which reads as more records
    data += bytes([draw(st.sampled_from([0, 1, 0x81, 0xFF]))]) * (-len(data) % 4096)
    count = draw(st.one_of(st.just(len(recs)), st.integers(1, len(recs) + 3), st.integers(1, 5000)))
    return tokens, data, count


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_garbage_tables_expand_alike_or_defer(table):
    tokens, data, count = table
    blob = Blob(data)
    try:
        got = kallsyms._kallsymsc.expand(data, count, [t.encode("latin-1") for t in tokens])
    except ValueError as err:
        got = ("error", str(err))
    try:
        pure = Kallsyms._names(blob.read, Blob.NAMES_VA, count, tokens)
        pure = (pure[0], "".join(pure[1]))
    except KallsymsError as err:
        pure = ("error", str(err))
    except KmemdbgError as err:         # read past the table's end
        pure = ("read error", str(err))
    if got is None:
        # the table ends before record ``count``: the Python decoder, reading on, fails to read
        assert pure[0] == "read error", pure
    else:
        assert got == pure
