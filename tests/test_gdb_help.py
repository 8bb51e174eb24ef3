"""kmemdbg's gdb command: its help, audit, and a core file opened in gdb (issue 13).

Oracles: gdb's own output (``help kmemdbg`` and the command's error as gdb
prints them, with the script loaded into a real gdb), the table of commands
for the names gdb should list, and, for ``audit`` over a fake gdbstub on a
real slice (``test_gdb_source.FakeLink``), the command line's audit of the
same slice: the page-table rules must find the same ranges.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from realdumps import FIXTURES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICE = os.path.join(FIXTURES, "x86_64-6.12-l4", "vmcore.slice")


def gdb_binary():
    for name in ("gdb-multiarch", "gdb"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no gdb installed")


def in_gdb(*commands, core=None, timeout=180):
    from kmemdbg.gdb import SCRIPT

    argv = [gdb_binary(), "-nx", "-batch"] + (["-c", core] if core else [])
    argv += ["-ex", f"source {SCRIPT}"]
    for c in commands:
        argv += ["-ex", c]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def _gdb_imports_kmemdbg():
    rc, out, err = in_gdb("python print('KMEMDBG-LOADED', 'kmemdbg' in gdb.execute('help user-defined', "
                          "to_string=True) or True)")
    if "Traceback" in err or "KMEMDBG-LOADED" not in out:
        pytest.skip(f"gdb's Python cannot load kmemdbg: {err.strip().splitlines()[-1:] or out}")


def test_help_kmemdbg_lists_every_command_gdb_offers():
    from kmemdbg.commands.table import GDB, offered

    _gdb_imports_kmemdbg()
    rc, out, err = in_gdb("help kmemdbg")
    assert rc == 0 and "Traceback" not in err, err
    names = [c.name for c in offered(GDB)]
    assert "audit" in names
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()]
    assert listed == names
    assert out.splitlines()[0].startswith("kmemdbg [--json] COMMAND ARGS")
    assert all(len(line) <= 80 for line in out.splitlines())


def test_help_data_shows_kmemdbg_on_one_line():
    _gdb_imports_kmemdbg()
    rc, out, err = in_gdb("help data")
    line = [x for x in out.splitlines() if x.startswith("kmemdbg -- ")]
    assert len(line) == 1 and len(line[0]) <= 80, out


def test_a_command_help_in_gdb_has_no_kernel_options():
    _gdb_imports_kmemdbg()
    rc, out, err = in_gdb("kmemdbg vtop --help")
    assert "usage: kmemdbg vtop" in out and "examples:" in out and "legend:" in out, out + err
    assert "--core" not in out and "--qmp" not in out


def test_a_core_file_in_gdb_points_at_the_command_line_and_drgn():
    _gdb_imports_kmemdbg()
    rc, out, err = in_gdb("kmemdbg vtop 0", "kmemdbg audit", core=SLICE)
    lines = [x for x in err.splitlines() if x.startswith("kmemdbg: ")]
    assert len(lines) == 2, out + err
    for line in lines:
        assert "core file" in line and SLICE in line and "kmemdbg --core" in line and "drgn" in line
        assert "not connected" not in line


def test_no_target_at_all_still_says_not_connected():
    _gdb_imports_kmemdbg()
    rc, out, err = in_gdb("kmemdbg audit")
    assert "not connected" in err and "core file" not in err, err


def _findings(items):
    return sorted((f["rule"], f["kind"], f["start"], f["end"]) for f in items
                  if f["rule"] in ("wx", "user-kernel"))


@pytest.mark.real
def test_audit_over_the_gdbstub_finds_what_the_command_line_finds():
    import io
    from contextlib import redirect_stdout

    from kmemdbg import cli
    from kmemdbg.commands.gdb import LiveTarget, run
    from test_gdb_source import _x86_link

    link, path, truth = _x86_link()
    rules = ["--rule", "wx", "--rule", "user-kernel"]
    status, text = run(LiveTarget(link), ["audit", "--json"] + rules)
    assert status in (0, 1), text
    got = json.loads(text)
    out = io.StringIO()
    with redirect_stdout(out):
        want_status = cli.main(["--core", path, "--json", "audit"] + rules)
    want = json.loads(out.getvalue())
    assert status == want_status
    got_items = got["results"] if isinstance(got, dict) else got
    want_items = want["results"] if isinstance(want, dict) else want
    assert _findings(got_items) == _findings(want_items)
    assert link.virtual_reads == 0 and link.mode == "0"
