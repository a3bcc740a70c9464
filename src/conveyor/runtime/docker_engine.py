"""The Docker Engine adapter: runs Conveyor's replicas and builds their images (docker SDK).

Written against Engine API 1.41 (Debian's dockerd 20.10, legacy builder). A replica uses host
networking (Conveyor assigns its port) or, under project networking, its own network namespace
on the project's networks (`docker_networks` makes those and the service addresses); HAProxy
routes to it either way.

The docker SDK is untyped, so its values are `Any` inside this module; every public method
converts them to Conveyor's own types before returning.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import queue
import stat
import threading
from collections import deque
from collections.abc import Generator, Iterable, Mapping
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.api.build import process_dockerfile
from docker.types import Mount
from docker.utils.build import exclude_paths, match_tag
from docker.utils.build import tar as build_tar

from conveyor.errors import EngineUnreachable, RuntimeAdapterError
from conveyor.model.endpoint import Endpoint
from conveyor.model.release import ObservedAddress, ObservedNetwork, ObservedReplica, ReplicaHealth
from conveyor.model.stack import BuildSpec, Healthcheck, Service
from conveyor.runtime import docker_networks
from conveyor.runtime.create_options import create_options
from conveyor.runtime.docker_errors import explain as _explain
from conveyor.runtime.docker_errors import translated as _translated
from conveyor.runtime.docker_errors import unreachable as _unreachable
from conveyor.runtime.images import exposed_tcp_ports
from conveyor.runtime.protocol import (
    LABEL_NETWORK,
    LABEL_PORT,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SPEC,
    AddressRun,
    NetworkRun,
    Progress,
    ReplicaRun,
)

JSON = dict[str, Any]

_BUILD_TAIL = 15  # lines of build output quoted in a build error
_KILL_WAIT = 30.0  # seconds to wait for a SIGKILLed container to be reaped
_HEALTH: dict[str, ReplicaHealth] = {
    "healthy": "healthy",
    "unhealthy": "unhealthy",
    "starting": "starting",
}


# --- naming -------------------------------------------------------------------------------


def volume_name(project: str, name: str) -> str:
    """The Docker volume behind a project's named volume (Compose's `<project>_<name>`)."""
    return f"{project}_{name}"


def container_name(project: str, replica: str) -> str:
    return f"{project}-{replica}"


def image_repository(project: str, service: str) -> str:
    # Image repositories must be lowercase; Compose service names may not be.
    return f"{project}-{service}".lower()


# --- build context hashing ----------------------------------------------------------------


def dockerignore_patterns(context: Path) -> list[str]:
    """The context's .dockerignore patterns, read exactly as the SDK reads them for a build,
    plus Conveyor's own state directory: databases and logs that change on every command
    never belong in an image (and would make every build look new)."""
    path = context / ".dockerignore"
    patterns: list[str] = []
    if path.exists():
        lines = (line.strip() for line in path.read_text().splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    return [*patterns, STATE_DIR_PATTERN]


STATE_DIR_PATTERN = ".conveyor"


def context_hash(spec: BuildSpec) -> str:
    """A digest of everything the build sees: the files the SDK would send (after
    .dockerignore), their modes, the Dockerfile path and content, build args and target.

    Image tags carry it, so an unchanged service is never rebuilt and a changed one always is.
    """
    root = Path(spec.context)
    if not root.is_dir():
        raise RuntimeAdapterError(f"build context {root} is not a directory")
    digest = hashlib.sha256()

    def feed(*parts: str | bytes) -> None:
        # Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(f"{len(data)}:".encode() + data)

    dockerfile = root / spec.dockerfile
    feed("dockerfile", spec.dockerfile, _file_digest(dockerfile) if dockerfile.is_file() else "")
    for key, value in sorted(spec.args.items()):
        feed("arg", key, value)
    feed("target", spec.target or "")
    try:
        files = exclude_paths(str(root), dockerignore_patterns(root), dockerfile=spec.dockerfile)
        for rel in sorted(files):
            feed(*_entry(root, rel))
    except OSError as e:
        raise RuntimeAdapterError(f"cannot read build context {root}: {e}") from e
    return digest.hexdigest()[:16]


def _entry(root: Path, rel: str) -> tuple[str, ...]:
    """What of one context entry can change the image: kind, path, mode, content."""
    path = root / rel
    info = path.lstat()
    mode = oct(stat.S_IMODE(info.st_mode))
    if stat.S_ISLNK(info.st_mode):
        return ("link", rel, os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return ("dir", rel, mode)
    if stat.S_ISREG(info.st_mode):
        return ("file", rel, mode, _file_digest(path))
    return ("other", rel)  # sockets and FIFOs: the SDK skips or sends them empty


def _file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- conversions --------------------------------------------------------------------------


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _healthcheck(check: Healthcheck | None) -> JSON | None:
    if check is None:
        return None
    if check.test[:1] == ("NONE",):
        return {"test": ["NONE"]}
    # start_interval needs API 1.44; dockerd 20.10 speaks 1.41, so it is left out.
    return {
        "test": list(check.test),
        "interval": _ns(check.interval),
        "timeout": _ns(check.timeout),
        "retries": check.retries,
        "start_period": _ns(check.start_period),
    }


def _mounts(req: ReplicaRun) -> list[Any]:
    mounts: list[Any] = []
    for vol in req.service.volumes:
        if vol.type == "tmpfs":
            mounts.append(Mount(vol.target, None, type="tmpfs", read_only=vol.read_only))
        elif vol.type == "bind":
            mounts.append(Mount(vol.target, vol.source, type="bind", read_only=vol.read_only))
        else:
            source = None  # anonymous volume
            if vol.source is not None:
                source = req.volume_names.get(vol.source) or volume_name(req.project, vol.source)
            mounts.append(Mount(vol.target, source, type="volume", read_only=vol.read_only))
    for target, host_file in sorted(req.secret_files.items()):
        mounts.append(Mount(target, host_file, type="bind", read_only=True))
    return mounts


def _labels(req: ReplicaRun) -> dict[str, str]:
    # Conveyor's labels last: a service label must not be able to disguise a replica.
    labels = {
        **req.service.labels,
        LABEL_PROJECT: req.project,
        LABEL_SERVICE: req.service.name,
        LABEL_REPLICA: req.replica,
        LABEL_RELEASE: str(req.release),
        LABEL_SPEC: req.spec_hash,
        LABEL_PORT: str(req.port),
    }
    if req.networks:
        labels[LABEL_NETWORK] = min(req.networks)  # where HAProxy and probes reach it
    return labels


def published_tcp(req: ReplicaRun) -> tuple[int, ...]:
    """The TCP ports a fleet's replica publishes on its host's fleet address: its port and
    every other port its service serves (each a Listener of the hosts' HAProxies)."""
    if req.publish_on is None:
        return ()
    ports = [req.port] if req.port else []
    ports += [p for p in req.service.served_ports() if p not in ports]
    return tuple(ports)


def _udp_bindings(req: ReplicaRun) -> dict[str, list[tuple[str, int | None]]]:
    """UDP ports Docker publishes itself (HAProxy carries TCP only), and on a fleet every TCP
    port of the replica on an ephemeral host port (None: Docker picks one)."""
    bindings: dict[str, list[tuple[str, int | None]]] = {}
    for p in req.service.udp_ports():
        if p.published is not None:
            bindings.setdefault(f"{p.target}/udp", []).append((p.host_ip or "", p.published))
    if req.publish_on is not None:
        for port in published_tcp(req):
            bindings[f"{port}/tcp"] = [(req.publish_on, None)]
    return bindings


def published_ports(attrs: JSON) -> dict[int, int]:
    """The replica's TCP port -> the host port Docker bound for it, for every port it
    publishes (a fleet's replica: ReplicaRun.publish_on)."""
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    out: dict[int, int] = {}
    for key, bindings in ports.items():
        port, _, proto = str(key).partition("/")
        if proto != "tcp" or not port.isdigit():
            continue
        for binding in bindings or ():
            if str(binding.get("HostPort") or "").isdigit():
                out[int(port)] = int(binding["HostPort"])
                break
    return out


def _endpoint(attrs: JSON, labels: dict[str, str], port: int) -> Endpoint:
    """Host networking: loopback. Project networks: the replica's address on its network."""
    network = labels.get(LABEL_NETWORK)
    if network is None:
        return Endpoint.loopback(port)
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return Endpoint(host=str((networks.get(network) or {}).get("IPAddress") or ""), port=port)


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0]
    return name in ("", "root", "0")


