#!/usr/bin/env python3
"""Build real-kernel vmcore fixtures: python3 vmcores/build.py [RECIPE...|--all]

For each recipe of vmcores/recipes.json: fetch the pinned Debian kernel .deb
(apt-get download, sha256 checked, dpkg -x into the cache: nothing is
installed into the host's /boot), write a busybox initramfs carrying
qemu_fw_cfg.ko, boot QEMU under TCG with the vmcoreinfo device, let /init
print the guest's own reports on the serial console, then dump guest memory
over QMP (ELF, and kdump-zlib reassembled by makedumpfile -R) and write
manifest.json and truth.json.

Results live in ${KMEMDBG_CACHE:-$HOME/.cache/kmemdbg}/vmcores/<recipe>/ and
are reused while the recipe (and this factory's guest scenario) is unchanged.
``--boot N`` makes another boot of the same recipe (fresh KASLR) in
vmcores/<recipe>/boots/<N>/ (see boot_dir()), reusing the .debs, the
unpacked trees and the recipe's built probe module.
Standard library only; Python 3.9+.
"""

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vmcores import guest, truth  # noqa: E402
from vmcores.qmp import QMP, QMPError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES_PATH = os.path.join(HERE, "recipes.json")

# Bump when the build procedure changes what ends up in a recipe's folder,
# so that cached results from an older factory are rebuilt.
FACTORY_VERSION = 4   # 2: the kmemdbg_probe module in every guest, probe sections in truth.json; 3: kernel_ptdump;
# 4: the probe's plant.* lines, truth.json "plants" and "boot", boots (--boot)

BOOT_TIMEOUT_S = 900      # TCG on 2 shared cores; arm64 -cpu max boots in ~10-30 s
DUMP_TIMEOUT_S = 600
APT_TIMEOUT_S = 1800

# Debian packages this factory runs on the host (command -> package).
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "makedumpfile": "makedumpfile",
    "xz": "xz-utils",
    "cpio": "cpio",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
    "make": "make",
    # the probe module is built with the compiler the kernel was built with
    # (Debian's headers name it: $(CROSS_COMPILE)gcc-12)
    "x86_64-linux-gnu-gcc-12": "gcc-12",
    "x86_64-linux-gnu-objcopy": "binutils-x86-64-linux-gnu",
    "aarch64-linux-gnu-gcc-12": "gcc-12-aarch64-linux-gnu",
    "aarch64-linux-gnu-objcopy": "binutils-aarch64-linux-gnu",
}

# The ground-truth probe module (vmcores/probe/), built per recipe against
# the Debian headers packages the recipe names; arm64 ones are cross-built.
PROBE_DIR = os.path.join(HERE, "probe")
PROBE_SOURCES = ("kmemdbg_probe.c", "Kbuild")
PROBE_MODULE = "kmemdbg_probe"
CROSS_COMPILE = {"x86_64": "x86_64-linux-gnu-", "aarch64": "aarch64-linux-gnu-"}
PROBE_TIMEOUT_S = 600

ELF_NAME = "vmcore.elf"
KDUMP_NAME = "vmcore.kdump"


