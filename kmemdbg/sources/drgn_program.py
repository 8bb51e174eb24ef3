"""Physical reads through a drgn Program (dump, /proc/kcore or QMP)."""
from __future__ import annotations

from ..errors import PhysicalReadError


class DrgnPhysicalMemory:
    """Reads physical bytes with ``prog.read(pa, size, True)``.

    ``zero_fills_holes`` is set for live programs, where /proc/kcore reads
    unbacked ranges as zeros.
    """

    def __init__(self, prog) -> None:
        import drgn  # imported here so the core of kmemdbg works without drgn

        self.prog = prog
        self._fault = drgn.FaultError
        self.zero_fills_holes = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)

    def read(self, pa: int, size: int) -> bytes:
        try:
            return self.prog.read(pa, size, True)
        except self._fault as err:
            raise PhysicalReadError(pa, size, f"not in the dump ({err})") from None
        except (ValueError, OverflowError) as err:
            raise PhysicalReadError(pa, size, str(err)) from None
