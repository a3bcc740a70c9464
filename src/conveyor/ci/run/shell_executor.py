"""The `shell` executor: `bash` on this host in the job's copy of the checkout, started from the
environment of the process that runs the pipeline plus the job's variables (which win), as
GitLab Runner's shell executor passes its own environment to the job; the `conveyor` command
is on PATH. Each script starts a process group, told to `started` (the runner records it: a
runner killed meanwhile leaves it running, and the next one stops it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.ci.run.job_executor import Output, ScriptResult
from conveyor.ci.run.workspace import render_script
from conveyor.host.shell import ScriptProcess


@dataclass
class ShellExecutor:
    workspace: Path
    scripts: Path
    host_env: Mapping[str, str] = field(default_factory=dict)  # what the job starts from
    started: Callable[[int], None] | None = None  # told each script's PID (= its group)
    name: str = "shell"
    canceled: bool = False
    _count: int = 0
    _process: ScriptProcess | None = None

    def cancel(self) -> None:
        self.canceled = True
        if self._process is not None:
            self._process.kill()

    def open(self) -> None:
        self.scripts.mkdir(parents=True, exist_ok=True)

    def run(
        self, lines: list[str], env: dict[str, str], timeout: float, out: Output
    ) -> ScriptResult:
        self._count += 1
        script = self.scripts / f"step-{self._count}.sh"
        script.write_text(render_script(lines))
        full_env = dict(self.host_env)
        # the `conveyor` command that runs this pipeline is on the job's PATH (deploy jobs)
        bindir = str(Path(sys.executable).parent)
        full_env["PATH"] = bindir + os.pathsep + full_env.get("PATH", os.defpath)
        full_env.update(env)
        process = ScriptProcess(["bash", str(script)], cwd=self.workspace, env=full_env)
        self._process = process
        if self.started is not None:
            self.started(process.pid)
        if self.canceled:  # canceled while starting
            process.kill()
        done = process.stream(out, timeout)
        return ScriptResult(exit_code=done.exit_code, timed_out=done.timed_out)

    def close(self, out: Output) -> None:
        del out