class BuildError(Exception):
    def __init__(self, stage: str, message: str, log: Optional[str] = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.log = log


# --- paths and recipes -----------------------------------------------------------

def cache_root() -> str:
    base = os.environ.get("KMEMDBG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kmemdbg")
    return os.path.abspath(base)


def load_recipes(path: str = RECIPES_PATH) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def recipe_dir(name: str, boot: Optional[int] = None) -> str:
    """The cache folder of recipe ``name`` (``boot``: that extra boot's, see boot_dir())."""
    if boot is not None:
        return boot_dir(name, boot)
    return os.path.join(cache_root(), "vmcores", name)


BOOTS_DIR = "boots"


def boot_dir(name: str, boot: Optional[int]) -> str:
    """The cache folder of boot ``boot`` of recipe ``name``: vmcores/<name>/boots/<boot>/
    (``boot`` None: the recipe's own folder, the one every test uses). Each
    boot is the same recipe booted again, with fresh KASLR; it holds the
    same files as the recipe folder (manifest.json, truth.json, vmcore.elf,
    ...). Whether it is built and current: ``built(name, boot=boot)``."""
    if boot is None:
        return recipe_dir(name)
    if not isinstance(boot, int) or isinstance(boot, bool) or boot < 0:
        raise ValueError("boot index must be an int >= 0, not %r" % (boot,))
    return os.path.join(recipe_dir(name), BOOTS_DIR, str(boot))


def built_boots(name: str, doc: Optional[Dict[str, Any]] = None) -> Dict[int, str]:
    """Boot index -> folder of every current extra boot of recipe ``name``."""
    root = os.path.join(recipe_dir(name), BOOTS_DIR)
    out = {}  # type: Dict[int, str]
    try:
        entries = os.listdir(root)
    except OSError:
        return out
    for fn in entries:
        if fn.isdigit():
            d = built(name, doc, boot=int(fn))
            if d:
                out[int(fn)] = d
    return dict(sorted(out.items()))


def parse_boots(text: str) -> List[int]:
    """``3``, ``1-8`` or ``1,4,7-9`` -> sorted boot indices."""
    out = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError("bad boot index list %r (want N, A-B or a comma list)" % text)
        out.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return sorted(out)


def guest_modules(recipe: Dict[str, Any]) -> List[str]:
    """The modules /init loads, in order: the recipe's, then the probe."""
    return list(recipe.get("modules", [])) + ([PROBE_MODULE] if recipe.get("probe") else [])


def probe_sources() -> Dict[str, str]:
    """sha256 of each probe source file (part of the recipe hash)."""
    return {fn: sha256_file(os.path.join(PROBE_DIR, fn)) for fn in PROBE_SOURCES}


def recipe_hash(name: str, doc: Optional[Dict[str, Any]] = None) -> str:
    """sha256 over what determines a recipe's output: the recipe, the helper
    packages it uses, the guest /init text, the probe's sources and
    FACTORY_VERSION."""
    doc = doc or load_recipes()
    recipe = doc["recipes"][name]
    blob = {
        "recipe": recipe,
        "busybox": doc["helpers"][recipe["busybox"]],
        "init": guest.init_script(guest_modules(recipe)),
        "factory_version": FACTORY_VERSION,
    }
    if recipe.get("probe"):
        blob["probe"] = {"headers": [doc["helpers"][h] for h in recipe["probe"]["headers"]],
                         "sources": probe_sources()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def built(name: str, doc: Optional[Dict[str, Any]] = None, boot: Optional[int] = None) -> Optional[str]:
    """The recipe's cache folder if it holds a complete, current build
    (``doc``: the recipes document, default vmcores/recipes.json; ``boot``:
    that extra boot's folder instead, see boot_dir())."""
    d = recipe_dir(name, boot)
    try:
        with open(os.path.join(d, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    doc = doc or load_recipes()
    if name not in doc["recipes"] or manifest.get("recipe_hash") != recipe_hash(name, doc):
        return None
    for info in manifest.get("files", {}).values():
        p = os.path.join(d, info["path"])
        if not os.path.isfile(p) or os.path.getsize(p) != info["size"]:
            return None
    return d


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd: List[str], stage: str, timeout: float, **kw: Any) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, timeout=timeout, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, **kw)
    except subprocess.TimeoutExpired:
        raise BuildError(stage, "%s timed out after %d s" % (cmd[0], timeout))
    except OSError as exc:
        raise BuildError(stage, "cannot run %s: %s" % (cmd[0], exc))
    if proc.returncode != 0:
        tail = proc.stdout.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise BuildError(stage, "%s exited %d: %s" % (" ".join(cmd[:3]), proc.returncode, tail[0]))
    return proc


# --- host tools -------------------------------------------------------------------

def ensure_host_tools(arches: List[str], probe_arches: Optional[List[str]] = None) -> None:
    """apt-get install whatever this build needs and the host lacks; enable
    the arm64 foreign architecture when an arm64 recipe is built (the arm64
    kernel, headers and busybox .debs are only downloaded and unpacked, never
    installed). ``probe_arches``: architectures whose probe module is built
    (make and the matching gcc-12, a cross compiler for arm64)."""
    needed = ["makedumpfile", "xz", "cpio", "dpkg-deb", "apt-get"]
    if "x86_64" in arches:
        needed.append("qemu-system-x86_64")
    if "aarch64" in arches:
        needed.append("qemu-system-aarch64")
    for arch in probe_arches or []:
        needed += ["make", CROSS_COMPILE[arch] + "gcc-12", CROSS_COMPILE[arch] + "objcopy"]
    missing = sorted({HOST_TOOLS[t] for t in needed if shutil.which(t) is None})
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if "aarch64" in arches:
        foreign = run(["dpkg", "--print-foreign-architectures"], "host-tools", 60).stdout.decode().split()
        if "arm64" not in foreign:
            run(["dpkg", "--add-architecture", "arm64"], "host-tools", 60)
            run(["apt-get", "update", "-q"], "host-tools", APT_TIMEOUT_S, env=env)
    if missing:
        print("installing host tools: %s" % " ".join(missing), flush=True)
        try:
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
                "host-tools", APT_TIMEOUT_S, env=env)
        except BuildError:
            run(["apt-get", "update", "-q"], "host-tools", APT_TIMEOUT_S, env=env)
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
                "host-tools", APT_TIMEOUT_S, env=env)


