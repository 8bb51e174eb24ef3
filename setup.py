"""The compiled parts: kmemdbg._walkc, the walker's inner loop, and kmemdbg._kallsymsc,
the expansion of the kernel's kallsyms_names table.

Both are optional: where no C compiler or Python headers are found the build
goes on without them and kmemdbg runs its pure-Python walker and kallsyms
decoder (the references the tests compare the compiled code with).
Everything else is declared in pyproject.toml.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(name, [source], optional=True, extra_compile_args=["-O2", "-std=c99"])
                   for name, source in (("kmemdbg._walkc", "kmemdbg/_walkc.c"),
                                        ("kmemdbg._kallsymsc", "kmemdbg/_kallsymsc.c"))])
