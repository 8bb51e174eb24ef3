"""Every command's --json output against its published JSON Schema, on every committed fixture.

Oracle: the schemas in ``kmemdbg/schemas/`` (JSON Schema draft 2020-12),
written from the README's contract, validated with the independent
``jsonschema`` package; addresses come from each dump's truth.json (the
guest's /proc/vmallocinfo, /proc/modules, the slice's linear samples),
never from kmemdbg.  Validation is strict (``kmemdbg.schema`` closes every
object that lists its properties), so an undocumented key fails here; the
published schemas stay open because additions are compatible.
"""
from __future__ import annotations

import io
import json
import os

import pytest

from kmemdbg import schema
from kmemdbg.commands.execute import execute
from kmemdbg.commands.table import BY_NAME, parse

from realdumps import FIXTURES, RECIPES

jsonschema = pytest.importorskip("jsonschema")

FIXTURE_RECIPES = [r for r in RECIPES if os.path.exists(os.path.join(FIXTURES, r, "vmcore.slice"))]
_KERNELS = {}


def _kernel(recipe: str):
    import kmemdbg

    if recipe not in _KERNELS:
        _KERNELS[recipe] = kmemdbg.open(core=os.path.join(FIXTURES, recipe, "vmcore.slice"))
    return _KERNELS[recipe]


def _truth(recipe: str) -> dict:
    with open(os.path.join(FIXTURES, recipe, "truth.json")) as f:
        return json.load(f)


def run(kernel, *argv: str):
    """(status, stdout, stderr) of one command line on ``kernel`` (the drgn front end's parser)."""
    args, _ = parse("drgn", list(argv))
    out, err = io.StringIO(), io.StringIO()
    status = execute(args, lambda: kernel, out, err)
    return status, out.getvalue(), err.getvalue()


def _addresses(truth: dict):
    """Kernel virtual addresses of several kinds, from the guest's own reports."""
    out = []
    areas = truth.get("vmalloc_areas") or []
    out += [a["start"] for a in areas if "vmalloc" in a["flags"]][:2]
    out += [a["start"] for a in areas if "ioremap" in a["flags"]][:1]
    out += [m["address"] for m in truth.get("modules") or []][:1]
    out += [s["va"] for s in (truth.get("slice") or {}).get("linear_samples") or []][:1]
    return out + ["init_mm+0x40", "_text", "0x1000"]


def _valid(command: str, text: str) -> list:
    doc = json.loads(text)
    problems = schema.errors(command, doc, strict=True)
    assert not problems, f"{command}: " + "; ".join(problems[:5])
    return doc["results"]


@pytest.mark.parametrize("recipe", FIXTURE_RECIPES)
def test_every_per_address_command_conforms_with_a_bad_argument_in_place(recipe):
    k, truth = _kernel(recipe), _truth(recipe)
    vas = _addresses(truth)
    pas = [s["pa"] for s in (truth.get("slice") or {}).get("linear_samples") or []][:2]
    bad = "no_such_symbol_anywhere"
    for command, argv in (("classify", vas), ("vtop", vas), ("check", [vas[0] + "=0x1000"] + vas),
                          ("ptov", pas)):
        status, out, err = run(k, "--json", command, *argv[:2], bad, *argv[2:])
        results = _valid(command, out)
        assert len(results) == len(argv) + 1
        # the bad argument's item stands in its place; the others are answered
        assert results[2] == {"argument": bad, "error": f"kmemdbg: unknown symbol {bad!r}"} or command == "ptov"
        errors = [r for r in results if "error" in r]
        assert len(errors) < len(results) and status == 1, results
        assert err.splitlines() == [r["error"] for r in errors]


@pytest.mark.parametrize("recipe", FIXTURE_RECIPES)
def test_layout_ptdump_and_audit_conform(recipe):
    k = _kernel(recipe)
    status, out, err = run(k, "--json", "layout")
    assert status == 0, err
    assert len(_valid("layout", out)) == 1
    status, out, err = run(k, "--json", "ptdump")
    ranges = _valid("ptdump", out)
    assert len(ranges) > 20 and status in (0, 1), err
    status, out, err = run(k, "--json", "audit")
    findings = _valid("audit", out)
    assert findings and status in (0, 1), err
    status, out, err = run(k, "audit", "--jsonl")
    assert schema.validate_jsonl("audit", out.splitlines(), strict=True) == len(findings)


def test_slice_and_demo_conform(tmp_path):
    recipe = "x86_64-6.12-l4"
    k = _kernel(recipe)
    path = os.path.join(FIXTURES, recipe, "vmcore.slice")
    out = io.StringIO()
    from kmemdbg.commands import cli
    from contextlib import redirect_stdout, redirect_stderr

    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        status = cli.main(["--core", path, "--json", "slice", str(tmp_path / "again.core")])
    assert status == 0
    assert _valid("slice", out.getvalue())[0]["size_bytes"] == os.path.getsize(tmp_path / "again.core")
    status, out, err = run(k, "--json", "demo") if "drgn" in BY_NAME["demo"].front_ends else (None, None, None)
    if status is None:
        buf = io.StringIO()
        with redirect_stdout(buf), redirect_stderr(io.StringIO()):
            assert cli.main(["--json", "demo"]) == 0
        out = buf.getvalue()
    assert len(_valid("demo", out)) >= 2


def test_every_command_of_the_table_has_a_schema_that_loads():
    missing = [name for name in BY_NAME if name not in schema.commands_with_schema()]
    assert not missing, f"commands without kmemdbg/schemas/NAME.json: {missing}"
    for name in schema.commands_with_schema():
        jsonschema.Draft202012Validator.check_schema(schema.load(name))
        schema.validator(name, strict=True)    # every $ref resolves
    jsonschema.Draft202012Validator.check_schema(schema.load("common"))


def test_the_schemas_refuse_what_the_contract_forbids_and_accept_additions():
    region = {"kind": "vmalloc", "name": "vmalloc", "start": "0xffffc90000000000",
              "end": "0xffffe8ffffffffff", "source": "VMCOREINFO"}
    item = {"va": "0xffffc90000001000", "region": region, "allocation": None}
    env = schema.envelope("classify", [item])
    assert schema.errors("classify", env, strict=True) == []
    upper = dict(item, va="0xFFFFC90000001000")
    assert schema.errors("classify", schema.envelope("classify", [upper]))
    assert schema.errors("classify", schema.envelope("classify", [dict(region=region, allocation=None)]))
    assert schema.errors("classify", dict(env, schema="kmemdbg/0"))
    assert schema.errors("classify", schema.envelope("vtop", [item]))     # another command's envelope
    odd = dict(item, region=dict(region, kind="somewhere"))
    assert schema.errors("classify", schema.envelope("classify", [odd]))
    extra = dict(item, later="an addition")
    assert schema.errors("classify", schema.envelope("classify", [extra])) == []        # compatible
    assert schema.errors("classify", schema.envelope("classify", [extra]), strict=True)  # but undocumented
    err = {"argument": "zz", "error": "kmemdbg: unknown symbol 'zz'"}
    assert schema.errors("classify", schema.envelope("classify", [err]), strict=True) == []
    assert schema.errors("layout", schema.envelope("layout", [err]))      # layout has no arguments


def test_schemas_ship_in_the_wheel_listing():
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")) as f:
        assert '"schemas/*.json"' in f.read()