def qemu_version(binary: str) -> str:
    out = run([binary, "--version"], "host-tools", 60).stdout.decode()
    return out.splitlines()[0].strip() if out else "?"


# --- .debs --------------------------------------------------------------------------

def deb_filename(pkg: Dict[str, str]) -> str:
    return "%s_%s_%s.deb" % (pkg["package"], pkg["version"].replace(":", "%3a"), pkg["arch"])


def fetch_deb(pkg: Dict[str, str], timings: Dict[str, float]) -> str:
    """The verified .deb in the cache, downloaded with apt-get if absent."""
    debs = os.path.join(cache_root(), "debs")
    os.makedirs(debs, exist_ok=True)
    path = os.path.join(debs, deb_filename(pkg))
    spec = "%s:%s=%s" % (pkg["package"], pkg["arch"], pkg["version"])
    t0 = time.monotonic()
    if not os.path.isfile(path):
        cmd = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", spec]
        try:
            run(cmd, "download", APT_TIMEOUT_S, cwd=debs)
        except BuildError:
            # a stale package list is the usual cause; refresh it once
            run(["apt-get", "update", "-q"], "download", APT_TIMEOUT_S)
            run(cmd, "download", APT_TIMEOUT_S, cwd=debs)
        if not os.path.isfile(path):
            raise BuildError("download", "apt-get download %s left no %s" % (spec, os.path.basename(path)))
    timings["download"] = timings.get("download", 0.0) + time.monotonic() - t0
    t0 = time.monotonic()
    digest = sha256_file(path)
    timings["verify"] = timings.get("verify", 0.0) + time.monotonic() - t0
    if digest != pkg["sha256"]:
        os.rename(path, path + ".bad-sha256")
        raise BuildError("verify", "%s has sha256 %s, recipe pins %s (moved aside as .bad-sha256)"
                         % (os.path.basename(path), digest, pkg["sha256"]))
    return path


def unpack_deb(deb: str, timings: Dict[str, float]) -> str:
    """dpkg -x into the cache (once per .deb)."""
    dest = os.path.join(cache_root(), "unpacked", os.path.basename(deb)[:-4])
    t0 = time.monotonic()
    if not os.path.isfile(os.path.join(dest, ".complete")):
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(tmp)
        run(["dpkg-deb", "-x", deb, tmp], "unpack", 600)
        open(os.path.join(tmp, ".complete"), "w").close()
        os.rename(tmp, dest)
    timings["unpack"] = timings.get("unpack", 0.0) + time.monotonic() - t0
    return dest


# --- the probe module ----------------------------------------------------------------

