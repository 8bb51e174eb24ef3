"""The command line and the drgn command: contract shapes and bad input.

Oracles: the JSON contract written in README.md; for bad input, the rule
that every failure is one line naming its cause with a non-zero status.
The translations themselves are checked against drgn in test_product_real.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from realdumps import FIXTURES

SLICE = os.path.join(FIXTURES, "x86_64-6.12-l4", "vmcore.slice")


def run(*args, check_rc=None):
    proc = subprocess.run([sys.executable, "-m", "kmemdbg", *args], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def truth():
    with open(os.path.join(FIXTURES, "x86_64-6.12-l4", "truth.json")) as f:
        return json.load(f)


def test_vtop_classify_check_json_follow_the_contract():
    area = next(a for a in truth()["vmalloc_areas"] if "vmalloc" in a["flags"])
    va = area["start"]
    rc, out, err = run("--core", SLICE, "--json", "vtop", va, "init_mm+0x40")
    assert rc == 0, err
    objs = json.loads(out)["results"]
    assert len(objs) == 2
    for o in objs:
        assert set(o) >= {"va", "region", "allocation", "pa", "page_size", "steps", "fault"}
        assert set(o["region"]) >= {"kind", "name", "start", "end", "source"}
        assert o["va"].startswith("0x") and o["va"] == o["va"].lower()
        for s in o["steps"]:
            assert set(s) >= {"level", "table", "index", "entry", "raw", "flags"}
    assert objs[1]["region"]["kind"] == "kernel-image"
    rc, out, err = run("--core", SLICE, "--json", "classify", va)
    assert rc == 0 and set(json.loads(out)["results"][0]) == {"va", "region", "allocation"}
    rc, out, err = run("--core", SLICE, "--json", "check", va, f"{va}=0x1000")
    assert rc == 0, err
    checks = json.loads(out)["results"]
    for c in checks:
        assert set(c) >= {"va", "linear_pa", "walk_pa", "claimed_pa", "verdict", "region", "explanation"}
        assert c["verdict"] in ("ok", "mismatch", "unmapped", "not-applicable")
    assert checks[1]["claimed_pa"] == "0x1000"


def test_text_output_fits_80_columns():
    area = next(a for a in truth()["vmalloc_areas"] if "vmalloc" in a["flags"])
    for cmd in (["vtop", area["start"]], ["check", area["start"]], ["classify", area["start"]]):
        rc, out, err = run("--core", SLICE, *cmd)
        assert rc == 0, err
        assert max(len(line) for line in out.splitlines()) <= 80, cmd


def test_console_script_and_module_give_the_same_output():
    exe = os.path.join(os.path.dirname(sys.executable), "kmemdbg")
    if not os.path.exists(exe):
        pytest.skip("console script not installed")
    a = subprocess.run([exe, "--core", SLICE, "--json", "vtop", "init_mm"], capture_output=True, text=True)
    rc, out, _ = run("--core", SLICE, "--json", "vtop", "init_mm")
    assert a.returncode == rc == 0 and a.stdout == out


def test_demo_runs_on_the_bundled_sample():
    rc, out, err = run("demo")
    assert rc == 0, err
    assert "MISMATCH" in out and "OK" in out and "PTE" in out


def _dead_socket(tmp_path):
    path = str(tmp_path / "qmp.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody listens
    return path


def _bad_inputs(tmp_path):
    data = open(SLICE, "rb").read()
    (tmp_path / "trunc.core").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.core").write_text("not a dump\n")
    noinfo = bytearray(data)
    i = noinfo.find(b"VMCOREINFO")
    noinfo[i:i + 10] = b"XXXXXXXXXX"
    (tmp_path / "noinfo.core").write_bytes(bytes(noinfo))
    return [
        (["--core", SLICE, "vtop", "0xzz"], "not a hexadecimal address"),
        (["--core", SLICE, "vtop", "no_such_symbol+0x10"], "unknown symbol"),
        (["--core", SLICE, "check", "0x1ffffffffffffffff"], "does not fit in 64 bits"),
        (["--core", str(tmp_path / "text.core"), "vtop", "0"], "not a kernel dump"),
        (["--core", str(tmp_path / "trunc.core"), "vtop", "0"], "truncated"),
        (["--core", str(tmp_path / "noinfo.core"), "vtop", "0"], "no VMCOREINFO"),
        (["--core", str(tmp_path / "missing.core"), "vtop", "0"], "no such file"),
        (["--qmp", _dead_socket(tmp_path), "vtop", "0"], "cannot talk to QEMU"),
        (["vtop", "0"], "no kernel given"),
    ]


def test_bad_input_gives_one_line_and_nonzero_status(tmp_path):
    for args, needle in _bad_inputs(tmp_path):
        rc, out, err = run(*args)
        assert rc != 0, args
        assert "Traceback" not in err, (args, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1, (args, err)
        assert needle in lines[0], (args, lines[0])


def test_unreadable_kcore_is_one_line(monkeypatch):
    import kmemdbg.api as api
    from kmemdbg.errors import SourceError

    monkeypatch.setattr(api.os, "access", lambda path, mode: False)
    with pytest.raises(SourceError, match="/proc/kcore is not readable"):
        api.open(kcore=True)


def test_drgn_command_inside_a_real_drgn_process():
    drgn_exe = os.path.join(os.path.dirname(sys.executable), "drgn")
    if not os.path.exists(drgn_exe):
        pytest.skip("drgn CLI not installed")
    area = next(a for a in truth()["vmalloc_areas"] if "vmalloc" in a["flags"])
    code = ("from drgn.commands import run_command\n"
            f"run_command(prog, 'kmemdbg --json check {area['start']}')\n"
            "run_command(prog, 'kmemdbg classify no_such_symbol')\n")
    proc = subprocess.run([drgn_exe, "-q", "-c", SLICE, "-e", code], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    start = out.index("{")
    end = out.index("\n}") + 2
    check = json.loads(out[start:end])["results"][0]
    assert check["region"]["kind"] == "vmalloc" and check["verdict"] in ("mismatch", "unmapped")
    assert "kmemdbg: unknown symbol 'no_such_symbol'" in proc.stderr   # failures go to stderr, as on the shell


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_commands_import_from_the_checkout():
    code = ("import kmemdbg.commands as c, kmemdbg.commands.drgn_plugin, kmemdbg.commands.table as t\n"
            "print(c.__file__)\nprint(' '.join(x.name for x in t.COMMANDS))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    path, names = proc.stdout.splitlines()
    assert os.path.realpath(path) == os.path.join(os.path.realpath(ROOT), "commands", "__init__.py")
    assert names == "layout classify vtop check ptov slice ptdump audit demo page vmap percpu tasks vm rd search"


def test_drgn_loads_the_plugin_from_the_checkout():
    # drgn imports every drgn.plugins entry point when it builds a program: the
    # kmemdbg one must import from a plain checkout (it failed: no kmemdbg.commands)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DRGN_DISABLE_PLUGINS")}
    proc = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", SLICE, "vtop", "--pid", "1", "0x400000"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert "failed to load" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_every_front_end_is_built_from_the_one_table():
    from kmemdbg.commands import table
    from kmemdbg.commands.gdb import COMMANDS as GDB_COMMANDS, help_text

    cli = table.build_parser(table.CLI)
    names = [c.name for c in table.COMMANDS]
    assert list(cli._subparsers._group_actions[0].choices) == names
    assert GDB_COMMANDS[:7] == ("layout", "classify", "vtop", "check", "ptov", "ptdump", "audit")
    assert all(f"  {name} " in help_text() for name in GDB_COMMANDS)
    for session in (table.DRGN, table.CRASH):
        offered = [c.name for c in table.offered(session)]
        assert offered == ["layout", "classify", "vtop", "check", "ptov", "ptdump", "audit", "page", "vmap",
                           "percpu", "tasks", "vm", "rd", "search"]
