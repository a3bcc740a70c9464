"""Where a job's script runs, as the runner sees it: `shell` (a process on this host, in the
job's copy of the checkout) or `docker` (a container of the job's `image`). Both use host
networking on 127.0.0.1, so a job reaches its services and Conveyor's registry on loopback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Output = Callable[[bytes], None]


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int
    timed_out: bool = False


class JobExecutor(Protocol):
    name: str
    canceled: bool  # `cancel()` was called: the job ends `canceled`, whatever its exit code

    def open(self) -> None:
        """Prepare: start services (and reach the engine). Raises JobSetupError."""
        ...

    def run(
        self, lines: list[str], env: dict[str, str], timeout: float, out: Output
    ) -> ScriptResult:
        """Run `lines` as one script. Raises JobSetupError when it cannot start."""
        ...

    def close(self, out: Output) -> None:
        """Remove what `open` started; problems are reported to `out`, not raised."""
        ...

    def cancel(self) -> None:
        """Stop the script that runs now (another thread calls this): GitLab's job cancel."""
        ...
