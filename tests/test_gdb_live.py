"""The gdb front end on a live guest against a dump of the same guest at the same moment.

Each test boots a built recipe's kernel under QEMU (TCG) with the gdbstub
and QMP on loopback, waits for the guest's ready marker, stops it over QMP,
dumps it (ELF, ``paging: false``) while it is stopped, then drives
``gdb -batch`` with ``python import kmemdbg.gdb`` and ``kmemdbg --json vtop``
on over 1,000 addresses: the direct map, vmalloc areas from the guest's own
/proc/vmallocinfo, the kernel image and modules from /proc/modules.

Oracles: kmemdbg's command line on the dump (the JSON must be identical,
key order aside) and drgn's C page-table walker on the dump (every physical
address).  QEMU is killed by its own pid on every path.

Both run in the default suite when their recipe is built and the gdb they
need is installed (``gdb`` for x86-64, ``gdb-multiarch`` for arm64): about
15 s for x86-64 and 55 s for arm64 under TCG on a 2-core machine.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vmcores import build, guest, truth  # noqa: E402
from vmcores.qmp import QMP  # noqa: E402

BOOT_TIMEOUT_S = 240
GDB_TIMEOUT_S = 300
SAMPLES = 1200
GDB_FOR = {"x86_64": "gdb", "arm64": "gdb-multiarch"}

GDB_DRIVER = r'''
import json, sys, time, gdb
args = json.load(open("@ARGS@"))
gdb.execute("target remote 127.0.0.1:%d" % args["port"])
t0 = time.monotonic()
gdb.execute("python import kmemdbg.gdb")
out, errors = [], []
for i in range(0, len(args["vas"]), 150):
    chunk = args["vas"][i:i + 150]
    try:
        text = gdb.execute("kmemdbg --json vtop " + " ".join(chunk), to_string=True)
        out += json.loads(text)["results"]
    except gdb.error as err:
        errors.append(str(err))
        break
mode = gdb.execute("maint packet qqemu.PhyMemMode", to_string=True)
json.dump({"vtop": out, "errors": errors, "mode": mode, "seconds": time.monotonic() - t0},
          open(args["result"], "w"))
gdb.execute("detach")
'''


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _factory_lock():
    """Hold the recipe factory's lock so only one QEMU runs at a time."""
    path = os.path.join(build.cache_root(), "vmcores", ".build.lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _guest(recipe_name: str, work: str):
    """Boot the built recipe with -gdb and QMP on loopback; yield (recipe, gdb port, QMP, serial text)."""
    d = build.built(recipe_name)
    if d is None:
        pytest.skip(f"recipe {recipe_name} is not built: run python3 vmcores/build.py {recipe_name}")
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    recipe = manifest["recipe_content"]
    if shutil.which(recipe["qemu"]["binary"]) is None:
        pytest.skip(f"{recipe['qemu']['binary']} is not installed")
    kernel = os.path.join(build.cache_root(), manifest["vmlinuz"])
    serial = os.path.join(work, "serial.log")
    sockdir = tempfile.mkdtemp(prefix="kmemdbg-gdb-")
    sock = os.path.join(sockdir, "qmp.sock")
    port = _free_port()
    cmd = build.qemu_command(recipe, kernel, os.path.join(d, "initrd.gz"), serial, sock)
    cmd += ["-gdb", f"tcp:127.0.0.1:{port}"]
    with _factory_lock():
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        qmp = None
        try:
            deadline = time.monotonic() + BOOT_TIMEOUT_S
            text = ""
            while guest.MARK_READY not in text:
                assert proc.poll() is None, f"QEMU exited with status {proc.returncode}"
                assert "Kernel panic" not in text, "guest kernel panicked"
                assert time.monotonic() < deadline, f"guest not ready after {BOOT_TIMEOUT_S} s"
                time.sleep(0.5)
                if not os.path.exists(serial):
                    continue            # QEMU creates it once it is up: slower on a loaded machine
                with open(serial, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            qmp = QMP(sock)
            yield recipe, port, qmp, text
        finally:
            if qmp is not None:
                qmp.close()
            build.stop_process(proc)
            shutil.rmtree(sockdir, ignore_errors=True)


def _samples(core: str, serial_text: str, rnd: random.Random):
    """Over SAMPLES kernel addresses (hex strings) in the linear map, vmalloc, the image and modules."""
    import kmemdbg

    k = kmemdbg.open(core=core)
    sec = guest.sections(serial_text)
    areas = truth.parse_vmallocinfo(sec["vmallocinfo"])
    modules = truth.parse_modules(sec["modules"])
    lin = next(r for r in k.layout.regions if r.kind == "linear")
    ram = k.ram()
    phys_offset = min(lo for lo, _ in ram)
    vas = []
    for _ in range(SAMPLES // 3):                                   # direct map, in RAM and beyond
        lo, hi = rnd.choice(ram)
        vas.append(lin.start + (rnd.randrange(lo, hi + (hi - lo) // 8) - phys_offset))
    for area in areas:                                              # each vmalloc area: start + inside
        start, size = int(area["start"], 16), area["size"]
        vas += [start, start + rnd.randrange(0, size)]
    text, end = k.symbols.address("_text"), k.symbols.address("_end")
    vas += [rnd.randrange(text, end) for _ in range(SAMPLES // 6)]  # image
    for m in modules:                                               # modules
        base = int(m["address"], 16)
        vas += [base + rnd.randrange(0, m["size"]) for _ in range(10)]
    while len(vas) < SAMPLES:
        vas.append(rnd.randrange(text, end))
    return k, [f"0x{va & ((1 << 64) - 1):x}" for va in vas]


def _run_gdb(arch: str, port: int, vas, work: str):
    gdb_bin = shutil.which(GDB_FOR[arch])
    if gdb_bin is None:
        pytest.skip(f"{GDB_FOR[arch]} is not installed")
    args_path, result_path = os.path.join(work, "args.json"), os.path.join(work, "result.json")
    with open(args_path, "w") as f:
        json.dump({"port": port, "vas": vas, "result": result_path}, f)
    driver = os.path.join(work, "driver.py")
    with open(driver, "w") as f:
        f.write(GDB_DRIVER.replace("@ARGS@", args_path))
    env = dict(os.environ, PYTHONPATH=ROOT)
    t0 = time.monotonic()
    # The system Python inside gdb, not this interpreter: kmemdbg must import there without drgn.
    run = subprocess.run([gdb_bin, "-nx", "-batch", "-x", driver], env=env, capture_output=True,
                         text=True, timeout=GDB_TIMEOUT_S)
    elapsed = time.monotonic() - t0
    assert os.path.exists(result_path), f"gdb failed: {run.stderr[-2000:]}"
    with open(result_path) as f:
        return json.load(f), elapsed


def _check(recipe_name: str, tmp_path):
    drgn = pytest.importorskip("drgn")
    _drgn = pytest.importorskip("_drgn")
    work = str(tmp_path)
    core = os.path.join(work, "vmcore.elf")
    with _guest(recipe_name, work) as (recipe, port, qmp, serial_text):
        qmp.execute("stop")
        qmp.execute("dump-guest-memory", {"paging": False, "protocol": "file:" + core}, timeout=300)
        k, vas = _samples(core, serial_text, random.Random(recipe_name))
        got, elapsed = _run_gdb(recipe["arch"] if recipe["arch"] != "aarch64" else "arm64", port, vas, work)
    assert not got["errors"], got["errors"]
    assert got["mode"].strip().endswith('received: "0"'), "physical mode left on"
    assert len(got["vtop"]) == len(vas) >= 1000

    # Oracle 1: kmemdbg's command line on the dump taken at the same moment.
    cli = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", core, "--json", "vtop", *vas],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)["results"]
    differ = [(a["va"], a, b) for a, b in zip(got["vtop"], want)
              if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True)]
    assert not differ, f"{len(differ)} of {len(vas)} differ; first: {differ[0]}"

    # Oracle 2: drgn's C walker on the dump.
    prog = drgn.Program()
    prog.set_core_dump(core)
    pgd = drgn.Object(prog, "void *", k.tables.root_va)
    mapped = 0
    for obj in got["vtop"]:
        try:
            pa = _drgn._linux_helper_follow_phys(prog, pgd, int(obj["va"], 16))
        except drgn.FaultError:
            pa = None
        assert obj["pa"] == (None if pa is None else f"0x{pa:x}"), obj["va"]
        mapped += pa is not None
    assert mapped > len(vas) // 2
    kinds = {o["region"]["kind"] for o in got["vtop"]}
    assert {"linear", "vmalloc", "kernel-image", "module"} <= kinds, kinds
    owned = sum(o["allocation"] is not None for o in got["vtop"] if o["region"]["kind"] in ("vmalloc", "module"))
    assert owned > 100, "allocations (vmap areas, modules from BTF) missing on the gdb side"
    print(f"{recipe_name}: {len(vas)} addresses ({mapped} mapped) equal over gdb and on the dump; "
          f"gdb side {elapsed:.1f} s (kmemdbg in gdb {got['seconds']:.1f} s)")


@pytest.mark.live
def test_gdb_vtop_equals_cli_on_a_dump_of_the_same_moment_x86_64_4level(tmp_path):
    _check("x86_64-6.12-l4", tmp_path)


@pytest.mark.live
@pytest.mark.slow
def test_gdb_vtop_equals_cli_on_a_dump_of_the_same_moment_arm64_lpa2(tmp_path):
    _check("arm64-6.12-lpa2", tmp_path)
