"""The one compiled part: kmemdbg._walkc, the walker's inner loop.

It is optional: where no C compiler or Python headers are found the build
goes on without it and kmemdbg runs its pure-Python walker (the reference
the tests compare the compiled loop with).  Everything else is declared in
pyproject.toml.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("kmemdbg._walkc", ["kmemdbg/_walkc.c"], optional=True,
                             extra_compile_args=["-O2", "-std=c99"])])
