"""Which executor runs each job, building it, and the ones running now (to cancel them)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping

from conveyor.ci.run.attempt import Attempt
from conveyor.ci.run.config import ExecutorName
from conveyor.ci.run.docker_executor import DockerExecutor, Reaper
from conveyor.ci.run.job_executor import JobExecutor
from conveyor.ci.run.shell_executor import ShellExecutor
from conveyor.ci.select.variables import expand
from conveyor.model.pipeline import ImageSpec, JobSpec
from conveyor.runtime.job_protocol import LABEL_JOB, JobContainers


class Executors:
    """One pipeline's executors. Docker jobs share one `JobContainers` (a Docker client costs a
    connection and a ping), created when the first docker job needs it."""

    def __init__(
        self,
        default: ExecutorName,
        default_image: str,
        containers: JobContainers | None = None,
        *,
        host_env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        on_process: Callable[[int, int], None] | None = None,
    ) -> None:
        """`labels` go on every job container (with the job's id as LABEL_JOB);
        `on_process(job_id, pid)` is told the process group of each shell script started:
        what a runner that dies leaves running is found by them."""
        self.default = default
        self.labels = dict(labels or {})
        self.on_process = on_process
        self.default_image = default_image
        # what shell jobs start from; docker jobs get only their variables, as with GitLab Runner
        self.host_env = dict(os.environ if host_env is None else host_env)
        self.reaper = Reaper()  # container removals still running
        self._containers = containers
        self._lock = threading.Lock()
        self._active: dict[str, JobExecutor] = {}  # JobRun name -> executor of its script
        # Jobs to cancel as soon as their executor exists (asked while they were starting).
        self._doomed: set[str] = set()
        self._doom_all = False
        self.cancel_reason = "canceled"  # why, for the job's log

    def name_for(self, spec: JobSpec) -> ExecutorName:
        """Like GitLab's runner selection by tags: a job tagged `shell` or `docker` goes to that
        executor; others to the one chosen for the run."""
        for tag in spec.tags:
            if tag == "shell":
                return "shell"
            if tag == "docker":
                return "docker"
        return self.default

    def make(self, attempt: Attempt) -> JobExecutor:
        if attempt.executor == "shell":
            told = self.on_process
            return ShellExecutor(
                workspace=attempt.workspace,
                scripts=attempt.scripts,
                host_env=self.host_env,
                started=None if told is None else lambda pid: told(attempt.job_id, pid),
            )
        env = attempt.env
        image = attempt.spec.image or ImageSpec(name=self.default_image)
        image = image.model_copy(update={"name": expand(image.name, env)})
        services = tuple(
            s.model_copy(update={"name": expand(s.name, env)}) for s in attempt.spec.services
        )
        return DockerExecutor(
            containers=self._job_containers(),
            reaper=self.reaper,
            image=image,
            workspace=attempt.workspace,
            scripts=attempt.scripts,
            project_path=env.get("CI_PROJECT_PATH", "local/project"),
            services=services,
            service_env=env,
            labels={**self.labels, LABEL_JOB: str(attempt.job_id)},
        )

    def _job_containers(self) -> JobContainers:
        with self._lock:
            if self._containers is None:
                from conveyor.runtime.job_containers import DockerJobContainers

                self._containers = DockerJobContainers()
            return self._containers

    @contextlib.contextmanager
    def running(self, name: str, executor: JobExecutor) -> Iterator[None]:
        """While inside, `cancel_all` reaches `executor` (the job named `name`)."""
        with self._lock:
            self._active[name] = executor
            doomed = self._doom_all or name in self._doomed
        if doomed:
            executor.cancel()
        try:
            yield
        finally:
            with self._lock:
                self._active.pop(name, None)

    def cancel_all(self, reason: str) -> None:
        """Stop every running job, and any job about to start."""
        with self._lock:
            self.cancel_reason = reason
            self._doom_all = True
            running = list(self._active.values())
        for executor in running:
            executor.cancel()

    def cancel(self, names: Collection[str], reason: str) -> None:
        """Stop the jobs named `names` (running, or about to start)."""
        with self._lock:
            self.cancel_reason = reason
            self._doomed |= set(names)
            running = [e for n, e in self._active.items() if n in names]
        for executor in running:
            executor.cancel()

    def wait_for_cleanup(self) -> None:
        """Container removals finished: nothing of the pipeline is left behind."""
        self.reaper.join()
