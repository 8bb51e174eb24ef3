"""The man page and the bash completion, generated from the command line's own parser.

Both are built from :func:`kmemdbg.commands.table.build_parser` (the table
of commands, their arguments, help texts, examples and legend), so they say
what the program accepts.  The generated files ship in the wheel under
``kmemdbg/data/`` (:data:`MAN_PAGE`, :data:`BASH_COMPLETION`); regenerate
them after changing the table::

    python3 -m kmemdbg.commands.docgen --write     # rewrite both files
    python3 -m kmemdbg.commands.docgen --check     # exit 1 when either is stale
    python3 -m kmemdbg.commands.docgen man | man -l -
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .. import __version__
from . import help_texts
from .table import CLI, build_parser, global_options, offered

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
MAN_PAGE = os.path.join(DATA_DIR, "kmemdbg.1")
BASH_COMPLETION = os.path.join(DATA_DIR, "kmemdbg.bash")
#: Metavars whose values are file names (bash completes files for them).
FILE_METAVARS = ("PATH", "FILE", "OUT", "SOCKET")


def _value_choices() -> Dict[str, Tuple[str, ...]]:
    """Values of options whose argparse spec takes free text but whose words are known."""
    from ..audit import RULE_NAMES, SEVERITIES

    return {"--rule": tuple(RULE_NAMES), "--fail-on": tuple(SEVERITIES)}


def _subparsers(p: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in p._actions:   # argparse keeps no public list of subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(p: argparse.ArgumentParser) -> List[argparse.Action]:
    return [a for a in p._actions if a.option_strings and a.help is not argparse.SUPPRESS]


# -- man page -------------------------------------------------------------------------

def _roff(text: str) -> str:
    """``text`` safe as roff: backslashes and hyphens escaped, no line starting with . or '."""
    out = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        out.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(out)


def _option_words(a: argparse.Action) -> str:
    words = ", ".join(f"\\fB{_roff(o)}\\fR" for o in a.option_strings)
    if a.nargs != 0:
        words += f" \\fI{_roff(str(a.metavar or a.dest.upper()))}\\fR"
    return words


def _usage(p: argparse.ArgumentParser) -> str:
    usage = p.format_usage().strip()
    return " ".join(usage[len("usage: "):].split()) if usage.startswith("usage: ") else usage


def _preformatted(text: str) -> List[str]:
    return [".nf", _roff(text), ".fi"]


def man_page() -> str:
    """The roff source of kmemdbg(1), from the command line's parser."""
    p = build_parser(CLI)
    subs = _subparsers(p)
    lines = [f'.TH KMEMDBG 1 "" "kmemdbg {__version__}" "User Commands"',
             ".SH NAME", "kmemdbg \\- the truth about kernel virtual addresses in vmcores and live kernels",
             ".SH SYNOPSIS", f".B {_roff(_usage(p))}", ".SH DESCRIPTION",
             "kmemdbg reads the real page tables of a vmcore, /proc/kcore or a running QEMU guest with "
             "its own walker and classifies, translates and cross-checks kernel virtual addresses. "
             "The same commands run inside drgn (\\fB%kmemdbg\\fR), gdb and crash.",
             ".SH GLOBAL OPTIONS",
             "They may be given before or after the command."]
    for a in _options(p):
        lines += [".TP", _option_words(a), _roff(a.help or "")]
    lines.append(".SH COMMANDS")
    for command in offered(CLI):
        sp = subs[command.name]
        lines += [".SS " + _roff(command.name), _roff(command.help) + ".", ".PP",
                  f".B {_roff(_usage(sp))}"]
        for a in sp._actions:
            if a.option_strings or a.help is argparse.SUPPRESS:
                continue
            lines += [".TP", f"\\fI{_roff(str(a.metavar or a.dest))}\\fR", _roff(a.help or "")]
        globals_ = {f for o in global_options(CLI) for f in o.flags} | {"-h", "--help"}
        for a in _options(sp):
            if not set(a.option_strings) & globals_:
                lines += [".TP", _option_words(a), _roff(a.help or "")]
        examples = help_texts.EXAMPLES.get(command.name, ())
        if examples:
            lines += [".PP", "Examples:"] + _preformatted("\n".join(f"  kmemdbg --core vmcore {e}"
                                                                     for e in examples))
    lines += [".SH ADDRESSES", _roff(help_texts.ADDRESS_SYNTAX), ".PP", _roff(help_texts.PHYSICAL_SYNTAX),
              ".PP", _roff(help_texts.NUMBER_SYNTAX),
              ".SH LEGEND", "The columns of vtop, ptdump, ptov and audit:"]
    lines += _preformatted("\n".join(help_texts.legend()))
    lines += [".SH EXIT STATUS", "0: done.  1: bad input, an unreadable source, or an answer that is "
              "incomplete (ptdump or ptov over tables with faults; audit: findings at or above "
              "\\fB\\-\\-fail\\-on\\fR).  2: a usage error (audit: the audit could not run).  "
              "Every failure is one line on stderr starting with \\fBkmemdbg:\\fR.",
              ".SH SEE ALSO", "\\fBdrgn\\fR(1), \\fBcrash\\fR(8), \\fBgdb\\fR(1)"]
    return "\n".join(lines) + "\n"