def headers_tree(pkgs: List[Dict[str, str]], release: str, timings: Dict[str, float]) -> str:
    """The kernel build tree for ``release``: the headers .debs (flavour,
    -common, linux-kbuild) unpacked together into one folder of the cache,
    never installed. Returns the folder that ``make -C`` takes."""
    debs = [fetch_deb(p, timings) for p in pkgs]
    key = hashlib.sha256("\n".join(sorted(os.path.basename(d) for d in debs)).encode()).hexdigest()[:12]
    root = os.path.join(cache_root(), "unpacked", "kbuild-%s-%s" % (release, key))
    t0 = time.monotonic()
    if not os.path.isfile(os.path.join(root, ".complete")):
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(tmp)
        for deb in debs:
            run(["dpkg-deb", "-x", deb, tmp], "unpack", 600)
        kdir = os.path.join(tmp, "usr", "src", "linux-headers-" + release)
        if not os.path.isfile(os.path.join(kdir, "Makefile")):
            raise BuildError("unpack", "the headers packages hold no usr/src/linux-headers-%s/Makefile" % release)
        shutil.copyfile(os.path.join(kdir, "Makefile"), os.path.join(kdir, "Makefile.debian"))
        open(os.path.join(tmp, ".complete"), "w").close()
        os.rename(tmp, root)
    kdir = os.path.join(root, "usr", "src", "linux-headers-" + release)
    # Debian's flavour Makefile is one line, "include /usr/src/linux-headers-
    # <version>-common/Makefile": point it at the -common tree unpacked here
    # (rewritten each time, so that a moved cache still builds). The
    # scripts/ and tools/ links into linux-kbuild are relative already.
    with open(os.path.join(kdir, "Makefile.debian")) as f:
        text = f.read()
    with open(os.path.join(kdir, "Makefile"), "w") as f:
        f.write(re.sub(r"^include /usr/src/", "include %s/usr/src/" % root, text, flags=re.M))
    timings["unpack"] = timings.get("unpack", 0.0) + time.monotonic() - t0
    return kdir


def reuse_probe(name: str, doc: Dict[str, Any], work: str, timings: Dict[str, float]) -> Optional[bytes]:
    """The probe module of the recipe's own current build (same sources and
    headers: its recipe_hash covers them), copied into ``work``; None if the
    recipe itself is not built or is stale."""
    d = built(name, doc)
    if d is None:
        return None
    t0 = time.monotonic()
    path = os.path.join(d, PROBE_MODULE + ".ko")
    with open(os.path.join(d, "manifest.json")) as f:
        want = json.load(f).get("files", {}).get(PROBE_MODULE + ".ko", {}).get("sha256")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != want:
        return None
    with open(os.path.join(work, PROBE_MODULE + ".ko"), "wb") as f:
        f.write(data)
    with open(os.path.join(work, "probe-build.log"), "w") as f:
        f.write("reused %s.ko of the recipe's own build (sha256 %s)\n" % (PROBE_MODULE, want))
    timings["probe"] = time.monotonic() - t0
    return data


def build_probe(recipe: Dict[str, Any], doc: Dict[str, Any], work: str, timings: Dict[str, float]) -> bytes:
    """Build vmcores/probe against the recipe's headers; the .ko (debug info
    stripped) is also kept as ``kmemdbg_probe.ko`` in the recipe folder."""
    release = recipe["kernel"]["release"]
    kdir = headers_tree([doc["helpers"][h] for h in recipe["probe"]["headers"]], release, timings)
    t0 = time.monotonic()
    src = tempfile.mkdtemp(prefix="kmemdbg-probe-")  # kbuild dislikes spaces and colons in M=
    try:
        for fn in PROBE_SOURCES:
            shutil.copyfile(os.path.join(PROBE_DIR, fn), os.path.join(src, fn))
        # CONFIG_DEBUG_INFO_BTF_MODULES= : no BTF for the probe, so pahole is not needed.
        # CROSS_COMPILE: 6.12's headers set it themselves; 6.1's arm64 ones only
        # when dpkg says the build is a cross build, which it cannot say here.
        cmd = ["make", "-C", kdir, "M=" + src, "modules", "CONFIG_DEBUG_INFO_BTF_MODULES=",
               "CROSS_COMPILE=" + CROSS_COMPILE[recipe["arch"]]]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=PROBE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError("probe", "make of the probe module failed: %s" % exc)
        with open(os.path.join(work, "probe-build.log"), "wb") as f:
            f.write(b" ".join(c.encode() for c in cmd) + b"\n" + proc.stdout)
        ko = os.path.join(src, PROBE_MODULE + ".ko")
        if proc.returncode != 0 or not os.path.isfile(ko):
            errors = [ln for ln in proc.stdout.decode(errors="replace").splitlines() if "error" in ln.lower()]
            raise BuildError("probe", "make of the probe module exited %d: %s (see %s)"
                             % (proc.returncode, (errors or ["?"])[0].strip(),
                                os.path.join(work, "probe-build.log")))
        run([CROSS_COMPILE[recipe["arch"]] + "objcopy", "--strip-debug", ko], "probe", 120)
        with open(ko, "rb") as f:
            data = f.read()
    finally:
        shutil.rmtree(src, ignore_errors=True)
    vermagic = guest.modinfo(data).get("vermagic", "")
    if vermagic.split(" ")[0] != release:
        raise BuildError("probe", "the probe was built for %r, the kernel is %s" % (vermagic, release))
    with open(os.path.join(work, PROBE_MODULE + ".ko"), "wb") as f:
        f.write(data)
    timings["probe"] = time.monotonic() - t0
    return data


