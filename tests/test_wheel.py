"""A wheel built from this checkout works where the checkout is not.

Built with ``pip wheel --no-deps`` from a copy of the sources (without build
isolation where this Python can build wheels itself, else in pip's isolated
build environment, as ``pip install kmemdbg`` from source would), installed into a fresh venv that sees the system's
site-packages (drgn, pyelftools, numpy) and run from an empty directory.
Oracles: ``kmemdbg demo`` prints what the golden set recorded for the
checkout (tests/golden/demo.txt); the drgn plugin entry point loads; the gdb
start-up file it names exists inside the venv.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_DEMO = os.path.join(ROOT, "tests", "golden", "demo.txt")


def _can_build_wheels() -> bool:
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return importlib.util.find_spec("wheel") is not None or (major, minor) >= (70, 1)


def _copy_sources(dst: str) -> None:
    """The files a wheel is built from (links kept: kmemdbg/commands is one), no caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(os.path.join(ROOT, name), dst)
    for name in ("kmemdbg", "commands"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(dst, name), symlinks=True, ignore=ignore)


def _run(cmd, cwd, **kw):
    env = dict(os.environ, PYTHONNOUSERSITE="1", PYTHONHASHSEED="0", COLUMNS="100")   # as the golden set
    for name in ("PYTHONPATH", "KMEMDBG_PROGRESS", "DRGN_DISABLE_PLUGINS"):
        env.pop(name, None)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600, **kw)


@pytest.mark.slow
def test_wheel_installs_demo_plugin_and_gdb_script(tmp_path):
    src, dist, venv, elsewhere = (tmp_path / n for n in ("src", "dist", "venv", "elsewhere"))
    for d in (src, dist, elsewhere):
        d.mkdir()
    _copy_sources(str(src))
    isolation = ["--no-build-isolation"] if _can_build_wheels() else []
    p = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(dist), str(src)],
             cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (wheel,) = list(dist.glob("kmemdbg-*.whl"))
    p = _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    py = str(venv / "bin" / "python")
    p = _run([py, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=str(elsewhere))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]

    where = _run([py, "-c", "import kmemdbg, kmemdbg.commands as c; print(kmemdbg.__file__); print(c.__file__)"],
                 cwd=str(elsewhere))
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout

    demo = _run([str(venv / "bin" / "kmemdbg"), "demo"], cwd=str(elsewhere))
    with open(GOLDEN_DEMO) as f:
        golden = f.read()
    want = golden.split("--- stdout\n", 1)[1].split("--- stderr\n", 1)[0]
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout == want

    plugins = _run([py, "-c", "import importlib.metadata as m\n"
                              "eps = [e for e in m.entry_points(group='drgn.plugins') if e.name == 'kmemdbg']\n"
                              "assert eps, 'no kmemdbg drgn plugin'\n"
                              "print([e.load().__file__ for e in eps][0])"], cwd=str(elsewhere))
    assert plugins.returncode == 0, plugins.stderr
    assert plugins.stdout.strip().startswith(str(venv)), plugins.stdout

    gdb = _run([py, "-m", "kmemdbg.gdb"], cwd=str(elsewhere))
    assert gdb.returncode == 0, gdb.stderr
    script = gdb.stdout.strip()
    assert script.startswith(str(venv)) and os.path.isfile(script), script
