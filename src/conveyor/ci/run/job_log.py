"""A job's log: masked as it comes, written to its file, shown live, and kept for `coverage`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from conveyor.ci.run.masking import Masker


class JobLog:
    """Use as a context manager: the file is open inside it, and the masker's held-back tail
    is written when it ends."""

    def __init__(self, path: Path, masked: Iterable[str], show: Callable[[str], None]) -> None:
        self.path = path
        self._masker = Masker(sorted(masked))
        self._show = show
        self._parts: list[str] = []
        self._file: BinaryIO | None = None

    def __enter__(self) -> JobLog:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # masked, but a job's output is still the project's business only
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "wb")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._file is not None
        try:
            tail = self._masker.close()
            if tail:
                self._file.write(tail)
                self._parts.append(tail.decode(errors="replace"))
        finally:
            self._file.close()

    def out(self, chunk: bytes) -> None:
        """Output of the job's script (any thread)."""
        clean = self._masker.feed(chunk)
        if clean and self._file is not None:
            self._file.write(clean)
            self._file.flush()
            text = clean.decode(errors="replace")
            self._parts.append(text)
            self._show(text)

    def say(self, message: str) -> None:
        """A line of Conveyor's own, in the runner's colour."""
        self.out(f"\x1b[36;1m{message}\x1b[0;m\n".encode())

    @property
    def text(self) -> str:
        return "".join(self._parts)