def check_probe(facts: Dict[str, Any], serial: str) -> None:
    """The probe ran to its end, stayed loaded and planted every kind of
    stored misuse with its controls."""
    names = [e["name"] for e in facts["probe"]]
    if "end" not in names:
        raise BuildError("probe", "the probe printed %d lines and no 'end' line (insmod failed?)" % len(names),
                         serial)
    if not any(m["name"] == PROBE_MODULE for m in facts["modules"]):
        raise BuildError("probe", "%s is not in /proc/modules" % PROBE_MODULE, serial)
    # (".run" and "vmap.page" lines repeat by design; the plants' names are ids)
    ids = [n for n in names if n.startswith("plant.")]
    if len(set(ids)) != len(ids):
        dup = sorted({n for n in ids if ids.count(n) > 1})
        raise BuildError("probe", "the probe printed these plant ids more than once: %s" % ", ".join(dup[:5]),
                         serial)
    plants = facts["plants"]
    if plants["errors"]:
        raise BuildError("probe", "the probe could not plant everything: %s" % plants["errors"][0], serial)
    summary = plants["summary"] or {}
    counted = int(summary.get("bogus", "0x0"), 16) + int(summary.get("controls", "0x0"), 16)
    if not plants["plants"] or counted != len(plants["plants"]):
        raise BuildError("probe", "the probe printed %d plant lines, its count line says %d"
                         % (len(plants["plants"]), counted), serial)
    missing = ["%s %s" % (kind, "control" if control else "bogus")
               for kind in truth.PLANT_KINDS for control in (False, True)
               if not any(p["kind"] == kind and p["control"] == control for p in plants["plants"])]
    if missing:
        raise BuildError("probe", "no plant of kind %s" % ", ".join(missing), serial)


# --- QEMU -------------------------------------------------------------------------

def qemu_command(recipe: Dict[str, Any], kernel: str, initrd: str, serial: str, qmp_sock: str) -> List[str]:
    q = recipe["qemu"]
    cmd = [q["binary"], "-accel", "tcg"]
    if q.get("machine"):
        cmd += ["-M", q["machine"]]
    cmd += ["-cpu", q["cpu"], "-m", q["memory"], "-smp", str(q.get("smp", 1)),
            "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", "file:" + serial,
            "-kernel", kernel, "-initrd", initrd, "-append", recipe["cmdline"],
            "-device", "vmcoreinfo",
            "-qmp", "unix:%s,server=on,wait=off" % qmp_sock]
    return cmd


