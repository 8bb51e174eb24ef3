"""The command line's input and output edges (issue 13): symbols, numbers, option order,
refusals, --version, help, the man page and the bash completion.

Oracles: the guest's own /proc/kallsyms and the probe module's symbols
(truth.json ``kallsyms`` / ``probe_kallsyms``), drgn's ``prog.read`` of the
same dump, argparse itself (every example of the help must parse), the
version written in pyproject.toml, the ELF build ID readelf would print
(pyelftools) against VMCOREINFO ``BUILD-ID``, and bash running the
generated completion.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from realdumps import FIXTURES, cache_dir, debug_vmlinux

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICE = os.path.join(FIXTURES, "x86_64-6.12-l4", "vmcore.slice")


def run(*args, timeout=180):
    proc = subprocess.run([sys.executable, "-m", "kmemdbg", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


def fixture_truth(recipe="x86_64-6.12-l4"):
    with open(os.path.join(FIXTURES, recipe, "truth.json")) as f:
        return json.load(f)


def full_dump(recipe):
    path = os.path.join(cache_dir(), recipe, "vmcore.elf")
    if not os.path.exists(path):
        pytest.skip(f"recipe {recipe} not built")
    with open(os.path.join(cache_dir(), recipe, "truth.json")) as f:
        return path, json.load(f)


def results(out):
    """The items of a --json output (the envelope's results, or a bare array)."""
    doc = json.loads(out)
    return doc["results"] if isinstance(doc, dict) else doc


def one_line_error(err, rc, want_rc=1):
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == want_rc and len(lines) == 1 and lines[0].startswith("kmemdbg: "), (rc, err)
    assert "Traceback" not in err
    return lines[0]


# -- symbols -------------------------------------------------------------------------

@pytest.mark.real
@pytest.mark.parametrize("recipe", ["x86_64-6.12-l4", "arm64-6.12-lpa2"])
def test_module_symbols_resolve_to_the_guests_own_kallsyms_address(recipe):
    path, truth = full_dump(recipe)
    syms = {n: int(s["address"], 16) for n, s in truth["probe_kallsyms"].items()
            if s["type"].lower() in ("b", "d", "t") and int(s["address"], 16) >> 63}
    assert syms, "the probe module's symbols are in truth.json"
    names = sorted(syms)[:6]
    args = []
    for n in names:
        args += [n, f"{n}+0x8", f"{n}-10"]
    rc, out, err = run("--core", path, "--json", "classify", *args)
    assert rc == 0, err
    got = [int(o["va"], 16) for o in results(out)]
    want = []
    for n in names:
        want += [syms[n], syms[n] + 8, syms[n] - 0x10]
    assert got == want
    # the module and allocation named are the module /proc/modules lists
    assert all(o["region"]["kind"] == "module" for o in results(out))


@pytest.mark.real
def test_image_symbol_minus_offset_is_the_kallsyms_address_minus_hex():
    truth = fixture_truth()
    va = int(truth["kallsyms"]["_edata"]["address"], 16)
    rc, out, err = run("--core", SLICE, "--json", "classify", "_edata-0x40", "_edata-40", "_edata+1f", "_edata")
    assert rc == 0, err
    assert [int(o["va"], 16) for o in results(out)] == [va - 0x40, va - 0x40, va + 0x1f, va]


def test_a_bad_symbol_offset_is_one_line_naming_it():
    rc, out, err = run("--core", SLICE, "classify", "init_mm-zz")
    line = [x for x in err.splitlines() if x.strip()][-1]
    assert rc == 1 and "'init_mm-zz'" in line and "offset after '-'" in line, err


# -- numbers -------------------------------------------------------------------------

@pytest.mark.real
def test_check_size_takes_hex_and_counts_pages_like_the_arithmetic():
    truth = fixture_truth()
    va = truth["kallsyms"]["_edata"]["address"]
    rc, out, err = run("--core", SLICE, "--json", "check", "--size", "0x2000", f"{va}")
    assert rc == 0, err
    c = results(out)[0]
    start, end = int(va, 16) & ~0xfff, (int(va, 16) + 0x2000 - 1) | 0xfff
    assert len(c["pages"]) == (end + 1 - start) // 0x1000
    rc2, out2, _ = run("--core", SLICE, "--json", "check", "--size", "8192", f"{va}")
    assert rc2 == 0 and results(out2)[0]["pages"] == c["pages"]


@pytest.mark.parametrize("bad", ["0", "-1", "-0x10", "1_0", "0x", "\u0663", "ten", "0b11", "010.0"])
def test_bad_sizes_are_usage_errors(bad):
    rc, out, err = run("--core", SLICE, "check", "--size", bad, "init_mm")
    line = one_line_error(err, rc, 2)
    assert line.startswith("kmemdbg: usage:") and "--size" in line


@pytest.mark.parametrize("bad", ["-1", "abc", "1.5"])
def test_bad_pids_are_usage_errors(bad):
    rc, out, err = run("--core", SLICE, "vtop", "--pid", bad, "0x1000")
    assert one_line_error(err, rc, 2).startswith("kmemdbg: usage:")


def test_pid_takes_hex_as_argparse_would_give_the_same_number():
    from kmemdbg.commands.table import build_parser

    p = build_parser()
    assert p.parse_args(["vtop", "--pid", "0x10", "1"]).pid == 16
    assert p.parse_args(["vtop", "--pid", "16", "1"]).pid == 16


# -- option order ----------------------------------------------------------------------

def test_global_options_after_the_command_give_the_same_output():
    truth = fixture_truth()
    va = truth["kallsyms"]["_edata"]["address"]
    before = run("--core", SLICE, "--json", "vtop", va)
    after = run("vtop", "--json", va, "--core", SLICE)
    mixed = run("--json", "vtop", "--core", SLICE, va)
    assert before[0] == 0, before[2]
    assert before == after == mixed


def test_an_option_after_the_command_does_not_reset_one_given_before():
    from kmemdbg.commands.table import build_parser

    args = build_parser().parse_args(["--json", "--core", "x", "vtop", "1"])
    assert args.json is True and args.core == "x"
    args = build_parser().parse_args(["vtop", "1"])
    assert args.json is False and args.core is None


# -- refusals ---------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", ["x86_64-6.12-l4", "arm64-6.12-lpa2"])
def test_a_user_address_without_pid_says_so(recipe):
    path = os.path.join(FIXTURES, recipe, "vmcore.slice")
    rc, out, err = run("--core", path, "vtop", "0x1000")
    assert rc == 1 and "0x1000: user address: give --pid or --mm" in err, err
    assert "Traceback" not in err


@pytest.mark.real
def test_a_user_address_with_pid_walks_the_task_tables():
    path, truth = full_dump("x86_64-6.12-l4")
    rc, out, err = run("--core", path, "--json", "vtop", "--pid", "1", "0x1000")
    assert "user address" not in err


@pytest.mark.parametrize("start,end,says", [
    ("_edata+0x1000", "_edata", "empty range"),
    ("_edata", "_edata", "empty range"),
    ("0x1000", "0x2000", "outside the kernel half"),
    (None, "0x1000", "outside the kernel half"),
])
def test_empty_reversed_or_user_ptdump_ranges_say_so(start, end, says):
    args = ["--core", SLICE, "ptdump"] + (["--start", start] if start else []) + ["--end", end]
    rc, out, err = run(*args)
    assert says in one_line_error(err, rc), err
    assert out == ""


@pytest.mark.real
def test_a_vmlinux_of_another_kernel_is_refused_by_build_id():
    from kmemdbg.vmcoreinfo import VmcoreInfo
    from kmemdbg.vmlinux import build_id_of

    path, truth = full_dump("x86_64-6.12-l4")
    other = debug_vmlinux("x86_64-6.1-l4")
    if not other:
        pytest.skip("no debug vmlinux fetched")
    with open(os.path.join(cache_dir(), "x86_64-6.12-l4", "vmcoreinfo.txt")) as f:
        dump_id = VmcoreInfo.parse(f.read()).text("BUILD-ID")
    assert dump_id and build_id_of(other) != dump_id
    rc, out, err = run("--core", path, "--vmlinux", other, "classify", "init_mm")
    line = one_line_error(err, rc)
    assert "does not match the dump" in line and build_id_of(other) in line and "ignoring" not in err


@pytest.mark.real
def test_without_the_build_id_check_drgns_ignored_file_is_still_one_error_line():
    # a dump without VMCOREINFO BUILD-ID (before v5.9) leaves the match to drgn, which
    # would only warn and drop the file: that must be an error line too
    path, truth = full_dump("x86_64-6.12-l4")
    other = debug_vmlinux("x86_64-6.1-l4")
    if not other:
        pytest.skip("no debug vmlinux fetched")
    code = ("import sys, kmemdbg.vmlinux as v\nv.check_vmlinux = lambda *a: None\n"
            "from kmemdbg.commands.cli import main\n"
            f"sys.exit(main(['--core', {path!r}, '--vmlinux', {other!r}, 'classify', 'init_mm']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT)
    line = one_line_error(proc.stderr, proc.returncode)
    assert "does not match" in line and "ignoring" not in proc.stderr


@pytest.mark.real
def test_the_matching_vmlinux_gives_dwarf_symbols_at_the_kallsyms_address():
    path, truth = full_dump("x86_64-6.1-l4")
    vmlinux = debug_vmlinux("x86_64-6.1-l4")
    if not vmlinux:
        pytest.skip("no debug vmlinux fetched")
    rc, out, err = run("--core", path, "--vmlinux", vmlinux, "--json", "classify", "init_mm+0x40")
    assert rc == 0, err
    assert int(results(out)[0]["va"], 16) == int(truth["kallsyms"]["init_mm"]["address"], 16) + 0x40


def test_a_vmlinux_that_is_not_elf_is_one_line(tmp_path):
    bogus = tmp_path / "vmlinux"
    bogus.write_bytes(b"not an elf file at all\n" * 10)
    rc, out, err = run("--core", SLICE, "--vmlinux", str(bogus), "classify", "init_mm")
    assert "not an ELF file" in one_line_error(err, rc)


# -- version, help ------------------------------------------------------------------------

def test_version_is_the_packaged_version():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    rc, out, err = run("--version")
    assert (rc, out, err) == (0, f"kmemdbg {version}\n", "")


def _cli_commands():
    from kmemdbg.commands.table import CLI, offered

    return [c.name for c in offered(CLI)]


@pytest.mark.parametrize("name", _cli_commands())
def test_every_command_help_fits_80_columns_and_its_examples_parse(name):
    from kmemdbg.commands import help_texts
    from kmemdbg.commands.table import build_parser

    rc, out, err = run(name, "--help", timeout=60)
    assert rc == 0 and err == "", err
    assert all(len(line) <= 80 for line in out.splitlines()), [x for x in out.splitlines() if len(x) > 80]
    assert "numbers:" in out
    for example in help_texts.EXAMPLES.get(name, ()):
        assert f"kmemdbg --core vmcore {example}" in out
        argv = ["--core", "vmcore"] + [w for w in shlex.split(example) if w not in (">", "tables.json")]
        args = build_parser().parse_args(argv)      # argparse itself accepts every example
        assert args.command == name


@pytest.mark.parametrize("name", ["vtop", "ptdump", "check", "classify"])
def test_address_commands_help_gives_the_syntax_and_the_legend(name):
    from kmemdbg.commands.help_texts import SHOWS_PERMISSIONS

    rc, out, _ = run(name, "--help", timeout=60)
    assert "addresses:" in out and "symbol" in out and "init_mm+0x40" in out
    if name in SHOWS_PERMISSIONS:
        for key in ("RW-/R-X", "[!US]", "(mixed)"):
            assert key in out, key


def test_the_legend_names_each_architectures_table_flags_from_its_record():
    from kmemdbg.arch import ARCHES
    from kmemdbg.commands.help_texts import legend

    text = " ".join(" ".join(legend()).split())
    for a in ARCHES:
        for name, _bit, when_set in a.ptdump_table_flags:
            assert ("" if when_set else "!") + name in text


# -- man page and completion -----------------------------------------------------------------

def test_man_page_and_completion_are_current():
    from kmemdbg.commands import docgen

    assert docgen.stale() == [], "run python3 -m kmemdbg.commands.docgen --write"


def test_man_page_names_every_command_and_option_of_the_parser():
    from kmemdbg.commands import docgen
    from kmemdbg.commands.table import CLI, build_parser, offered

    text = docgen.man_page().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
    for c in offered(CLI):
        assert f".SS {c.name}\n" in text
    p = build_parser(CLI)
    for a in p._actions:
        for o in a.option_strings:
            assert o in text


def test_man_page_renders_with_man(tmp_path):
    from kmemdbg.commands import docgen

    if subprocess.run(["sh", "-c", "command -v man"], capture_output=True).returncode:
        pytest.skip("no man")
    page = tmp_path / "kmemdbg.1"
    page.write_text(docgen.man_page())
    proc = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    assert proc.returncode == 0 and "vtop" in proc.stdout, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr


def _complete(words, cword, tmp_path):
    from kmemdbg.commands.docgen import bash_completion

    comp = tmp_path / "kmemdbg.bash"     # as generated now (the shipped copy: test above)
    comp.write_text(bash_completion())
    script = (f"source {shlex.quote(str(comp))}; COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); "
              f"COMP_CWORD={cword}; _kmemdbg; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completion_offers_the_parsers_commands_options_and_values(tmp_path):
    from kmemdbg.audit import RULE_NAMES, SEVERITIES
    from kmemdbg.commands.table import CLI, offered

    assert set(c.name for c in offered(CLI)) <= set(_complete(["kmemdbg", ""], 1, tmp_path))
    assert _complete(["kmemdbg", "--core", "x", "vt"], 3, tmp_path) == ["vtop"]
    assert set(_complete(["kmemdbg", "vtop", "--"], 2, tmp_path)) >= {"--pid", "--mm", "--json", "--core"}
    assert set(_complete(["kmemdbg", "audit", "--rule", ""], 3, tmp_path)) == set(RULE_NAMES)
    assert set(_complete(["kmemdbg", "audit", "--fail-on", ""], 3, tmp_path)) == set(SEVERITIES)


def test_the_wheel_ships_the_generated_files():
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    from kmemdbg.commands.docgen import BASH_COMPLETION, MAN_PAGE

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["kmemdbg"]
    for path in (MAN_PAGE, BASH_COMPLETION):
        rel = os.path.relpath(path, os.path.join(ROOT, "kmemdbg"))
        assert os.path.exists(path) and any(fnmatch.fnmatch(rel, p) for p in patterns), rel
