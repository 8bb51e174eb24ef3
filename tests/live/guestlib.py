"""Running one QEMU guest for a live test: initramfs, boot, serial log, cleanup.

The kernel, its modules and the probe module come from a recipe that
``vmcores/build.py`` has built (its unpacked .deb and ``kmemdbg_probe.ko`` in
the recipe cache). QEMU always runs under TCG, one at a time: the factory's
lock file in the cache is held for the guest's whole life, so a concurrent
``build.py`` waits. The guest is killed by its own pid on every path.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

import pytest

from vmcores import build, guest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def recipe_files(recipe: str) -> Dict[str, str]:
    """Paths of a built recipe's kernel, module tree and probe .ko, or skip."""
    d = build.built(recipe)
    if d is None:
        pytest.skip("recipe %s is not built (or is stale): run `python3 vmcores/build.py %s`" % (recipe, recipe))
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    rec = manifest["recipe_content"]
    root = build.cache_root()
    binary = rec["qemu"]["binary"]
    if shutil.which(binary) is None:
        pytest.skip("%s is not installed (apt-get install %s)" % (binary, build.HOST_TOOLS[binary]))
    probe = os.path.join(d, build.PROBE_MODULE + ".ko")
    return {
        "dir": d,
        "vmlinuz": os.path.join(root, manifest["vmlinuz"]),
        "modroot": os.path.join(root, manifest["kernel_unpacked"], "lib", "modules", rec["kernel"]["release"]),
        "probe": probe if os.path.exists(probe) else "",
        "busybox": os.path.join(root, "unpacked", build.deb_filename(manifest["busybox"])[:-4],
                                manifest["busybox"]["member"]),
    }


def initramfs(files: Dict[str, str], modules: List[str], init: str, probe: bool) -> bytes:
    """busybox, ``init`` as /init, ``modules`` (with their dependencies,
    as /lib/modules/kmemdbg/<name>.ko) and the probe if asked for."""
    mods = guest.resolve_modules(files["modroot"], modules)
    if probe and files["probe"]:
        with open(files["probe"], "rb") as f:
            mods.append((build.PROBE_MODULE, f.read()))
    with open(files["busybox"], "rb") as f:
        busybox = f.read()
    c = guest.Newc()
    for d in ("bin", "dev", "proc", "sys", "tmp", "sbin", "usr", "usr/bin", "usr/sbin", "lib",
              "lib/modules", "lib/modules/kmemdbg", "host"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox, 0o755)
    c.file("init", init.replace("@MODULES@", " ".join(n for n, _ in mods)).encode(), 0o755)
    for name, ko in mods:
        c.file("lib/modules/kmemdbg/%s.ko" % name, ko)
    return c.finish_gzip()


def recipe_guest(recipe: str, prefix: str, init: str, modules: List[str], qmp_sockets: List[str],
                 smp: Optional[int] = None, probe: bool = True):
    """(argv, recipe content, workdir) to boot ``recipe``'s kernel with ``init``.

    The initramfs holds busybox, ``modules`` and (``probe``) the probe module;
    each name in ``qmp_sockets`` becomes a QMP socket in the work directory.
    Skips when the recipe is not built.
    """
    files = recipe_files(recipe)
    with open(os.path.join(files["dir"], "manifest.json")) as f:
        rec = json.load(f)["recipe_content"]
    q = rec["qemu"]
    wd = workdir(prefix)
    initrd = os.path.join(wd, "initrd.gz")
    with open(initrd, "wb") as f:
        f.write(initramfs(files, modules, init, probe=probe))
    argv = [q["binary"], "-accel", "tcg", "-M", q["machine"], "-cpu", q["cpu"], "-m", q["memory"],
            "-smp", str(smp or q.get("smp", 1)), "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", files["vmlinuz"], "-initrd", initrd, "-append", rec["cmdline"],
            "-device", "vmcoreinfo"]
    for name in qmp_sockets:
        argv += ["-qmp", "unix:%s,server=on,wait=off" % os.path.join(wd, name)]
    return argv, rec, wd


class Guest:
    """One QEMU process. Use as a context manager: QEMU is killed on exit."""

    def __init__(self, argv: List[str], workdir: str) -> None:
        self.workdir = workdir
        self.serial = os.path.join(workdir, "serial.log")
        self.argv = argv + ["-serial", "file:" + self.serial]
        self.proc = None  # type: Optional[subprocess.Popen]
        self._lock = None

    def __enter__(self) -> "Guest":
        os.makedirs(os.path.join(build.cache_root(), "vmcores"), exist_ok=True)
        self._lock = open(os.path.join(build.cache_root(), "vmcores", ".build.lock"), "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)   # one QEMU at a time on this machine
        self._log = open(os.path.join(self.workdir, "qemu.log"), "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()        # our own QEMU, by its pid
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self._log.close()
            if self._lock is not None:
                self._lock.close()

    def text(self) -> str:
        try:
            with open(self.serial, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for(self, marker: str, timeout: float) -> str:
        """The serial log once it holds ``marker``; fails on panic, exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if marker in text:
                return text
            if "Kernel panic" in text:
                pytest.fail("guest kernel panicked (serial log: %s); tail:\n%s" % (self.serial, tail(text)))
            if self.proc.poll() is not None:
                pytest.fail("QEMU exited (%d) before %s (serial log: %s); tail:\n%s"
                            % (self.proc.returncode, marker, self.serial, tail(text)))
            if time.monotonic() > deadline:
                pytest.fail("no %s after %d s (serial log: %s); tail:\n%s"
                            % (marker, timeout, self.serial, tail(text)))
            time.sleep(0.3)


def tail(text: str, n: int = 25) -> str:
    return "\n".join(text.splitlines()[-n:])


def section(text: str, name: str) -> List[str]:
    return guest.sections(text).get(name, [])


def workdir(prefix: str) -> str:
    """A short temporary folder (QMP socket paths must stay under 108 bytes)."""
    return tempfile.mkdtemp(prefix=prefix)


def hex_or_none(value: Optional[str]) -> Optional[int]:
    return None if value is None else int(value, 16)


def gva2gpa(reply: str) -> Optional[int]:
    """The physical address in the human monitor's ``gva2gpa`` answer, None if unmapped."""
    m = re.search(r"gpa:\s*(0x[0-9a-fA-F]+)", reply)
    return int(m.group(1), 16) if m else None