def stop_process(proc: "subprocess.Popen[bytes]") -> None:
    """Kill the QEMU this build started (by its own pid) and reap it."""
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def boot_and_dump(name: str, recipe: Dict[str, Any], kernel: str, initrd: str,
                  work: str, timings: Dict[str, float]) -> None:
    serial = os.path.join(work, "serial.log")
    qemu_log = os.path.join(work, "qemu.log")
    sockdir = tempfile.mkdtemp(prefix="kmemdbg-qmp-")  # short path: sun_path is 108 bytes
    sock = os.path.join(sockdir, "qmp.sock")
    cmd = qemu_command(recipe, kernel, initrd, serial, sock)
    with open(os.path.join(work, "qemu-cmdline.txt"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    log_f = open(qemu_log, "wb")
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_f, stderr=subprocess.STDOUT)
    except OSError as exc:
        log_f.close()
        raise BuildError("boot", "cannot start %s: %s" % (cmd[0], exc), serial)
    stage = "boot"
    try:
        deadline = t0 + BOOT_TIMEOUT_S
        while True:
            text = _read_text(serial)
            if guest.MARK_READY in text:
                break
            for bad in ("Kernel panic", "end Kernel panic"):
                if bad in text:
                    raise BuildError(stage, "guest kernel panicked", serial)
            if proc.poll() is not None:
                raise BuildError(stage, "QEMU exited with status %d before the guest was ready (see %s)"
                                 % (proc.returncode, qemu_log), serial)
            if time.monotonic() > deadline:
                raise BuildError(stage, "guest not ready after %d s" % BOOT_TIMEOUT_S, serial)
            time.sleep(0.5)
        timings["boot"] = time.monotonic() - t0

        stage = "qmp"
        qmp = QMP(sock)
        try:
            # Stop the guest once, so the ELF and the kdump file hold the same memory.
            qmp.execute("stop")
            stage = "dump-elf"
            t1 = time.monotonic()
            qmp.execute("dump-guest-memory", {"paging": False, "protocol": "file:" + os.path.join(work, ELF_NAME)},
                        timeout=DUMP_TIMEOUT_S)
            timings["dump_elf"] = time.monotonic() - t1
            stage = "dump-kdump"
            t1 = time.monotonic()
            flat = os.path.join(work, "vmcore.kdump.flat")
            qmp.execute("dump-guest-memory", {"paging": False, "protocol": "file:" + flat,
                                              "format": "kdump-zlib"}, timeout=DUMP_TIMEOUT_S)
            timings["dump_kdump"] = time.monotonic() - t1
            stage = "quit"
            try:
                qmp.execute("quit", timeout=30)
            except QMPError:
                pass  # the connection may close before the reply arrives
        finally:
            qmp.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise BuildError(stage, "QEMU did not quit", serial)
    except QMPError as exc:
        raise BuildError(stage, str(exc), serial)
    finally:
        stop_process(proc)
        log_f.close()
        shutil.rmtree(sockdir, ignore_errors=True)

    t1 = time.monotonic()
    flat = os.path.join(work, "vmcore.kdump.flat")
    out = os.path.join(work, KDUMP_NAME)
    try:
        with open(flat, "rb") as fin:
            run(["makedumpfile", "-R", out], "reassemble", 600, stdin=fin)
    finally:
        if os.path.exists(flat):
            os.remove(flat)
    timings["reassemble"] = time.monotonic() - t1


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --- one recipe ----------------------------------------------------------------------

def build_recipe(name: str, doc: Dict[str, Any], force: bool = False, boot: Optional[int] = None) -> Dict[str, Any]:
    """Build recipe ``name`` into its cache folder (``boot``: another boot of
    it into boot_dir(name, boot)); returns the manifest."""
    recipe = doc["recipes"][name]
    final = recipe_dir(name, boot)
    label = name if boot is None else "%s boot %d" % (name, boot)
    if not force and built(name, doc, boot):
        print("%s: up to date in %s (nothing to do)" % (label, final), flush=True)
        with open(os.path.join(final, "manifest.json")) as f:
            return dict(json.load(f), cached=True)
    t_start = time.monotonic()
    timings = {}  # type: Dict[str, float]
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    work = final + ".work"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    # stage: download + verify + unpack
    kpkg = dict(recipe["kernel"])
    bpkg = dict(doc["helpers"][recipe["busybox"]])
    kdeb = fetch_deb(kpkg, timings)
    bdeb = fetch_deb(bpkg, timings)
    kroot = unpack_deb(kdeb, timings)
    broot = unpack_deb(bdeb, timings)
    release = kpkg["release"]
    kernel = os.path.join(kroot, "boot", "vmlinuz-" + release)
    if not os.path.isfile(kernel):
        raise BuildError("unpack", "no boot/vmlinuz-%s in %s" % (release, os.path.basename(kdeb)))

    # stage: initramfs
    t0 = time.monotonic()
    try:
        mods = guest.resolve_modules(os.path.join(kroot, "lib", "modules", release), recipe.get("modules", []))
        with open(os.path.join(broot, bpkg["member"]), "rb") as f:
            busybox = f.read()
    except (OSError, RuntimeError, ValueError) as exc:
        raise BuildError("initramfs", str(exc))
    if recipe.get("probe"):
        ko = reuse_probe(name, doc, work, timings) if boot is not None else None
        mods.append((PROBE_MODULE, ko if ko is not None else build_probe(recipe, doc, work, timings)))
        t0 = time.monotonic()
    initrd = os.path.join(work, "initrd.gz")
    with open(initrd, "wb") as f:
        f.write(guest.build_initramfs(busybox, mods))
    # (Debian's boot/System.map-* is a one-line placeholder: the real one is in -dbg.)
    shutil.copyfile(os.path.join(kroot, "boot", "config-" + release), os.path.join(work, "config"))
    timings["initramfs"] = time.monotonic() - t0

    # stage: boot + dump
    boot_and_dump(name, recipe, kernel, initrd, work, timings)

    # stage: truth
    t0 = time.monotonic()
    serial = os.path.join(work, "serial.log")
    sec = guest.sections(_read_text(serial))
    elf_path = os.path.join(work, ELF_NAME)
    try:
        core = truth.read_elf_core(elf_path)
    except (OSError, ValueError) as exc:
        raise BuildError("truth", "cannot read ELF dump: %s" % exc, serial)
    vmci = next((d.rstrip(b"\x00").decode("ascii", "replace")
                 for n, _t, d in core["notes"] if n == "VMCOREINFO"), None)
    if vmci is None:
        raise BuildError("truth", "the ELF dump has no VMCOREINFO note (qemu_fw_cfg not loaded?)", serial)
    facts = truth.build_truth(name, sec, vmci, core["loads"])
    facts["boot"] = boot
    if recipe.get("probe"):
        check_probe(facts, serial)
        with open(os.path.join(work, PROBE_MODULE + ".ko"), "rb") as f:
            ko = f.read()
        facts["probe_module"] = {
            "name": PROBE_MODULE, "sha256": hashlib.sha256(ko).hexdigest(), "size": len(ko),
            "vermagic": guest.modinfo(ko).get("vermagic"),
            "headers": ["%s=%s" % (doc["helpers"][h]["package"], doc["helpers"][h]["version"])
                        for h in recipe["probe"]["headers"]],
            "sources": probe_sources(),
        }
    for section in ("vmallocinfo", "modules", "iomem", "meminfo"):
        if not sec.get(section):
            raise BuildError("truth", "the guest printed no %s section" % section, serial)
    with open(os.path.join(work, "dmesg.txt"), "w") as f:
        f.write("\n".join(sec.get("dmesg", [])) + "\n")
    with open(os.path.join(work, "vmcoreinfo.txt"), "w") as f:
        f.write(vmci)
    with open(os.path.join(work, "truth.json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
    wrong = {k: (facts["vmcoreinfo"].get(k), v) for k, v in recipe.get("expect", {}).items()
             if facts["vmcoreinfo"].get(k) != v}
    if wrong:
        raise BuildError("expect", "VMCOREINFO differs from the recipe's expectations: %s"
                         % ", ".join("%s=%r (want %r)" % (k, got, want) for k, (got, want) in sorted(wrong.items())),
                         serial)
    timings["truth"] = time.monotonic() - t0

    # stage: manifest (sha256 of every file), then publish atomically
    t0 = time.monotonic()
    files = {}
    for fn in sorted(os.listdir(work)):
        p = os.path.join(work, fn)
        if os.path.isfile(p):
            files[fn] = {"path": fn, "size": os.path.getsize(p), "sha256": sha256_file(p)}
    timings["manifest"] = time.monotonic() - t0
    timings["total"] = time.monotonic() - t_start
    manifest = {
        "recipe": name,
        "boot": boot,
        "recipe_hash": recipe_hash(name, doc),
        "factory_version": FACTORY_VERSION,
        "recipe_content": recipe,
        "busybox": bpkg,
        "kernel_unpacked": os.path.relpath(kroot, cache_root()),
        "vmlinuz": os.path.relpath(kernel, cache_root()),
        "files": files,
        "elf_dump": ELF_NAME,
        "kdump_dump": KDUMP_NAME,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "qemu_version": qemu_version(recipe["qemu"]["binary"]),
        "makedumpfile_version": run(["makedumpfile", "-v"], "manifest", 60).stdout.decode().splitlines()[0].strip(),
        "host_python": platform.python_version(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "vmcoreinfo_summary": {k: facts["vmcoreinfo"].get(k) for k in SUMMARY_KEYS
                               if k in facts["vmcoreinfo"]},
    }
    with open(os.path.join(work, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    if boot is None and os.path.isdir(os.path.join(final, BOOTS_DIR)):
        # the extra boots live inside the recipe folder: keep them (each has
        # its own manifest and recipe_hash, so built() still judges them)
        os.rename(os.path.join(final, BOOTS_DIR), os.path.join(work, BOOTS_DIR))
    shutil.rmtree(final, ignore_errors=True)
    os.rename(work, final)
    return manifest


SUMMARY_KEYS = ("OSRELEASE", "PAGESIZE", "NUMBER(VA_BITS)", "NUMBER(TCR_EL1_T1SZ)", "NUMBER(PHYS_OFFSET)",
                "NUMBER(kimage_voffset)", "NUMBER(pgtable_l5_enabled)", "NUMBER(phys_base)", "KERNELOFFSET",
                "SYMBOL(swapper_pg_dir)", "NUMBER(VMALLOC_START)")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="*", help="recipe names (see --list)")
    ap.add_argument("--all", action="store_true", help="build every recipe, in file order")
    ap.add_argument("--list", action="store_true", help="list recipes and whether each is built")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    ap.add_argument("--boot", metavar="N", type=parse_boots,
                    help="build extra boot(s) N (or A-B, or a comma list) of each recipe, each with fresh "
                         "KASLR, into <recipe>/boots/N/ in the cache (default: the recipe's own folder)")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing host tools")
    ap.add_argument("--recipes-file", default=RECIPES_PATH, metavar="JSON",
                    help="another recipes file (for trying a recipe out; default: vmcores/recipes.json)")
    args = ap.parse_args(argv)
    doc = load_recipes(args.recipes_file)
    names = list(doc["recipes"])
    if args.list:
        for n in names:
            if args.boot is None:
                d = built(n, doc)
                print("%-20s %s" % (n, d if d else "not built"))
                for b, bd in built_boots(n, doc).items():
                    print("%-20s %s" % ("  boot %d" % b, bd))
            else:
                for b in args.boot:
                    d = built(n, doc, b)
                    print("%-20s %s" % ("%s boot %d" % (n, b), d if d else "not built"))
        return 0
    todo = names if args.all else args.recipes
    unknown = [n for n in todo if n not in doc["recipes"]]
    if unknown or not todo:
        ap.error("unknown recipe(s) %s; choose from: %s" % (", ".join(unknown), ", ".join(names))
                 if unknown else "name a recipe or pass --all")
    failed = 0
    boots = args.boot if args.boot is not None else [None]   # type: List[Optional[int]]
    jobs = [(n, b) for n in todo for b in boots]
    if not args.no_install and not all(built(n, doc, b) for n, b in jobs):
        try:
            ensure_host_tools(sorted({doc["recipes"][n]["arch"] for n in todo}),
                              sorted({doc["recipes"][n]["arch"] for n in todo if doc["recipes"][n].get("probe")}))
        except BuildError as exc:
            print("build.py: host tools: failed at stage %s: %s" % (exc.stage, exc.message), file=sys.stderr)
            return 1
    # One factory run at a time on this machine: one QEMU, one writer per .work folder.
    os.makedirs(os.path.join(cache_root(), "vmcores"), exist_ok=True)
    lock = open(os.path.join(cache_root(), "vmcores", ".build.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("build.py: another build.py is running on this cache; waiting for it", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    for n, b in jobs:
        label = n if b is None else "%s boot %d" % (n, b)
        try:
            m = build_recipe(n, doc, force=args.force, boot=b)
        except BuildError as exc:
            failed += 1
            log = exc.log or os.path.join(recipe_dir(n, b) + ".work", "serial.log")
            print("build.py: recipe %s: failed at stage %s: %s (serial log: %s)"
                  % (label, exc.stage, exc.message.replace("\n", " "), log), file=sys.stderr, flush=True)
            continue
        if m.get("cached"):
            continue
        t = m["timings_s"]
        print("%s: built in %s (%s)" % (label, recipe_dir(n, b), ", ".join("%s %.1fs" % kv for kv in t.items())),
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
