"""A progress bar for long work, on stderr when it is a terminal and silent otherwise.

The library never prints: it calls a ``progress(what, done, total)``
callback.  :class:`ProgressBar` is such a callback for the command line.
``done``/``total`` are in whatever unit the caller counts (root table
entries for a sweep, rules for an audit).
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressBar:
    """``progress(what, done, total)`` drawing ``what [#####.....] 42% 3.1/s ETA 12s``.

    Enabled only when ``stream`` is a terminal and ``enabled`` is not
    False; redraws at most every ``interval`` seconds.  Call :meth:`close`
    (or use it as a context manager) to clear the line.
    """

    def __init__(self, stream: Optional[TextIO] = None, enabled: Optional[bool] = None,
                 width: int = 30, interval: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        tty = bool(isatty and isatty())
        self.enabled = tty if enabled is None else (enabled and tty)
        self.width = width
        self.interval = interval
        self._started: dict = {}
        self._last = 0.0
        self._drawn = False

    def __call__(self, what: str, done: float, total: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        start = self._started.setdefault(what, now)
        if now - self._last < self.interval and done < total:
            return
        self._last = now
        self.stream.write("\r" + self.line(what, done, total, now - start))
        self.stream.flush()
        self._drawn = True

    def line(self, what: str, done: float, total: float, elapsed: float) -> str:
        """The text of one redraw (no carriage return); ``elapsed`` in seconds."""
        frac = min(1.0, done / total) if total > 0 else 0.0
        fill = int(frac * self.width)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 and total > done else 0.0
        return (f"{what[:24]:<24} [{'#' * fill}{'.' * (self.width - fill)}] {frac * 100:3.0f}% "
                f"{rate:7.1f}/s ETA {eta:5.0f}s")

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ProgressBar"]
