"""A dependency-free progress bar on stderr, for commands that take a while."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``[#####.....] 5/10 reading tank1.level``; redrawn in place on a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.done = 0
        self._stream = stream or sys.stderr
        self._width = width
        self._tty = self._stream.isatty()

    def step(self, label: str = "") -> None:
        self.done = min(self.done + 1, self.total)
        filled = self._width * self.done // self.total
        bar = "#" * filled + "." * (self._width - filled)
        line = f"[{bar}] {self.done}/{self.total} {label}"
        if self._tty:
            self._stream.write("\r\x1b[K" + line)
            if self.done == self.total:
                self._stream.write("\n")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
