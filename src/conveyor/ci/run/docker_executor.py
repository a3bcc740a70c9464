"""The `docker` executor: a container of the job's `image` with the job's copy of the checkout
bind-mounted at GitLab's `/builds/<namespace>/<project>`, `services` started beside it, all on
the host's network. Containers come and go through `JobContainers` (conveyor.runtime)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.ci.run.job_executor import Output, ScriptResult
from conveyor.ci.run.workspace import open_to_any_user, render_script
from conveyor.errors import JobSetupError, RuntimeAdapterError
from conveyor.host.shell import pump
from conveyor.model.pipeline import ImageSpec, ServiceSpec
from conveyor.runtime.job_protocol import LABEL_JOB, Bind, JobContainer, JobContainers
from conveyor.runtime.protocol import LABEL_PROJECT

DOCKER_SOCKET = "/var/run/docker.sock"
SERVICE_PORTS_TIMEOUT = 30.0  # seconds a service has to open its exposed TCP ports


class Reaper:
    """Container removals running off the critical path; the runner waits for them before
    the pipeline ends, so none is left behind."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def later(self, action: Callable[[], None]) -> None:
        thread = threading.Thread(target=_quietly, args=(action,))
        thread.start()
        with self._lock:
            self._threads.append(thread)

    def join(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()


def service_aliases(svc: ServiceSpec) -> list[str]:
    """GitLab's default aliases for a service image: `group/img:tag` -> `group__img` and
    `group-img` (registry host and tag dropped), plus any `alias` given."""
    if svc.alias:
        return list(svc.alias)
    name = svc.name.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    path = "/".join(parts)
    return sorted({path.replace("/", "__"), path.replace("/", "-")})


@dataclass
class DockerExecutor:
    containers: JobContainers  # shared by the pipeline's docker jobs
    reaper: Reaper
    image: ImageSpec
    workspace: Path
    scripts: Path
    project_path: str  # CI_PROJECT_PATH, for /builds/<path>
    services: tuple[ServiceSpec, ...] = ()
    service_env: dict[str, str] = field(default_factory=dict)
    docker_socket: bool = True  # "socket binding": jobs can build images with the host engine
    labels: Mapping[str, str] = field(default_factory=dict)  # on the job's every container
    name: str = "docker"
    canceled: bool = False
    _cid: str | None = None
    _services: list[str] = field(default_factory=list)
    _hosts: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    @property
    def build_dir(self) -> str:
        return f"/builds/{self.project_path}"

    def _labels(self, env: dict[str, str]) -> dict[str, str]:
        """`labels`, with the job's id when they lack it and its project's name
        (CI_PROJECT_NAME): the log collector of a project of that name collects the
        containers' output by job (docs/logs.md)."""
        labels = dict(self.labels)
        if LABEL_JOB not in labels and env.get("CI_JOB_ID", "").isdigit():
            labels[LABEL_JOB] = env["CI_JOB_ID"]
        if env.get("CI_PROJECT_NAME"):
            labels.setdefault(LABEL_PROJECT, env["CI_PROJECT_NAME"])
        return labels

    def open(self) -> None:
        # The job image is pulled on demand by `create`, like `docker run`: checking it first
        # would cost every job a request.
        try:
            self.containers.connect()
        except RuntimeAdapterError as e:
            raise JobSetupError(str(e)) from e
        self.scripts.mkdir(parents=True, exist_ok=True)
        open_to_any_user(self.workspace)  # an image's non-root USER writes there too
        for svc in self.services:
            self._start_service(svc)

    def _start_service(self, svc: ServiceSpec) -> None:
        try:
            self.containers.ensure_image(svc.name)
        except RuntimeAdapterError as e:
            raise JobSetupError(str(e)) from e
        cid = self.containers.create(
            JobContainer(
                image=svc.name,
                role="service",
                command=svc.command or None,
                entrypoint=svc.entrypoint,
                environment={**self.service_env, **svc.variables},
                labels=self._labels(self.service_env),
            )
        )
        self._services.append(cid)
        self.containers.start(cid)
        for alias in service_aliases(svc):
            self._hosts[alias] = "127.0.0.1"
        self._wait_service(svc, cid)

    def _wait_service(self, svc: ServiceSpec, cid: str) -> None:
        """GitLab waits for a service's exposed TCP ports; with host networking they are on
        127.0.0.1."""
        deadline = time.monotonic() + SERVICE_PORTS_TIMEOUT
        pending = set(self.containers.exposed_tcp_ports(svc.name))
        while pending and time.monotonic() < deadline:
            state = self.containers.state(cid)
            if not state.running:
                logs = self.containers.tail(cid, 20)
                raise JobSetupError(
                    f"service {svc.name} exited with code {state.exit_code}; check its image, "
                    f"command and variables against its last lines:\n{logs}"
                )
            for p in list(pending):
                with socket.socket() as s:
                    s.settimeout(0.5)
                    if s.connect_ex(("127.0.0.1", p)) == 0:
                        pending.discard(p)
            if pending:
                time.sleep(0.2)
        if pending:
            raise JobSetupError(
                f"service {svc.name} did not open port(s) {sorted(pending)} within "
                f"{SERVICE_PORTS_TIMEOUT:g}s: check its logs and that it listens on 127.0.0.1"
            )

    def _binds(self) -> dict[str, Bind]:
        binds = {
            str(self.workspace): Bind(self.build_dir),
            str(self.scripts): Bind("/scripts", read_only=True),
        }
        if self.docker_socket and Path(DOCKER_SOCKET).exists():
            binds[DOCKER_SOCKET] = Bind(DOCKER_SOCKET)
            cli = shutil.which("docker")
            if cli:
                binds[cli] = Bind("/usr/local/bin/docker", read_only=True)
        return binds

    def run(
        self, lines: list[str], env: dict[str, str], timeout: float, out: Output
    ) -> ScriptResult:
        self._count += 1
        base = f"step-{self._count}"
        (self.scripts / f"{base}.bash").write_text(render_script(lines, workdir=self.build_dir))
        (self.scripts / f"{base}.sh").write_text(
            render_script(lines, shell="sh", workdir=self.build_dir)  # noqa: S604 — a shell name, not shell=True
        )
        # Like GitLab's runner: bash when the image has it, else POSIX sh.
        launcher = (
            f"if command -v bash >/dev/null 2>&1; then exec bash /scripts/{base}.bash; fi; "
            f"exec sh /scripts/{base}.sh"
        )
        cid = self.containers.create(
            JobContainer(
                image=self.image.name,
                role="job",
                command=("sh", "-c", launcher),
                entrypoint=self.image.entrypoint,
                environment=env,
                working_dir=self.build_dir,
                binds=self._binds(),
                extra_hosts=self._hosts,
                labels=self._labels(env),
            )
        )
        try:
            output = self.containers.attach(cid)
            self._cid = cid
            self.containers.start(cid)
            if self.canceled:  # canceled while starting
                _quietly(lambda: self.containers.kill(cid))
            timed_out = pump(output, out, timeout, lambda: self.containers.kill(cid))
            code = self.containers.wait(cid)
        finally:
            # The result is known: remove the container off the critical path.
            self.reaper.later(lambda: self.containers.remove(cid))
        return ScriptResult(exit_code=-1 if timed_out else code, timed_out=timed_out)

    def cancel(self) -> None:
        self.canceled = True
        cid = self._cid
        if cid is not None:
            _quietly(lambda: self.containers.kill(cid))

    def close(self, out: Output) -> None:
        for cid in self._services:
            try:
                self.containers.remove(cid)
            except RuntimeAdapterError as e:
                out(f"warning: removing service container {cid[:12]}: {e}\n".encode())
        self._services.clear()


def _quietly(action: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # cleanup: a container already gone is fine
        action()
