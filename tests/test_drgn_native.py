"""kmemdbg inside drgn as drgn's own commands (issue 13).

Each test runs a fresh Python that opens the dump with drgn
(``drgn.program_from_core_dump``) and lets drgn load the plugin through
its ``drgn.plugins`` entry point, as a drgn session does.  Oracles:
drgn's own reads (``prog.read`` of the va against ``prog.read(pa,
physical=True)``), drgn's command API (``run_command``, its
``CommandArgumentError``), the guest's kallsyms in truth.json, and the
table of commands for the names drgn should offer.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from realdumps import FIXTURES

pytest.importorskip("drgn.commands")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = ("x86_64-6.12-l4", "arm64-6.12-lpa2")


def slice_of(recipe):
    path = os.path.join(FIXTURES, recipe, "vmcore.slice")
    if not os.path.exists(path):
        pytest.skip(f"no slice for {recipe}")
    with open(os.path.join(FIXTURES, recipe, "truth.json")) as f:
        return path, json.load(f)


def in_drgn(core, body, timeout=240):
    """Run ``body`` (Python; ``prog`` is the dump, ``run_command`` drgn's) in a fresh process."""
    code = ("import sys, json, drgn\nfrom drgn.commands import run_command, CommandArgumentError\n"
            f"prog = drgn.program_from_core_dump({core!r})\n" + textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if k != "DRGN_DISABLE_PLUGINS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("recipe", RECIPES)
def test_run_command_returns_the_typed_result_drgn_reads_agree_with(recipe):
    core, truth = slice_of(recipe)
    va = int(truth["kallsyms"]["_edata"]["address"], 16) - 0x40
    rc, out, err = in_drgn(core, f"""
        r = run_command(prog, "kmemdbg --json vtop _edata-0x40")
        w = r.translations[0].walk
        print("RESULT", type(r).__name__, hex(w.va), hex(w.pa))
        print("SAME", prog.read(w.va, 16) == prog.read(w.pa, 16, True))
    """)
    assert rc == 0, err
    lines = out.splitlines()
    assert f"RESULT VtopResult {hex(va)}" in "\n".join(lines)
    assert "SAME True" in lines
    doc = json.loads(out[:out.index("RESULT")])      # the command printed its JSON as well
    items = doc["results"] if isinstance(doc, dict) else doc
    assert int(items[0]["va"], 16) == va


def test_the_python_call_returns_the_result_and_prints_nothing():
    core, truth = slice_of("x86_64-6.12-l4")
    rc, out, err = in_drgn(core, """
        from kmemdbg.commands.drgn_plugin import run, CommandFailed
        import io, contextlib
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            r = run(prog, "check _edata")
            r2 = run(prog, "kmemdbg classify _edata")
        try:
            run(prog, "vtop --core x 1")
        except CommandFailed as e:
            bad = e.status
        print(type(r).__name__, r.checks[0].verdict, type(r2).__name__, repr(buf.getvalue()), bad)
    """)
    assert rc == 0, err
    assert out.split() == ["CheckResult", "ok", "ClassifyResult", "''", "2"]


def test_subcommand_help_is_drgns_help_of_that_command():
    core, _ = slice_of("x86_64-6.12-l4")
    rc, out, err = in_drgn(core, """
        print(repr(run_command(prog, "kmemdbg vtop --help")))
    """)
    assert rc == 0, err
    assert out.startswith("usage: kmemdbg vtop ")
    for want in ("--pid PID", "--mm ADDR", "--json", "examples:", "  kmemdbg vtop --pid 1 0x400000",
                 "addresses:", "legend:", "RW-/R-X", "[!US]", "(mixed)"):
        assert want in out, want
    for absent in ("--core", "--kcore", "--qmp", "--vmlinux"):
        assert absent not in out, absent
    assert out.rstrip().endswith("None")     # help returns nothing
    assert all(len(line) <= 80 for line in out.splitlines())


def test_kmemdbg_help_offers_the_session_commands_only():
    from kmemdbg.commands.table import DRGN, offered

    core, _ = slice_of("x86_64-6.12-l4")
    rc, out, err = in_drgn(core, """
        run_command(prog, "kmemdbg --help")
        from kmemdbg.commands.drgn_plugin import NAMESPACE
        print("NAMES", " ".join(n for n, _ in NAMESPACE.enabled(prog)))   # "kmemdbg vtop"...
    """)
    assert rc == 0, err
    names = [c.name for c in offered(DRGN)]
    assert f"NAMES {' '.join('kmemdbg ' + n for n in names)}" in out
    text = out[:out.index("NAMES")]
    for name in names:
        assert f"  {name} " in text
    for absent in ("--core", "--kcore", "--qmp", " slice ", " demo "):
        assert absent not in text, absent


def test_bad_lines_are_drgns_command_argument_errors():
    core, _ = slice_of("x86_64-6.12-l4")
    rc, out, err = in_drgn(core, """
        for line in ("kmemdbg --core x vtop 1", "kmemdbg vtop", "kmemdbg nosuch 1",
                     "kmemdbg vtop --size 1 2", "kmemdbg", "kmemdbg --bogus vtop 1", "kmemdbg slice out"):
            try:
                run_command(prog, line)
                print("NO ERROR", line)
            except CommandArgumentError as e:
                print("ERR", str(e).splitlines()[0])
    """)
    assert rc == 0, err
    errs = [line for line in out.splitlines() if line.startswith(("ERR", "NO ERROR"))]
    assert len(errs) == 7 and all(e.startswith("ERR kmemdbg") for e in errs), out
    assert "session's program" in errs[0]
    assert "required" in errs[1] and "ADDR" in errs[1]
    assert "no command 'nosuch'" in errs[2]
    assert "--size" in errs[3]
    assert "'slice'" in errs[6]


def test_a_failing_command_prints_its_one_line_and_returns_none():
    core, _ = slice_of("x86_64-6.12-l4")
    rc, out, err = in_drgn(core, """
        print("RET", run_command(prog, "kmemdbg ptdump --start _edata --end _edata"))
    """)
    assert rc == 0, err
    assert "RET None" in out
    assert [x for x in err.splitlines() if x.startswith("kmemdbg: ")] == \
        [x for x in err.splitlines() if "empty range" in x]


def test_redirection_writes_the_output_to_the_file(tmp_path):
    core, truth = slice_of("x86_64-6.12-l4")
    target = tmp_path / "out.json"
    rc, out, err = in_drgn(core, f"""
        r = run_command(prog, "kmemdbg classify --json _edata > {target}")
        print("RESULT", type(r).__name__)
    """)
    assert rc == 0, err
    doc = json.loads(target.read_text())
    items = doc["results"] if isinstance(doc, dict) else doc
    assert int(items[0]["va"], 16) == int(truth["kallsyms"]["_edata"]["address"], 16)
    assert "RESULT ClassifyResult" in out


def test_percent_kmemdbg_in_drgns_own_console():
    core, truth = slice_of("x86_64-6.12-l4")
    rc, out, err = in_drgn(core, """
        try:
            from drgn.internal.repl import _InteractiveConsoleWithCommand
        except ImportError:
            print("SKIP"); sys.exit(0)
        console = _InteractiveConsoleWithCommand({"prog": prog})
        for line in ("%kmemdbg --json classify _edata", "print('TYPE', type(_).__name__)",
                     "%kmemdbg vtop", "%kmemdbg --kcore layout"):
            console.push(line)
    """)
    if out.strip() == "SKIP":
        pytest.skip("this drgn has no REPL console class")
    assert rc == 0, err
    assert "TYPE ClassifyResult" in out           # the console keeps the result in _
    errs = [x for x in (out + err).splitlines() if x.startswith("drgn: ")]
    assert errs[0].startswith("drgn: kmemdbg vtop: error: the following arguments are required")
    assert "session's program" in errs[1]
