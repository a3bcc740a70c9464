"""Where a job's script runs: `shell` (a process on this host, in the job's copy of the
checkout) or `docker` (a container of the job's `image`, the copy bind-mounted at GitLab's
`/builds/<namespace>/<project>`, `services` started beside it). Both use host networking on
127.0.0.1, so a job reaches its services and Conveyor's registry on loopback."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from conveyor.ci.run.workspace import render_script
from conveyor.errors import JobSetupError
from conveyor.model.pipeline import ImageSpec, ServiceSpec

Output = Callable[[bytes], None]

# What a shell job inherits from the host; everything else comes from CI variables.
HOST_ENV_KEEP = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "USER",
    "SHELL",
    "DOCKER_HOST",
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
)


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int
    timed_out: bool = False


class Executor(Protocol):
    name: str

    def open(self) -> None:
        """Prepare: pull the image, start services. Raises JobSetupError."""
        ...

    def run(
        self, lines: list[str], env: dict[str, str], timeout: float, out: Output
    ) -> ScriptResult: ...

    def close(self, out: Output) -> None: ...

    def cancel(self) -> None:
        """Stop the script that runs now (another thread calls this): GitLab's job cancel."""
        ...


@dataclass
class ShellExecutor:
    workspace: Path
    scripts: Path
    name: str = "shell"
    _count: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    canceled: bool = False

    def cancel(self) -> None:
        self.canceled = True
        if self._proc is not None:
            _kill_group(self._proc)

    def open(self) -> None:
        self.scripts.mkdir(parents=True, exist_ok=True)

    def run(
        self, lines: list[str], env: dict[str, str], timeout: float, out: Output
    ) -> ScriptResult:
        self._count += 1
        script = self.scripts / f"step-{self._count}.sh"
        script.write_text(render_script(lines))
        full_env = {k: v for k, v in os.environ.items() if k in HOST_ENV_KEEP}
        # the `conveyor` command that runs this pipeline is on the job's PATH (deploy jobs)
        bindir = str(Path(sys.executable).parent)
        full_env["PATH"] = bindir + os.pathsep + full_env.get("PATH", os.defpath)
        full_env.update(env)
        proc = subprocess.Popen(
            ["bash", str(script)],
            cwd=self.workspace,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._proc = proc
        if self.canceled:  # canceled while starting
            _kill_group(proc)
        assert proc.stdout is not None
        timed_out = _pump_with_deadline(proc.stdout, out, timeout, lambda: _kill_group(proc))
        code = proc.wait()
        return ScriptResult(exit_code=code if not timed_out else -1, timed_out=timed_out)

    def close(self, out: Output) -> None:
        del out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """The script's whole process group: a job's background children go with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _pump_with_deadline(stream: Any, out: Output, timeout: float, kill: Callable[[], None]) -> bool:
    """Copy `stream` to `out` until EOF; past `timeout` seconds call `kill`. True if killed."""
    chunks: queue.Queue[bytes | None] = queue.Queue()

    def reader() -> None:
        for chunk in iter(
            lambda: stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536), b""
        ):
            chunks.put(chunk)
        chunks.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        left = deadline - time.monotonic()
        try:
            chunk = chunks.get(timeout=max(0.05, left) if not killed else 5.0)
        except queue.Empty:
            if killed:
                return True
            if time.monotonic() >= deadline:
                kill()
                killed = True
            continue
        if chunk is None:
            return killed
        out(chunk)


# --- docker -------------------------------------------------------------------------------


def connect_docker() -> Any:
    """A Docker client that answered a ping; JobSetupError (runner_system_failure) if not."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as e:
        raise JobSetupError(f"cannot reach the Docker Engine: {e}") from e
    return client


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
    image: ImageSpec
    workspace: Path
    scripts: Path
    project_path: str  # CI_PROJECT_PATH, for /builds/<path>
    services: tuple[ServiceSpec, ...] = ()
    service_env: dict[str, str] = field(default_factory=dict)
    docker_socket: bool = True  # "socket binding": jobs can build images with the host engine
    name: str = "docker"
    client: Any = None
    client_factory: Callable[[], Any] | None = None  # a client shared with other jobs
    reaper: list[threading.Thread] | None = None  # container removals the runner waits for
    canceled: bool = False
    _cid: str | None = None
    _services: list[str] = field(default_factory=list)
    _hosts: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    @property
    def build_dir(self) -> str:
        return f"/builds/{self.project_path}"

    def _docker(self) -> Any:
        if self.client is None and self.client_factory is not None:
            self.client = self.client_factory()
        if self.client is None:
            self.client = connect_docker()
        return self.client

    def _ensure_image(self, ref: str) -> None:
        import docker

        api = self._docker().api
        try:
            api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            try:
                api.pull(ref)
            except docker.errors.APIError as e:
                raise JobSetupError(f"image {ref} is not present and cannot be pulled: {e}") from e

    def open(self) -> None:
        # The job image is pulled on demand by `_create`, like `docker run`: checking it first
        # would cost every job a request.
        self.scripts.mkdir(parents=True, exist_ok=True)
        for svc in self.services:
            self._start_service(svc)

    def _start_service(self, svc: ServiceSpec) -> None:
        api = self._docker().api
        self._ensure_image(svc.name)
        env = {**self.service_env, **svc.variables}
        created = api.create_container(
            svc.name,
            command=list(svc.command) if svc.command else None,
            entrypoint=list(svc.entrypoint) if svc.entrypoint is not None else None,
            environment=env,
            labels={"io.conveyor.ci": "service"},
            host_config=api.create_host_config(network_mode="host"),
        )
        cid = str(created["Id"])
        self._services.append(cid)
        api.start(cid)
        for alias in service_aliases(svc):
            self._hosts[alias] = "127.0.0.1"
        self._wait_service(svc, cid)

    def _wait_service(self, svc: ServiceSpec, cid: str, timeout: float = 30.0) -> None:
        """GitLab waits for a service's exposed TCP ports; with host networking they are on
        127.0.0.1."""
        api = self._docker().api
        ports = [
            int(p.split("/")[0])
            for p in (api.inspect_image(svc.name)["Config"].get("ExposedPorts") or {})
            if p.endswith("/tcp")
        ]
        deadline = time.monotonic() + timeout
        pending = set(ports)
        while pending and time.monotonic() < deadline:
            state = api.inspect_container(cid)["State"]
            if not state.get("Running"):
                logs = api.logs(cid, tail=20).decode(errors="replace")
                raise JobSetupError(
                    f"service {svc.name} exited with code {state.get('ExitCode')}:\n{logs}"
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
                f"service {svc.name} did not open port(s) {sorted(pending)} within {timeout:g}s"
            )

    def _create(self, image: str, **kwargs: Any) -> Any:
        import docker

        api = self._docker().api
        try:
            return api.create_container(image, **kwargs)
        except docker.errors.ImageNotFound:
            self._ensure_image(image)
            return api.create_container(image, **kwargs)

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
        api = self._docker().api
        binds = {
            str(self.workspace): {"bind": self.build_dir, "mode": "rw"},
            str(self.scripts): {"bind": "/scripts", "mode": "ro"},
        }
        if self.docker_socket and Path("/var/run/docker.sock").exists():
            binds["/var/run/docker.sock"] = {"bind": "/var/run/docker.sock", "mode": "rw"}
            cli = shutil.which("docker")
            if cli:
                binds[cli] = {"bind": "/usr/local/bin/docker", "mode": "ro"}
        entry = list(self.image.entrypoint) if self.image.entrypoint is not None else None
        created = self._create(
            self.image.name,
            command=["sh", "-c", launcher],
            entrypoint=entry if entry else ([] if entry is not None else None),
            environment=env,
            working_dir=self.build_dir,
            labels={"io.conveyor.ci": "job"},
            host_config=api.create_host_config(
                network_mode="host",
                binds=binds,
                extra_hosts=self._hosts or None,
            ),
        )
        cid = str(created["Id"])
        try:
            # Attach before start, as `docker run` does: no output is missed and no separate
            # logs request (an inspect plus a stream) waits behind the start.
            attached = api.attach(cid, stdout=True, stderr=True, stream=True, logs=True)
            self._cid = cid
            api.start(cid)
            if self.canceled:  # canceled while starting
                _quietly(api.kill, cid)
            stream = _DockerStream(attached)
            timed_out = _pump_with_deadline(stream, out, timeout, lambda: api.kill(cid))
            code = int(api.wait(cid).get("StatusCode", -1))
        finally:
            self._remove_later(cid)
        return ScriptResult(exit_code=code if not timed_out else -1, timed_out=timed_out)

    def cancel(self) -> None:
        self.canceled = True
        if self._cid is not None:
            _quietly(self._docker().api.kill, self._cid)

    def _remove_later(self, cid: str) -> None:
        """The job's result is known: remove its container off the critical path. The runner
        waits for `reaper` threads before the pipeline ends, so none is left behind."""
        api = self._docker().api
        t = threading.Thread(target=lambda: _quietly(api.remove_container, cid, force=True))
        t.start()
        if self.reaper is not None:
            self.reaper.append(t)
        else:
            t.join()

    def close(self, out: Output) -> None:
        api = self._docker().api if self._services else None
        for cid in self._services:
            try:
                api.remove_container(cid, force=True)  # type: ignore[union-attr]
            except Exception as e:
                out(f"warning: removing service container {cid[:12]}: {e}\n".encode())
        self._services.clear()


def _quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(Exception):  # cleanup: a container already gone is fine
        fn(*args, **kwargs)


class _DockerStream:
    """The SDK's log generator as a readable stream for `_pump_with_deadline`."""

    def __init__(self, gen: Any) -> None:
        self._gen = gen

    def read(self, _n: int) -> bytes:
        try:
            return bytes(next(self._gen))
        except StopIteration:
            return b""