def _epoch(timestamp: str) -> float:
    """Docker's RFC 3339 timestamp (nanoseconds, Z) as epoch seconds; 0.0 for 'never'."""
    if not timestamp or timestamp.startswith("0001-"):
        return 0.0
    return datetime.fromisoformat(timestamp).timestamp()


def _observed(attrs: JSON) -> ObservedReplica | None:
    """An inspected container as Conveyor sees it; None when it lacks Conveyor's labels."""
    labels: dict[str, str] = attrs.get("Config", {}).get("Labels") or {}
    state: JSON = attrs.get("State", {})
    try:
        replica = labels[LABEL_REPLICA]
        service = labels[LABEL_SERVICE]
        spec_hash = labels[LABEL_SPEC]
        release = int(labels[LABEL_RELEASE])
        port = int(labels[LABEL_PORT])
    except (KeyError, ValueError):
        return None
    running = bool(state.get("Running"))
    exit_code: int | None = int(state.get("ExitCode", 0))
    # A container that never started reports ExitCode 0, which would read as success.
    if running or (state.get("Status") == "created" and exit_code == 0):
        exit_code = None
    health = (state.get("Health") or {}).get("Status", "")
    return ObservedReplica(
        replica=replica,
        service=service,
        container_id=str(attrs["Id"]),
        spec_hash=spec_hash,
        release=release,
        endpoint=_endpoint(attrs, labels, port),
        running=running,
        published_ports=published_ports(attrs),
        exit_code=exit_code,
        health=_HEALTH.get(str(health), "none"),
        paused=bool(state.get("Paused")),
        started_at=_epoch(str(state.get("StartedAt", ""))),
    )


