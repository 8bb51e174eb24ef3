"""The Python side of kmemdbg's crash extension: one child process per crash session.

The shim starts ``python3 -c BOOTSTRAP`` with the pipe from crash on fd 3
and the pipe to crash on fd 4, and the bootstrap calls :func:`serve`.  For
each ``kmemdbg ARGS`` typed in crash the child parses it with the command
table's crash parser (:mod:`kmemdbg.commands.table`) and runs it with the
table's runner (:func:`kmemdbg.commands.execute.execute`) on the Kernel crash
has open, and sends the output back for crash's ``fp`` (stdout) and error
stream (stderr), then the exit status.

``check --crash`` adds, per address, crash's own ``kvtop()`` answer and
whether it agrees with the page tables (:func:`crash_verdict`).
"""
from __future__ import annotations

import io
import json
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

from ..commands import table
from ..commands.execute import execute
from ..errors import KmemdbgError
from ..parse import parse_address, parse_number
from ..sources.crash_pipe import (DONE, ERR, ERROR, HELLO, OUT, RUN, TESTFATAL, CrashGoneError, CrashLink,
                                  CrashTranslation)

#: The commands crash offers: the command table's subset for this front end.
COMMANDS = tuple(c.name for c in table.offered(table.CRASH))
SOURCE_OPTIONS = ("--core", "--kcore", "--qmp", "--vmlinux", "--allow-truncated")
#: Bytes of output per frame sent to crash.
CHUNK = 1 << 16
TEST_COMMANDS = ("__die", "__raise", "__sleep", "__fatal", "__read", "__stats")


class Child:
    """The child's state: the pipe, and the Kernel built at the first command."""

    def __init__(self, link: CrashLink) -> None:
        self.link = link
        self.kernel = None
        self.startup_s: Optional[float] = None
        #: (argv, seconds, round trips) of each command so far
        self.history: List[Tuple[List[str], float, int]] = []

    def get_kernel(self):
        from .target import open_crash

        if self.kernel is not None and self.kernel.memory.live:
            self.kernel = None          # a live kernel moves on between commands
        if self.kernel is None:
            t0 = time.monotonic()
            self.kernel = open_crash(self.link)
            self.startup_s = time.monotonic() - t0
        return self.kernel


def _split(argv: List[str]) -> Tuple[List[str], Optional[str], bool]:
    """(argv with --json first and --crash removed, the command, whether --crash was given)."""
    rest = [a for a in argv if a != "--json"]
    lead = ["--json"] if len(rest) != len(argv) else []
    command = next((a for a in rest if not a.startswith("-")), None)
    cross = False
    if command == "check" and "--crash" in rest:
        rest = [a for a in rest if a != "--crash"]
        cross = True
    return lead + rest, command, cross


def crash_verdict(kernel, va: int, crash: CrashTranslation) -> Dict:
    """Does crash's translation of ``va`` agree with kmemdbg's walk of the page tables?

    ``reason`` (None when they agree): ``arithmetic-for-unmapped`` (crash
    gives a physical address the tables do not map), ``arithmetic-for-non-linear``
    (crash's answer is ``__pa()`` arithmetic, the tables map elsewhere),
    ``huge-page`` (same huge page, different offset), ``different-frame``,
    ``crash-cannot-translate`` (the tables map it, crash says it cannot).
    """
    from .. import render

    walk = kernel.walker.walk(va)
    region = kernel.classify(va).region
    linear_pa = kernel.check_virt_to_phys(va).linear_pa
    reason, why = None, ""
    if crash.pa is None and walk.pa is None:
        why = "neither crash nor the page tables translate it"
    elif crash.pa is None:
        reason = "crash-cannot-translate"
        why = f"the page tables map it to {render.hexa(walk.pa)}, crash's kvtop() fails"
    elif walk.pa is None:
        reason = "arithmetic-for-unmapped"
        why = (f"crash answers {render.hexa(crash.pa)} by arithmetic for this {region.kind} address, "
               f"but the page tables do not map it ({walk.fault.message(va)})")
        if crash.walk_pa is None:
            why += "; crash's own walk fails too"
    elif crash.pa == walk.pa:
        why = "crash and the page tables agree"
    elif linear_pa is not None and crash.pa == linear_pa:
        reason = "arithmetic-for-non-linear"
        why = (f"crash answers {render.hexa(crash.pa)}, the __pa() arithmetic, for this {region.kind} "
               f"address, which the page tables map to {render.hexa(walk.pa)}")
    elif walk.page_size and walk.page_size > 4096 and (crash.pa ^ walk.pa) < walk.page_size:
        reason = "huge-page"
        why = (f"crash answers {render.hexa(crash.pa)} inside the same {render.size_text(walk.page_size)} "
               f"page the tables map to {render.hexa(walk.pa)}, at another offset")
    else:
        reason = "different-frame"
        why = f"crash answers {render.hexa(crash.pa)}, the page tables map it to {render.hexa(walk.pa)}"
    return {"pa": render.hexa(crash.pa) if crash.pa is not None else None,
            "walk_pa": render.hexa(crash.walk_pa) if crash.walk_pa is not None else None,
            "walk": list(crash.walk_lines), "agrees": reason is None and (crash.pa == walk.pa),
            "reason": reason, "explanation": why}


