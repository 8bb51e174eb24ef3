"""audit --json findings: the true physical address and the structured owner (issue 13).

Oracles: drgn's own page-table walker (``follow_phys``) on the same dump for
the frame of every finding's first byte; the guest's /proc/modules
(truth.json ``modules``) for the module a finding's owner names.
"""
from __future__ import annotations

import io
import json

import pytest

from kmemdbg.commands.execute import execute
from kmemdbg.commands.table import parse

from realdumps import all_dumps, open_dump

DUMPS = [d for d in all_dumps() if d.recipe in ("x86_64-6.12-l4", "arm64-6.12-lpa2")
         and (d.kind == "trimmed" or d.recipe == "x86_64-6.12-l4")]
#: Findings whose ``pa`` is the frame of their first byte ``start``.
AT_START = {("wx", "w+x"), ("virt-to-phys-misuse", "bogus-pa"), ("virt-to-phys-misuse", "bogus-page"),
            ("user-kernel", "user-accessible"), ("addresses", "mismatch"), ("addresses", "ok")}


@pytest.mark.parametrize("dump", DUMPS, ids=[d.id for d in DUMPS])
def test_findings_carry_the_frame_drgn_walks_to_and_a_structured_owner(dump):
    import _drgn
    import drgn

    k, prog = open_dump(dump)
    args, _ = parse("drgn", ["--json", "audit", "--rule", "wx", "--rule", "virt-to-phys-misuse"])
    out, err = io.StringIO(), io.StringIO()
    assert execute(args, lambda: k, out, err) in (0, 1), err.getvalue()
    findings = json.loads(out.getvalue())["results"]
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    modules = {m["name"] for m in dump.truth().get("modules") or []}
    checked = 0
    for f in findings:
        if (f["rule"], f["kind"]) not in AT_START or f["start"] is None:
            continue
        try:
            want = _drgn._linux_helper_follow_phys(prog, pgd, int(f["start"], 16))
        except drgn.FaultError:
            want = None
        if want is not None:
            assert f["pa"] == hex(want), f
            checked += 1
        owner = f["owner"]
        if owner is not None and owner["kind"] == "module":
            assert owner["module"] in modules and owner["text"], owner
    assert checked >= 3