def _stream_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _log_key(timestamp: str) -> tuple[str, str]:
    # Docker trims trailing zeros of the fraction (RFC3339Nano), so "…:36.1Z" sorts after
    # "…:36.12Z" as text. Compare whole seconds, then the fraction padded to 9 digits.
    seconds, _, fraction = timestamp.rstrip("Z").partition(".")
    return seconds, fraction.ljust(9, "0")


def _split_log_line(raw: str) -> tuple[str, str]:
    timestamp, _, line = raw.partition(" ")
    return timestamp, line


# --- the adapter --------------------------------------------------------------------------


class DockerEngine:
    """`Runtime` on a local Docker Engine."""

    def __init__(
        self, client: docker.DockerClient | None = None, base_url: str | None = None
    ) -> None:
        """`base_url`: another engine than the environment's (`unix:///path`, say: a fleet
        host's engine brought here by host.ssh_tunnel); the client is made on first use."""
        self._client = client
        self._base_url = base_url
        self._client_lock = threading.Lock()

    def close(self) -> None:
        """Close the client's connections (a later call makes a new one)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- plumbing --

    def _docker(self) -> Any:
        """The SDK client, created on first use (so constructing the adapter never blocks)."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = (
                        docker.DockerClient(base_url=self._base_url)
                        if self._base_url
                        else docker.from_env()
                    )
                except docker.errors.DockerException as e:
                    raise EngineUnreachable(_unreachable(e)) from e
            return self._client

    def _api(self) -> Any:
        return self._docker().api

    # -- images --

    def build(self, project: str, service: Service, progress: Progress) -> tuple[str, str]:
        spec = service.build
        if spec is None:
            raise RuntimeAdapterError(f"service {service.name} has no build section")
        tag = f"{image_repository(project, service.name)}:{context_hash(spec)}"
        if not match_tag(tag):
            raise RuntimeAdapterError(f"{tag!r} is not a valid image name")
        existing = self._image_id(tag)
        if existing is not None:
            progress(f"{tag} up to date")
            return tag, existing
        labels = {LABEL_PROJECT: project, LABEL_SERVICE: service.name}
        self._run_build(spec, tag, labels, progress)
        image_id = self._image_id(tag)
        if image_id is None:
            raise RuntimeAdapterError(f"building {tag}: the build ended but the tag is missing")
        return tag, image_id

    def _run_build(
        self, spec: BuildSpec, tag: str, labels: dict[str, str], progress: Progress
    ) -> None:
        recent: deque[str] = deque(maxlen=_BUILD_TAIL)
        with _translated(f"building {tag}"):
            # The context is tarred here, not by the SDK, so that the same exclusions as the
            # content hash apply (the SDK would read .dockerignore alone).
            dockerfile = process_dockerfile(spec.dockerfile, spec.context)
            context = build_tar(
                spec.context,
                exclude=dockerignore_patterns(Path(spec.context)),
                dockerfile=dockerfile,
            )
            events = self._api().build(
                fileobj=context,
                custom_context=True,
                dockerfile=dockerfile[0],
                tag=tag,
                buildargs=dict(spec.args) or None,
                target=spec.target,
                labels=labels,
                network_mode="host",
                rm=True,
                forcerm=True,  # also remove intermediate containers of a failed step
                decode=True,
            )
            for event in events:
                for line in _stream_lines(str(event.get("stream", ""))):
                    recent.append(line)
                    progress(line)
                if "error" in event:
                    raise RuntimeAdapterError(_build_failure(tag, str(event["error"]), recent))

    def ensure_image(self, ref: str, progress: Progress) -> str:
        image_id = self._image_id(ref)
        if image_id is not None:
            return image_id
        return self.pull(ref, progress)

    def local_image(self, ref: str) -> str | None:
        return self._image_id(ref)

    def tag(self, image_id: str, ref: str) -> None:
        repository, _, tag = ref.rpartition(":")
        if not repository or "/" in tag:  # no tag given (a ':' in a registry host:port)
            repository, tag = ref, "latest"
        with _translated(f"tagging {image_id[:19]} as {ref}"):
            self._api().tag(image_id, repository, tag)

    def ping(self) -> bool:
        """Whether the engine answers `/_ping` (a fleet host's probe, plan.host_health)."""
        try:
            return bool(self._api().ping())
        except (
            docker.errors.DockerException,
            requests.RequestException,
            OSError,
            EngineUnreachable,
        ):
            return False

    def copy_image_to(self, image_id: str, other: DockerEngine) -> None:
        """Stream an image of this engine into `other` (`docker save | docker load`), for a
        fleet host that lacks an image built or pulled on this machine. The image keeps its id."""
        with _translated(f"copying image {image_id[:19]} to another engine"):
            chunks = self._api().get_image(image_id)
            other._api().load_image(chunks, quiet=True)

    def exposed_ports(self, image_id: str) -> tuple[int, ...]:
        with _translated(f"inspecting image {image_id[:19]}"):
            return tuple(exposed_tcp_ports(self._api().inspect_image(image_id)))

    def pull(self, ref: str, progress: Progress) -> str:
        progress(f"pulling {ref}")
        try:
            for event in self._api().pull(ref, stream=True, decode=True):
                if "error" in event:
                    raise RuntimeAdapterError(_pull_failure(ref, str(event["error"])))
                line = _pull_line(event)
                if line:
                    progress(line)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise RuntimeAdapterError(_pull_failure(ref, _explain(e))) from e
        image_id = self._image_id(ref)
        if image_id is None:
            raise RuntimeAdapterError(_pull_failure(ref, "the pull ended without the image"))
        return image_id

    def _image_id(self, ref: str) -> str | None:
        with _translated(f"inspecting image {ref}"):
            try:
                return str(self._api().inspect_image(ref)["Id"])
            except docker.errors.NotFound:
                return None

    # -- volumes --

    def ensure_volume(
        self,
        project: str,
        name: str,
        external: bool,
        driver: str | None = None,
        driver_opts: Mapping[str, str] | None = None,
    ) -> str:
        docker_name = name if external else volume_name(project, name)
        with _translated(f"volume {docker_name}"):
            try:
                self._api().inspect_volume(docker_name)
                return docker_name
            except docker.errors.NotFound:
                pass
            if external:
                raise RuntimeAdapterError(
                    f"external volume {docker_name} does not exist: "
                    f"create it with `docker volume create {docker_name}`"
                )
            self._api().create_volume(
                name=docker_name,
                driver=driver,
                driver_opts=dict(driver_opts) if driver_opts else None,
                labels={LABEL_PROJECT: project},
            )
        return docker_name

    def remove_volumes(self, project: str) -> list[str]:
        with _translated(f"removing the volumes of {project}"):
            api = self._api()
            found = api.volumes(filters={"label": f"{LABEL_PROJECT}={project}"}) or {}
            names = sorted(v["Name"] for v in found.get("Volumes") or ())
            for name in names:
                with contextlib.suppress(docker.errors.NotFound):
                    api.remove_volume(name)
        return names

    def project_volumes(self, project: str) -> list[str]:
        """The Docker names of the volumes Conveyor created for `project` on this engine."""
        with _translated(f"listing the volumes of {project}"):
            found = self._api().volumes(filters={"label": f"{LABEL_PROJECT}={project}"}) or {}
        return sorted(str(v["Name"]) for v in found.get("Volumes") or ())

    def mount_sources(self, project: str) -> list[str]:
        """The host paths the project's containers (running or not) bind-mount."""
        with _translated(f"listing containers of {project}"):
            found = self._api().containers(
                all=True, filters={"label": f"{LABEL_PROJECT}={project}"}
            )
        return sorted(
            {
                str(m["Source"])
                for c in found or ()
                for m in c.get("Mounts") or ()
                if m.get("Type") == "bind" and m.get("Source")
            }
        )

    # -- containers --

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        name = container_name(req.project, req.replica)
        with _translated(f"starting {name}"):
            self._clear_name(name)
            if warn is not None:
                self._warn_if_root(req, name, warn)
            container_id = self._create(req, name)
            try:
                self._api().start(container_id)
            except docker.errors.APIError:
                # A container that cannot start (unknown user, OCI runtime errors) is useless
                # to keep; the error says what went wrong. A bad command does not land here:
                # docker-init starts fine and exits 127, which list_replicas then reports.
                self._api().remove_container(container_id, force=True, v=True)
                raise
        return container_id

    def _clear_name(self, name: str) -> None:
        """Remove a stopped container holding the name; refuse to replace a running one."""
        try:
            state = self._api().inspect_container(name)["State"]
        except docker.errors.NotFound:
            return
        if state.get("Running"):
            raise RuntimeAdapterError(f"container {name} is already running; stop it first")
        self._api().remove_container(name, force=True, v=True)

    def _warn_if_root(self, req: ReplicaRun, name: str, warn: Progress) -> None:
        user = req.service.user
        if user is None:
            try:
                config = self._api().inspect_image(req.image_id).get("Config") or {}
            except docker.errors.ImageNotFound as e:
                raise RuntimeAdapterError(
                    f"image {req.image_id} of {name} is not present: build or pull it first"
                ) from e
            user = str(config.get("User") or "")
        if _is_root(user):
            warn(f"{name} runs as root: set `user:` in compose.yaml or USER in the Dockerfile")

    def _create(self, req: ReplicaRun, name: str) -> str:
        service = req.service
        api = self._api()
        networks = sorted(req.networks.items())
        udp = _udp_bindings(req) if networks else {}
        # The file's container settings (init, capabilities, ulimits, logging, DNS...).
        options = create_options(service, req.extra_hosts.items())
        host_config = api.create_host_config(
            network_mode=networks[0][0] if networks else "host",
            port_bindings=udp or None,
            # Conveyor's agent restarts replicas itself so HAProxy's view stays consistent.
            restart_policy={"Name": "no"},
            mounts=_mounts(req),
            nano_cpus=_ns(service.limits.cpus) if service.limits.cpus else None,
            mem_limit=service.limits.memory,
            pids_limit=service.limits.pids,
            **options.host,
        )
        created = api.create_container(
            image=req.image_id,
            name=name,
            command=list(service.command) if service.command is not None else None,
            entrypoint=list(service.entrypoint) if service.entrypoint is not None else None,
            environment=dict(req.env),
            labels=_labels(req),
            user=service.user,
            working_dir=service.working_dir,
            stop_signal=service.stop_signal,
            stop_timeout=math.ceil(service.stop_grace_period),
            healthcheck=_healthcheck(service.healthcheck),
            host_config=host_config,
            ports=[(int(port), proto) for port, proto in (k.split("/") for k in udp)] or None,
            networking_config=(
                api.create_networking_config(
                    {networks[0][0]: api.create_endpoint_config(aliases=list(networks[0][1]))}
                )
                if networks
                else None
            ),
            detach=True,
            **options.container,
        )
        container_id = str(created["Id"])
        try:
            # API 1.41 attaches one network at creation; the others before the start.
            for network, names in networks[1:]:
                api.connect_container_to_network(container_id, network, aliases=list(names))
        except docker.errors.APIError:
            api.remove_container(container_id, force=True, v=True)
            raise
        return container_id

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        with _translated(f"listing containers of {project}"):
            containers = self._docker().containers.list(
                all=True,
                filters={"label": f"{LABEL_PROJECT}={project}"},
                # A container removed between the list and its inspect is simply gone.
                ignore_removed=True,
            )
            observed = (_observed(c.attrs) for c in containers)
            return sorted((o for o in observed if o is not None), key=lambda o: o.replica)

    def inspect(self, container_id: str) -> ObservedReplica | None:
        with _translated(f"inspecting {container_id[:12]}"):
            try:
                attrs = self._api().inspect_container(container_id)
            except docker.errors.NotFound:
                return None
        return _observed(attrs)

    def stop(self, container_id: str, signal: str, grace: float) -> int | None:
        with _translated(f"stopping {container_id[:12]}"):
            try:
                self._signal(container_id, signal)
                if not self._wait(container_id, grace):
                    self._signal(container_id, "SIGKILL")
                    self._wait(container_id, _KILL_WAIT)
                state = self._api().inspect_container(container_id)["State"]
            except docker.errors.NotFound:
                return None
        return None if state.get("Running") else int(state.get("ExitCode", 0))

    def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Send a signal at once (tests and benchmarks simulate crashes with it)."""
        with _translated(f"killing {container_id[:12]}"), suppress(docker.errors.NotFound):
            self._signal(container_id, signal)

    def _signal(self, container_id: str, signal: str) -> None:
        try:
            self._api().kill(container_id, signal=signal)
        except docker.errors.APIError as e:
            # 409: it is not running (any more); that is what the caller wanted anyway.
            if e.status_code != 409:
                raise

    def _wait(self, container_id: str, timeout: float) -> bool:
        """True when the container stopped within `timeout` seconds."""
        try:
            self._api().wait(container_id, timeout=max(timeout, 0.001))
        except requests.exceptions.RequestException:
            # The SDK gives the HTTP read timeout back as a requests error.
            return False
        return True

    def remove(self, container_id: str) -> None:
        with _translated(f"removing {container_id[:12]}"):
            try:
                # v=True: anonymous volumes go with the container; named ones stay.
                self._api().remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:  # "removal … is already in progress"
                    raise

    # -- project networks and service addresses --

    def list_networks(self, project: str, names: Iterable[str] = ()) -> list[ObservedNetwork]:
        return docker_networks.list_networks(self._api(), project, names)

    def ensure_network(self, req: NetworkRun) -> ObservedNetwork:
        return docker_networks.ensure_network(self._api(), req)

    def remove_network(self, docker_name: str) -> None:
        docker_networks.remove_network(self._api(), docker_name)

    def list_addresses(self, project: str) -> list[ObservedAddress]:
        return docker_networks.list_addresses(self._api(), project)

    def run_address(self, req: AddressRun) -> ObservedAddress:
        return docker_networks.run_address(self._api(), req)

    # -- logs --

    def logs(
        self, project: str, service: str, follow: bool, tail: int | None
    ) -> Generator[tuple[str, str], None, None]:
        """(replica, line) pairs. Without `follow`: every replica's lines (the last `tail`
        of each) merged by timestamp. With `follow`: lines as they arrive until every
        replica's stream ends; `close()` the generator to stop early.

        The replicas are listed at call time, so a missing daemon raises here, not later."""
        targets = self._service_replicas(project, service)
        tail_arg: int | str = "all" if tail is None else tail
        if follow:
            return self._follow(targets, tail_arg)
        return _each(self._merged(targets, tail_arg))

    def _service_replicas(self, project: str, service: str) -> list[tuple[str, str]]:
        """(replica id, container id) of the service's containers."""
        filters = {"label": [f"{LABEL_PROJECT}={project}", f"{LABEL_SERVICE}={service}"]}
        with _translated(f"listing containers of {project}/{service}"):
            found = self._api().containers(all=True, filters=filters)
        pairs = ((c.get("Labels", {}).get(LABEL_REPLICA), c["Id"]) for c in found)
        return sorted((str(r), str(i)) for r, i in pairs if r)

    def _merged(self, targets: list[tuple[str, str]], tail: int | str) -> list[tuple[str, str]]:
        stamped: list[tuple[tuple[str, str], int, str, str]] = []
        for replica, container_id in targets:
            with _translated(f"reading logs of {replica}"):
                try:
                    raw = self._api().logs(container_id, timestamps=True, tail=tail)
                except docker.errors.NotFound:
                    continue
            for raw_line in raw.decode("utf-8", "replace").splitlines():
                timestamp, line = _split_log_line(raw_line)
                stamped.append((_log_key(timestamp), len(stamped), replica, line))
        stamped.sort()
        return [(replica, line) for _, _, replica, line in stamped]

    def _follow(
        self, targets: list[tuple[str, str]], tail: int | str
    ) -> Generator[tuple[str, str], None, None]:
        lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
        streams: list[Any] = []
        try:
            for replica, container_id in targets:
                with _translated(f"following logs of {replica}"):
                    stream = self._api().logs(
                        container_id, stream=True, follow=True, timestamps=True, tail=tail
                    )
                streams.append(stream)
                threading.Thread(
                    target=_pump,
                    args=(replica, stream, lines),
                    daemon=True,
                    name=f"logs-{replica}",
                ).start()
            open_streams = len(streams)
            while open_streams:
                item = lines.get()
                if item is None:
                    open_streams -= 1
                else:
                    yield item
        finally:
            # Closing the sockets ends the pump threads of a consumer that stopped early.
            for stream in streams:
                stream.close()


