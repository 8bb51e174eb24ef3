"""The ptdump and audit commands on a committed slice; the progress bar.

Oracle: the probe's planted value in the slice's module data (truth.json
``probe``) and the command-line contract (exit status 0/1/2, JSON shapes).
"""
from __future__ import annotations

import io
import json
import os

import pytest

from kmemdbg import cli
from kmemdbg.progress import ProgressBar
from realdumps import FIXTURES, fixture_truth

SLICE = FIXTURES + "/x86_64-6.12-l4/vmcore.slice"


def test_audit_jsonl_reports_the_planted_global_and_exits_1(capsys):
    probe = {p["name"]: p for p in fixture_truth("x86_64-6.12-l4").get("probe") or []}
    if not probe:
        pytest.skip("the x86_64-6.12-l4 fixture has no probe report yet")
    status = cli.main(["--core", SLICE, "audit", "--rule", "virt-to-phys-misuse", "--jsonl", "--fail-on", "high"])
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert status == 1
    hits = [f for f in lines if f["start"] == probe["bogus_global"]["va"]]
    assert hits and hits[0]["severity"] == "high" and "kmemdbg_probe" in hits[0]["owner"]["text"]
    assert set(hits[0]) == {"schema", "rule", "severity", "kind", "start", "end", "pa", "owner", "explanation",
                            "evidence"}


def _truth():
    with open(os.path.join(os.path.dirname(SLICE), "truth.json")) as f:
        return json.load(f)


def test_audit_clean_rule_exits_0_and_ptdump_json_keeps_the_contract(capsys):
    # text-rw finds nothing on this kernel; wx finds the probe's planted page: status 1
    assert cli.main(["--core", SLICE, "audit", "--rule", "text-rw"]) == 0
    capsys.readouterr()
    assert cli.main(["--core", SLICE, "audit", "--rule", "wx"]) == 1
    wx_va = next(p["va"] for p in _truth()["probe"] if p["name"] == "wx_page")
    assert f"0x{int(wx_va, 16):016x}" in capsys.readouterr().out
    assert cli.main(["--core", SLICE, "--json", "ptdump", "--start", "ffffffffc0000000",
                     "--end", "ffffffffff000000"]) == 0
    ranges = json.loads(capsys.readouterr().out)["results"]
    assert ranges and all({"start", "end", "pa", "page_size", "level", "flags", "region", "owner"} <= set(r)
                          for r in ranges)
    assert all(r["region"]["kind"] == "module" for r in ranges)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_only_on_a_terminal():
    quiet = io.StringIO()
    ProgressBar(quiet)("page tables", 1, 2)
    assert quiet.getvalue() == ""
    tty = _Tty()
    bar = ProgressBar(tty, interval=0)
    bar("page tables", 1, 4)
    assert "25%" in tty.getvalue() and "ETA" in tty.getvalue() and "/s" in tty.getvalue()
    ProgressBar(_Tty(), enabled=False)("x", 1, 2)
    line = bar.line("rule wx", 3, 4, 1.5)
    assert "75%" in line and "2.0/s" in line
