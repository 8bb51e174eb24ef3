"""The JSON contract's schemas: loading them and validating output against them.

Every ``--json`` output is one envelope ``{"schema": "kmemdbg/1", "command":
NAME, "results": [ITEM, ...]}``; ``kmemdbg/schemas/NAME.json`` (JSON Schema,
draft 2020-12) describes one ITEM of command NAME, and
``kmemdbg/schemas/common.json`` holds the shared ``$defs`` (``hex``,
``region``, ``owner``, ``permissions``, ``allocation``, ``argument_error``,
``envelope``).  The published schemas leave objects open (additions are
compatible); ``strict=True`` closes every object that lists its
properties, which is how the tests check that nothing undocumented is
written.

kmemdbg itself never validates at run time: validation needs the
``jsonschema`` package (the ``test`` extra), imported only when asked for.
"""
from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .errors import KmemdbgError

#: The version of the JSON contract every envelope and --jsonl line names.
SCHEMA_VERSION = "kmemdbg/1"
#: Folder of the schema files, shipped in the package.
SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
#: Commands whose results may hold an ``argument_error`` item in place of an argument's answer.
PER_ARGUMENT = frozenset({"classify", "vtop", "check", "ptov", "page"})


def envelope(command: str, results: List[Any]) -> Dict[str, Any]:
    """The envelope of ``command``'s ``results`` (a list of plain items)."""
    return {"schema": SCHEMA_VERSION, "command": command, "results": results}


def commands_with_schema() -> Tuple[str, ...]:
    """Names of the commands that have a schema file, sorted."""
    return tuple(sorted(n[:-5] for n in os.listdir(SCHEMA_DIR)
                        if n.endswith(".json") and n != "common.json"))


@lru_cache(maxsize=None)
def _load_file(name: str) -> str:
    path = os.path.join(SCHEMA_DIR, name)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise KmemdbgError(f"no JSON schema {name!r} (command without a schema?)") from None


def load(command: str) -> Dict[str, Any]:
    """The item schema of ``command`` (a fresh copy; ``"common"`` gives the shared definitions).
    Raises KmemdbgError when there is none."""
    return json.loads(_load_file(f"{command}.json"))


def _close(node: Any) -> Any:
    """``node`` with ``additionalProperties: false`` added to every object schema that lists
    ``properties`` and says nothing about additional ones."""
    if isinstance(node, list):
        return [_close(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: (v if k in ("const", "enum", "default", "examples") else _close(v)) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out and "unevaluatedProperties" not in out:
        out["additionalProperties"] = False
    return out


def _registry(strict: bool):
    from referencing import Registry, Resource

    resources = []
    for name in os.listdir(SCHEMA_DIR):
        if name.endswith(".json"):
            doc = json.loads(_load_file(name))
            resources.append((name, Resource.from_contents(_close(doc) if strict else doc)))
    return Registry().with_resources(resources)


def validator(command: str, strict: bool = False, whole: bool = True):
    """A ``jsonschema`` validator for ``command``'s envelope (``whole``) or for one item.

    The envelope's results may hold ``argument_error`` items for the
    commands in PER_ARGUMENT.  Needs the ``jsonschema`` package.
    """
    from jsonschema import Draft202012Validator

    item: Dict[str, Any] = {"$ref": f"{command}.json"}
    if command in PER_ARGUMENT:
        item = {"oneOf": [item, {"$ref": "common.json#/$defs/argument_error"}]}
    if whole:
        schema: Dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{command}-envelope.json",
            "type": "object",
            "required": ["schema", "command", "results"],
            "properties": {"schema": {"const": SCHEMA_VERSION}, "command": {"const": command},
                           "results": {"type": "array", "items": item}},
        }
    else:
        schema = dict(item, **{"$id": f"{command}-item.json"})
    load(command)  # a missing schema is a KmemdbgError, not an unresolvable reference
    if strict:
        schema = _close(schema)
    return Draft202012Validator(schema, registry=_registry(strict))


def errors(command: str, value: Any, strict: bool = False, whole: bool = True) -> List[str]:
    """Every way ``value`` (an envelope, or one item if not ``whole``) breaks ``command``'s
    schema, one line each (``at PATH: MESSAGE``); empty when it conforms."""
    out = []
    for e in sorted(validator(command, strict, whole).iter_errors(value), key=lambda e: [str(p) for p in e.path]):
        out.append(_brief(e))
    return out


def _brief(e) -> str:
    if e.context:  # a oneOf: the alternative that is not merely of another type says most
        options = [c for c in e.context if c.validator != "type"] or list(e.context)
        return _brief(max(options, key=lambda c: len(list(c.absolute_path))))
    text = e.message
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"at {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {text}"


def validate(command: str, value: Any, strict: bool = False, whole: bool = True) -> None:
    """Raise KmemdbgError naming the first violations when ``value`` breaks ``command``'s schema."""
    found = errors(command, value, strict, whole)
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        raise KmemdbgError(f"{command} output breaks its schema: " + "; ".join(found[:3]) + more)


def validate_jsonl(command: str, lines: Iterable[str], strict: bool = False) -> int:
    """Validate ``--jsonl`` output: each line one item carrying ``"schema"``.  Returns the count."""
    n = 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA_VERSION:
            raise KmemdbgError(f"{command} --jsonl line {i}: no \"schema\": \"{SCHEMA_VERSION}\"")
        item = copy.copy(obj)
        del item["schema"]
        found = errors(command, item, strict, whole=False)
        if found:
            raise KmemdbgError(f"{command} --jsonl line {i} breaks its schema: " + "; ".join(found[:3]))
        n += 1
    return n


def parse_output(text: str, command: Optional[str] = None) -> List[Any]:
    """The ``results`` of one command's ``--json`` output text, checking the envelope's
    version (and its command, if given).  For tests and scripts reading kmemdbg's output."""
    obj = json.loads(text)
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA_VERSION or "results" not in obj:
        raise KmemdbgError(f"not a {SCHEMA_VERSION} envelope: {text[:80]!r}")
    if command is not None and obj.get("command") != command:
        raise KmemdbgError(f"envelope of {obj.get('command')!r}, not {command!r}")
    return obj["results"]


__all__ = ["SCHEMA_VERSION", "SCHEMA_DIR", "PER_ARGUMENT", "envelope", "commands_with_schema", "load",
           "validator", "errors", "validate", "validate_jsonl", "parse_output"]
