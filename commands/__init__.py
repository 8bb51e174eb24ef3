"""kmemdbg's front ends, importable as ``kmemdbg.commands`` (``kmemdbg/commands`` links here).

    table.py        the one table of commands: name, help, arguments, call, renderer
    calls.py        each command's library call and its typed result
    renderers.py    each command's one renderer (text and JSON, through kmemdbg.render)
    execute.py      running a parsed command: errors to one line, output to the given streams
    cli.py          the ``kmemdbg`` command line (every command)
    drgn_plugin.py  the ``kmemdbg`` command inside drgn (the commands on drgn's prog)
    gdb.py          the ``kmemdbg`` command inside gdb (the commands on the attached guest)
"""