def _cross_check(child: Child, args, out_text: str) -> str:
    """``check --crash``: the check command's output plus crash's own answers."""
    kernel = child.kernel
    json_mode = bool(args.json)
    vas = [parse_address(a.partition("=")[0], kernel) for a in args.addresses]
    verdicts = [crash_verdict(kernel, va, child.link.kvtop(va)) for va in vas]
    if json_mode:
        doc = json.loads(out_text)  # the kmemdbg/1 envelope
        for item, verdict in zip(doc["results"], verdicts):
            item["crash"] = verdict
        return json.dumps(doc, indent=1) + "\n"
    lines = [out_text.rstrip("\n"), ""]
    for va, v in zip(vas, verdicts):
        tag = "agrees" if v["agrees"] else (v["reason"] or "no answer")
        lines.append(f"crash 0x{va:016x}: {tag}: {v['explanation']}")
    return "\n".join(lines) + "\n"


def _test_hook(child: Child, command: str, argv: List[str]) -> Tuple[int, str, str]:
    """Hidden commands the tests use to exercise the shim's bad paths (KMEMDBG_CRASH_TEST set)."""
    if command == "__die":
        os._exit(3)
    if command == "__raise":
        raise RuntimeError("a test error in the Python child")
    if command == "__sleep":
        mark = os.environ.get("KMEMDBG_CRASH_TEST_SLEEPING")
        if mark:
            open(mark, "w").close()
        while True:                     # Ctrl-C arrives as a flag, raised at the next request
            child.link.source()
            time.sleep(0.05)
    if command == "__read":
        try:
            data = child.get_kernel().memory.read(parse_number(argv[-1]), 8)
        except KmemdbgError as exc:
            return 1, "", f"kmemdbg: {exc}\n"
        return 0, data.hex() + "\n", ""
    if command == "__fatal":
        child.link.request(TESTFATAL)
        return 1, "", "kmemdbg: the FATAL test hook returned\n"
    stats = {"round_trips": child.link.round_trips, "startup_s": child.startup_s, "pid": os.getpid(),
             "commands": [{"argv": a, "seconds": round(t, 3), "round_trips": n} for a, t, n in child.history]}
    return 0, json.dumps(stats) + "\n", ""


def run(child: Child, argv: List[str]) -> Tuple[int, str, str]:
    """Run one ``kmemdbg ARGS`` typed in crash: (exit status, stdout text, stderr text)."""
    argv, command, cross = _split(argv)
    if command in TEST_COMMANDS and os.environ.get("KMEMDBG_CRASH_TEST"):
        return _test_hook(child, command, argv)
    if any(a.split("=", 1)[0] in SOURCE_OPTIONS for a in argv):
        return 2, "", ("kmemdbg: in crash the kernel is the one crash has open; --core/--kcore/--qmp/"
                       "--vmlinux/--allow-truncated belong to the shell command\n")
    args = None
    if command is None and any(a in ("-h", "--help") for a in argv) or command in COMMANDS:
        try:
            args, _ = table.parse(table.CRASH, argv)
        except table.HelpRequested as exc:
            return 0, exc.text, ""
        except table.UsageError as exc:
            return 2, "", f"{exc}\n"
    if command not in COMMANDS or args is None:
        return 2, "", f"kmemdbg: usage: kmemdbg [--json] {{{','.join(COMMANDS)}}} ARGS... (help kmemdbg)\n"
    try:
        kernel = child.get_kernel()
    except KmemdbgError as exc:
        return 1, "", f"kmemdbg: {' '.join(str(exc).split())}\n"
    if args.guess_layout:
        kernel.guess_layout = True
    out, err = io.StringIO(), io.StringIO()
    status = execute(args, lambda: kernel, out, err)
    text = out.getvalue()
    if cross and status == 0:
        try:
            text = _cross_check(child, args, text)
        except KmemdbgError as exc:
            err.write(f"kmemdbg: check --crash: {exc}\n")
            status = 1
    return status, text, err.getvalue()


def _send_text(link: CrashLink, kind: int, text: str) -> None:
    data = text.encode("utf-8", "replace")
    for i in range(0, len(data), CHUNK):
        link.send(kind, payload=data[i:i + CHUNK])


def serve(rfd: int, wfd: int) -> None:
    """The child's main loop: HELLO, then one RUN frame per command until crash closes the pipe."""
    link = CrashLink(rfd, wfd)
    link.catch_interrupts()
    child = Child(link)
    try:
        link.send(HELLO, payload=f"kmemdbg {sys.executable} {sys.version.split()[0]}".encode())
        while True:
            try:
                kind, argc, _b, payload = link.recv()
            except CrashGoneError:
                return
            if kind != RUN:
                link.send(ERROR, payload=f"unexpected frame {chr(kind)!r}".encode())
                return
            argv = [a.decode("utf-8", "surrogateescape") for a in payload.split(b"\0")[:argc]]
            link.interrupted = False
            t0, trips0 = time.monotonic(), link.round_trips
            try:
                status, out, err = run(child, argv)
                child.history.append((argv, time.monotonic() - t0, link.round_trips - trips0))
            except KeyboardInterrupt:
                child.kernel = None if child.kernel is not None and child.kernel.memory.live else child.kernel
                status, out, err = 130, "", "kmemdbg: interrupted\n"
            except CrashGoneError:
                return
            except Exception as exc:  # noqa: BLE001 - one line in crash, never a traceback
                first = " ".join(str(exc).split()) or type(exc).__name__
                status, out, err = 1, "", f"kmemdbg: internal error ({type(exc).__name__}): {first}\n"
            if out:
                _send_text(link, OUT, out if out.endswith("\n") else out + "\n")
            if err:
                _send_text(link, ERR, err if err.endswith("\n") else err + "\n")
            link.send(DONE, a=status)
    except CrashGoneError:
        return


__all__ = ["serve", "run", "crash_verdict", "Child", "COMMANDS"]
