"""The shape issue 11 asks for, checked on the tree itself.

Oracle: the source text.  Generic code (everything outside kmemdbg/arch/,
the independent model and vmcores/) never names an architecture or tests
one; every memory source lives in kmemdbg/sources/.
"""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH_LITERAL = re.compile(r"""["'](x86_64|x86-64|aarch64|arm64|AARCH64|X86_64|ARM64|i386:x86-64)["']""")
ARCH_TEST = re.compile(r"\b(fmt|self|layout|kernel|paging|ev|info|memory|mem)\.arch\s*(==|!=|in)\b|\barch(_name)?\s*(==|!=)\s*[\"']")
GENERIC = ("kmemdbg", "commands")
EXEMPT = (os.path.join("kmemdbg", "arch") + os.sep, os.path.join("kmemdbg", "model") + os.sep)


def _generic_files():
    for top in GENERIC:
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, top), followlinks=False):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                    if not rel.startswith(EXEMPT):
                        yield rel


def _code_strings(path):
    """String constants outside docstrings, with their line numbers."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                docs.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_generic_code_names_no_architecture():
    bad = []
    for path in _generic_files():
        for line, value in _code_strings(path):
            if ARCH_LITERAL.fullmatch(repr(value)) or ARCH_LITERAL.fullmatch('"%s"' % value):
                bad.append(f"{path}:{line}: {value!r}")
    assert not bad, "architecture names outside kmemdbg/arch/:\n" + "\n".join(bad)


def test_generic_code_never_tests_an_architecture():
    bad = []
    for path in _generic_files():
        with open(os.path.join(ROOT, path)) as f:
            for n, text in enumerate(f, 1):
                code = text.split("#", 1)[0]
                if ARCH_TEST.search(code):
                    bad.append(f"{path}:{n}: {text.strip()}")
    assert not bad, "architecture tests outside kmemdbg/arch/:\n" + "\n".join(bad)


def test_every_architecture_is_one_registered_folder():
    from kmemdbg import arch
    names = sorted(a.name for a in arch.ARCHES)
    folders = sorted(d for d in os.listdir(os.path.join(ROOT, "kmemdbg", "arch"))
                     if os.path.isfile(os.path.join(ROOT, "kmemdbg", "arch", d, "__init__.py")))
    assert names == folders


def test_commands_package_is_importable_from_the_checkout():
    import kmemdbg.commands  # noqa: F401


def test_generic_code_imports_no_architecture_folder():
    names = {a.name for a in __import__("kmemdbg.arch", fromlist=["ARCHES"]).ARCHES}
    pattern = re.compile(r"^\s*(from\s+\S*arch\.(%s)\b|from\s+\S*arch\s+import\s+.*\b(%s)\b|import\s+kmemdbg\.arch\.(%s)\b)"
                         % (("|".join(names),) * 3))
    bad = []
    for path in _generic_files():
        with open(os.path.join(ROOT, path)) as f:
            for n, text in enumerate(f, 1):
                if pattern.search(text):
                    bad.append(f"{path}:{n}: {text.strip()}")
    assert not bad, "generic code importing an architecture folder:\n" + "\n".join(bad)
