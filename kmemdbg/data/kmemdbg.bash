# bash completion for kmemdbg, generated from its parser by kmemdbg.commands.docgen
# (regenerate: python3 -m kmemdbg.commands.docgen --write)
_kmemdbg()
{
    local cur prev cmd w
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd=""
    for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
        case "$w" in
            layout|classify|vtop|check|ptov|slice|ptdump|audit|demo|page|vmap|percpu|tasks|vm|rd|search) cmd="$w"; break ;;
        esac
    done
    case "$prev" in
            --addresses|--core|--qmp|--vmlinux) COMPREPLY=($(compgen -f -- "$cur")); return ;;
            --end) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
            --fail-on) COMPREPLY=($(compgen -W "info low medium high" -- "$cur")); return ;;
            --limit) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
            --mask) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
            --mm) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
            --pid) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
            --rule) COMPREPLY=($(compgen -W "wx exec-alias text-rw user-kernel linear-integrity vmalloc-integrity virt-to-phys-misuse addresses" -- "$cur")); return ;;
            --size) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
            --start) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
            --width) COMPREPLY=($(compgen -W "" -- "$cur")); return ;;
    esac
    case "$cmd" in
        layout) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        classify) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        vtop) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --mm --pid --qmp --vmlinux -h" -- "$cur")) ;;
        check) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --size --vmlinux -h" -- "$cur")) ;;
        ptov) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        slice) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        ptdump) COMPREPLY=($(compgen -W "--all --allow-truncated --core --end --guess-layout --help --json --kcore --pid --qmp --start --vmlinux --wide -h" -- "$cur")) ;;
        audit) COMPREPLY=($(compgen -W "--addresses --allow-truncated --core --fail-on --guess-layout --help --json --jsonl --kcore --qmp --rule --vmlinux -h" -- "$cur")) ;;
        demo) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        page) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --pa --page --pfn --qmp --vmlinux -h" -- "$cur")) ;;
        vmap) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        percpu) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        tasks) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --vmlinux -h" -- "$cur")) ;;
        vm) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --mm --pages --pid --qmp --vmlinux -h -p" -- "$cur")) ;;
        rd) COMPREPLY=($(compgen -W "--allow-truncated --ascii --core --guess-layout --help --json --kcore --physical --pid --qmp --user --vmlinux -16 -32 -64 -8 -a -h -p -u" -- "$cur")) ;;
        search) COMPREPLY=($(compgen -W "--allow-truncated --core --end --guess-layout --help --json --kcore --limit --mask --physical --qmp --start --vmlinux --width -h" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "--allow-truncated --core --guess-layout --help --json --kcore --qmp --version --vmlinux -h layout classify vtop check ptov slice ptdump audit demo page vmap percpu tasks vm rd search" -- "$cur")) ;;
    esac
}
complete -F _kmemdbg kmemdbg