def _each(items: list[tuple[str, str]]) -> Generator[tuple[str, str], None, None]:
    # A generator either way, so callers may close() what `logs` returns.
    yield from items


def _pump(replica: str, chunks: Iterable[bytes], out: queue.Queue[tuple[str, str] | None]) -> None:
    """Feed one container's log stream into `out` line by line; None marks its end."""
    pending = b""
    try:
        # Closing the stream from the consumer's thread surfaces here as one of these;
        # it ends the stream just like EOF does.
        with suppress(OSError, ValueError, AttributeError, requests.exceptions.RequestException):
            for chunk in chunks:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    out.put((replica, _log_text(raw)))
        if pending:
            out.put((replica, _log_text(pending)))
    finally:
        out.put(None)


def _log_text(raw: bytes) -> str:
    return _split_log_line(raw.decode("utf-8", "replace"))[1]


# --- errors -------------------------------------------------------------------------------


def _build_failure(tag: str, error: str, recent: Iterable[str]) -> str:
    output = "\n".join(f"  {line}" for line in recent)
    return f"building {tag} failed: {error.strip()}\nlast lines of the build:\n{output}"


def _pull_failure(ref: str, detail: str) -> str:
    return (
        f"cannot pull image {ref}: the registry could not be reached "
        f"or the image does not exist ({detail})"
    )


def _pull_line(event: JSON) -> str:
    """One progress line per layer state change; byte-count updates are left out."""
    if event.get("progress"):
        return ""
    status = str(event.get("status", ""))
    layer = event.get("id")
    return f"{layer}: {status}" if layer else status