# -- bash completion ---------------------------------------------------------------------

def _words(actions: Iterable[argparse.Action]) -> List[str]:
    return [o for a in actions for o in a.option_strings]


def _value_cases(actions: Sequence[argparse.Action], choices: Dict[str, Tuple[str, ...]]) -> List[str]:
    """``case`` arms completing the value after each option that takes one."""
    files, words = [], {}
    for a in actions:
        if a.nargs == 0:
            continue
        for o in a.option_strings:
            if a.choices:
                words[o] = tuple(str(c) for c in a.choices)
            elif o in choices:
                words[o] = choices[o]
            elif str(a.metavar or "") in FILE_METAVARS:
                files.append(o)
            else:
                words[o] = ()
    arms = []
    if files:
        arms.append(f"            {'|'.join(sorted(set(files)))}) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;")
    for o, ws in sorted(words.items()):
        arms.append(f"            {o}) COMPREPLY=($(compgen -W \"{' '.join(ws)}\" -- \"$cur\")); return ;;")
    return arms


def bash_completion() -> str:
    """A bash completion script for ``kmemdbg`` (source it, or install it as
    ``/usr/share/bash-completion/completions/kmemdbg``)."""
    p = build_parser(CLI)
    subs = _subparsers(p)
    choices = _value_choices()
    names = [c.name for c in offered(CLI)]
    all_actions = list(_options(p)) + [a for sp in subs.values() for a in _options(sp)]
    lines = ["# bash completion for kmemdbg, generated from its parser by kmemdbg.commands.docgen",
             "# (regenerate: python3 -m kmemdbg.commands.docgen --write)",
             "_kmemdbg()", "{", "    local cur prev cmd w",
             '    cur="${COMP_WORDS[COMP_CWORD]}"', '    prev="${COMP_WORDS[COMP_CWORD-1]}"',
             '    cmd=""', '    for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do', '        case "$w" in',
             f"            {'|'.join(names)}) cmd=\"$w\"; break ;;", "        esac", "    done",
             '    case "$prev" in']
    lines += _value_cases(all_actions, choices)
    lines += ["    esac", '    case "$cmd" in']
    for name in names:
        words = sorted(set(_words(_options(subs[name]))))
        lines.append(f"        {name}) COMPREPLY=($(compgen -W \"{' '.join(words)}\" -- \"$cur\")) ;;")
    top = sorted(set(_words(_options(p))))
    lines += [f"        *) COMPREPLY=($(compgen -W \"{' '.join(top + names)}\" -- \"$cur\")) ;;",
              "    esac", "}", "complete -F _kmemdbg kmemdbg"]
    return "\n".join(lines) + "\n"


GENERATED = ((MAN_PAGE, man_page), (BASH_COMPLETION, bash_completion))


def stale() -> List[str]:
    """The generated files whose content is not what the parser gives now."""
    out = []
    for path, make in GENERATED:
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != make():
            out.append(path)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m kmemdbg.commands.docgen",
                                 description="kmemdbg's man page and bash completion, from its parser")
    ap.add_argument("what", nargs="?", choices=("man", "bash"), help="print this one to stdout")
    ap.add_argument("--write", action="store_true", help="rewrite the files shipped in kmemdbg/data/")
    ap.add_argument("--check", action="store_true", help="exit 1 when a shipped file is stale")
    args = ap.parse_args(argv)
    if args.what:
        sys.stdout.write(man_page() if args.what == "man" else bash_completion())
        return 0
    if args.write:
        os.makedirs(DATA_DIR, exist_ok=True)
        for path, make in GENERATED:
            with open(path, "w", encoding="utf-8") as f:
                f.write(make())
            print(f"wrote {os.path.relpath(path)}")
        return 0
    bad = stale()
    for path in bad:
        print(f"kmemdbg: {os.path.relpath(path)} is stale: run python3 -m kmemdbg.commands.docgen --write",
              file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
