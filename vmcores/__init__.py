"""The real-kernel fixture factory: Debian kernels booted under QEMU, dumped
over QMP, with the guest kernel's own reports kept as ground truth.

Entry point: ``python3 vmcores/build.py [RECIPE...|--all]`` (see README.md).
Nothing here is imported by the ``kmemdbg`` library itself.
"""
