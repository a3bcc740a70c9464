"""Runs a plan's steps one at a time against the runtime and the router, journaling each
step before it acts. Raises StepFailed on the first step that fails; the caller decides
(failure_action) whether to roll back, pause or continue."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor.deploy import probe
from conveyor.deploy.config_files import config_files
from conveyor.deploy.env import replica_env, replica_hosts
from conveyor.deploy.ports import pick_port
from conveyor.deploy.project import ProjectPaths
from conveyor.errors import ConveyorError, RolloutError, StepFailed
from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.release import Observed, ObservedAddress, Release
from conveyor.model.routing import FULL_WEIGHT
from conveyor.model.stack import Service
from conveyor.plan.actions import Plan, Step
from conveyor.plan.network import (
    DesiredNetwork,
    SubnetPool,
    attachments,
    desired_address,
    namespace_name,
    peer_hosts,
    slot_address,
)
from conveyor.plan.routes import Namespace, router_config
from conveyor.provision.bootstrap import BASE_IMAGE
from conveyor.router.protocol import Router, RouterConfig, ServerEntry
from conveyor.runtime.protocol import AddressRun, NetworkRun, ReplicaRun, Runtime
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline

# A run-to-completion service (a migration) that has not exited by then fails the rollout.
ONESHOT_TIMEOUT = 900.0

# Replicas bind their app port on every interface of their own namespace.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@dataclass
class Placement:
    container_id: str
    endpoint: Endpoint
    # A fleet's replica: its ports -> the host ports they are reached at (ServerEntry.ports).
    ports: dict[int, int] = field(default_factory=dict)


# Picks a host-networking replica's port: (replica, ports promised already) -> a free port.
PortPicker = Callable[[str, set[int]], int]


@dataclass
class Executor:
    """Applies steps toward `release`. `frontends` maps routed services to their stable ports."""

    paths: ProjectPaths
    runtime: Runtime
    router: Router
    store: Store
    release: Release
    frontends: dict[str, int]
    observed: Observed
    timeline: Timeline  # bound to the rollout: every step is reported as an event
    stats_port: int | None = None
    networks: tuple[DesiredNetwork, ...] = ()  # the project networks of `release`
    pool: SubnetPool = field(default_factory=SubnetPool)
    # Service addresses run `sleep` from the base image `conveyor bootstrap` provides.
    address_image: str = BASE_IMAGE
    slots: dict[str, int] = field(default_factory=dict)  # service addresses' stable slots
    placements: dict[str, Placement] = field(default_factory=dict)
    addresses: dict[str, ObservedAddress] = field(default_factory=dict)
    subnets: dict[str, str] = field(default_factory=dict)  # Conveyor's networks -> subnet
    # A fleet: a host-networking replica's port, free on the host it is placed on
    # (deploy.fleet_runtime.FleetRuntime.pick_port); None: free on this machine.
    port_picker: PortPicker | None = None

    def __post_init__(self) -> None:
        for r in self.observed.replicas:
            self.placements[r.replica] = Placement(
                r.container_id, r.endpoint, dict(r.published_ports)
            )
        for a in self.observed.addresses:
            self.addresses[a.service] = a
        for n in self.observed.networks:
            if n.spec_hash and n.subnet:  # external networks: Docker places addresses there
                self.subnets[n.docker_name] = n.subnet

    # ------------------------------------------------------------------------------------------

    def run(
        self,
        plan: Plan,
        rollout_id: int,
        skip_batches: set[tuple[str, int]] | None = None,
        start_seq: int = 0,
    ) -> None:
        """Run every step from `start_seq`. `skip_batches` holds (service, batch) pairs whose
        remaining steps are skipped (failure_action=continue)."""
        skip = skip_batches if skip_batches is not None else set()
        journal = self.store.journal
        for seq, step in enumerate(plan.steps[start_seq:], start=start_seq):
            svc, rep = step.service or None, step.replica or None
            data = {"seq": seq, "step": step.kind}
            if step.batch and (step.service, step.batch) in skip:
                journal.begin(rollout_id, seq, step)
                journal.end(rollout_id, seq, "skipped")
                self.timeline.emit(
                    "step.skipped", step.describe(), data=data, service=svc, replica=rep
                )
                continue
            journal.begin(rollout_id, seq, step)
            self.timeline.emit("step.started", step.describe(), data=data, service=svc, replica=rep)
            t0 = time.monotonic()
            try:
                detail = self.apply(step)
            except ConveyorError as e:
                journal.end(rollout_id, seq, "failed", str(e))
                self.timeline.emit(
                    "step.failed",
                    step.describe(),
                    level="error",
                    data=data | {"error": str(e), "seconds": round(time.monotonic() - t0, 3)},
                    service=svc,
                    replica=rep,
                )
                raise StepFailed(step, seq, str(e)) from e
            journal.end(rollout_id, seq, "done", detail)
            self.timeline.emit(
                "step.done",
                step.describe(),
                data=data | {"detail": detail, "seconds": round(time.monotonic() - t0, 3)},
                service=svc,
                replica=rep,
            )

    # ------------------------------------------------------------------------------------------

    def apply(self, step: Step) -> str | None:  # noqa: PLR0912 — one arm per step kind
        match step.kind:
            case "frontends":
                return self._frontends(step.services)
            case "start":
                return self._start(step.service, step.replica)
            case "await":
                return self._await(step.service, step.replica)
            case "route":
                return self._route(step.service, step.replica)
            case "drain":
                return self._drain(step.service, step.replica)
            case "unroute":
                # A dead replica's sessions are retried elsewhere once their connect times out;
                # cutting them would fail requests a live replica can still answer.
                dead = step.reason in ("dead", "no container")
                self.router.remove_server(step.service, step.replica, cut_sessions=not dead)
                return None
            case "stop":
                return self._stop(step.service, step.replica)
            case "remove":
                cid = self._placement(step.replica).container_id
                self.runtime.remove(cid)
                self.placements.pop(step.replica, None)
                return None
            case "sleep":
                time.sleep(step.seconds)
                return None
            case "monitor":
                return self._monitor(step.service, step.seconds)
            case "network":
                return self._network(step.network)
            case "address":
                return self._address(step.service)
            case "unaddress":
                gone = self.addresses.pop(step.service, None)
                if gone is not None:
                    self.runtime.remove(gone.container_id)
                return None
            case "unnetwork":
                self.runtime.remove_network(step.network)
                return None
        raise ConveyorError(f"unknown step kind {step.kind!r}")  # pragma: no cover

    def _service(self, name: str) -> Service:
        sr = self.release.services.get(name)
        if sr is None:
            raise ConveyorError(f"service {name!r} is not in release {self.release.number}")
        return sr.service

    def _placement(self, replica: str) -> Placement:
        p = self.placements.get(replica)
        if p is None:
            raise ConveyorError(f"no container known for replica {replica}")
        return p

    def router_config(self, services: tuple[str, ...]) -> RouterConfig:
        return router_config(
            self.release, services, self.frontends, self.namespaces(), self.stats_port
        )

    def namespaces(self) -> dict[str, Namespace]:
        """Where each service address's namespace is, for HAProxy's binds."""
        project = self.release.project
        return {
            service: Namespace(name=namespace_name(project, service, a.container_id), netns=a.netns)
            for service, a in self.addresses.items()
            if a.running and a.netns
        }

    def _network(self, name: str) -> str:
        network = next((n for n in self.networks if n.name == name), None)
        if network is None:
            raise ConveyorError(f"network {name!r} is not in release {self.release.number}")
        made = self.runtime.ensure_network(
            NetworkRun(project=self.release.project, network=network, pool=self.pool)
        )
        if not network.external and made.subnet:
            self.subnets[made.docker_name] = made.subnet
        return f"{made.docker_name} {made.subnet or ''}".strip()

    def _address(self, service: str) -> str:
        """(Re)start the service's address. Its old namespace dies with it; the `frontends`
        step planned next binds HAProxy inside the new one."""
        address = desired_address(self.release.stack, service, self.slots.get(service))
        if address is None:
            raise ConveyorError(f"service {service!r} has no service address in this release")
        ips: dict[str, str] = {}
        if address.slot is not None:
            ips = {
                network: slot_address(self.subnets[network], address.slot)
                for network in address.networks
                if network in self.subnets
            }
        old = self.addresses.pop(service, None)
        if old is not None:
            self.runtime.remove(old.container_id)
        made = self.runtime.run_address(
            AddressRun(
                project=self.release.project,
                address=address,
                image=self.address_image,
                ips=ips,
            )
        )
        self.addresses[service] = made
        return f"container {made.container_id[:12]} on {', '.join(sorted(address.networks))}"

    def _frontends(self, services: tuple[str, ...]) -> str:
        self.router.ensure(self.router_config(services))
        self.store.environment.set_frontends(services)
        return ", ".join(f"{s}:{self.frontends.get(s)}" for s in services)

    def _start(self, service: str, replica: str) -> str:
        sr = self.release.services[service]
        svc = sr.service
        project_networks = svc.networking == "project"
        if project_networks:
            port = svc.app_port() or 0  # every replica has its own namespace: same port
        else:
            taken = {p.endpoint.port for p in self.placements.values()}
            taken |= set(self.frontends.values())
            port = self.port_picker(replica, taken) if self.port_picker else pick_port(taken)
        volume_names: dict[str, str] = {}
        for m in svc.volumes:
            if m.type == "volume" and m.source:
                vol = self.release.stack.volumes.get(m.source)
                external = bool(vol and vol.external)
                volume_names[m.source] = self.runtime.ensure_volume(
                    self.release.project,
                    vol.name if vol and external else m.source,  # `name:` of an external one
                    external,
                    vol.driver if vol else None,
                    vol.driver_opts if vol else None,
                )
        req = ReplicaRun(
            project=self.release.project,
            replica=replica,
            release=self.release.number,
            spec_hash=sr.spec_hash,
            image_id=sr.image_id,
            port=port,
            service=svc,
            env=replica_env(
                svc,
                project=self.release.project,
                replica=replica,
                release=self.release.number,
                port=port,
                frontends=self.frontends,
                peers=self._peers(svc) if project_networks else None,
                listen_host=ALL_INTERFACES if project_networks else LOOPBACK,
            ),
            # Project networks: peers by name from /etc/hosts, which needs no dockerd.
            extra_hosts=(
                peer_hosts(self.release.stack, svc, self.slots, self.subnets)
                if project_networks
                else replica_hosts(self.frontends)
            ),
            secret_files={**self._secret_files(svc), **config_files(svc, self.paths.configs_dir)},
            volume_names=volume_names,
            files=sr.files,
            networks=attachments(self.release.stack, svc) if project_networks else {},
        )
        cid = self.runtime.run(req, warn=self._warn(service, replica))
        # The runtime says where the replica answers (its network decides the host).
        state = self.runtime.inspect(cid)
        if state is None:
            raise RolloutError(f"replica {replica} vanished right after it started")
        self.placements[replica] = Placement(cid, state.endpoint, dict(state.published_ports))
        return f"container {cid[:12]} on {state.endpoint}"

    def _peers(self, svc: Service) -> dict[str, Endpoint]:
        """The routed services a replica on project networks reaches by name: those sharing
        one of its networks, at their main port."""
        mine = set(svc.networks)
        peers: dict[str, Endpoint] = {}
        for name, sr in self.release.services.items():
            other = sr.service
            port = other.app_port()
            if (
                other.networking == "project"
                and other.routed
                and port
                and mine & set(other.networks)
            ):
                peers[name] = Endpoint(host=name, port=port)
        return peers

    def _warn(self, service: str, replica: str) -> Callable[[str], None]:
        def warn(message: str) -> None:
            self.timeline.emit(
                "rollout.note", message, level="warning", service=service, replica=replica
            )

        return warn

    def _secret_files(self, svc: Service) -> dict[str, str]:
        out: dict[str, str] = {}
        for m in svc.secrets:
            sec = self.release.stack.secrets.get(m.source)
            if sec is None:
                continue
            if sec.file:
                out[m.target] = sec.file
            elif sec.environment:
                # Docker without swarm has no secret store: write the value to a private file.
                self.paths.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                f = self.paths.secrets_dir / m.source
                f.write_text(os.environ.get(sec.environment, ""))
                f.chmod(0o444)
                out[m.target] = str(f)
        return out

    def _await(self, service: str, replica: str) -> str:
        """Wait for the replica's probe. Fails fast when the container exits."""
        svc = self._service(service)
        pl = self._placement(replica)
        pr = svc.routing.probe
        deadline = time.monotonic() + (pr.start_timeout if pr else 60.0)
        interval = pr.interval if pr else 0.2
        attempts = 0
        oneshot = service in self.release.stack.oneshots()
        oneshot_deadline = time.monotonic() + ONESHOT_TIMEOUT
        while True:
            attempts += 1
            state = self.runtime.inspect(pl.container_id)
            if state is None:
                raise RolloutError(f"replica {replica} vanished while starting")
            if oneshot:
                if not state.running and state.exit_code == 0:
                    return "completed successfully"
                if not state.running:
                    raise RolloutError(f"{replica} exited with code {state.exit_code}")
                if time.monotonic() >= oneshot_deadline:
                    raise RolloutError(f"{replica} did not finish within {ONESHOT_TIMEOUT:g}s")
                time.sleep(interval)
                continue
            if not state.running and state.exit_code == 0 and not svc.restart_policy.restarts(0):
                return "exited 0 (its restart policy keeps it stopped)"
            if not state.running:
                raise RolloutError(
                    f"replica {replica} exited with code {state.exit_code} before it was healthy"
                )
            if self._healthy(svc, pl.endpoint, state.health):
                return f"healthy after {attempts} probe(s)"
            if state.health == "unhealthy":
                raise RolloutError(f"replica {replica} is unhealthy (its healthcheck failed)")
            if time.monotonic() >= deadline:
                what = f"GET {pr.path}" if pr else "its health check"
                raise RolloutError(
                    f"replica {replica} did not pass {what} within "
                    f"{pr.start_timeout if pr else 60.0:g}s"
                )
            time.sleep(interval)

    def _healthy(self, svc: Service, endpoint: Endpoint, health: str) -> bool:
        pr = svc.routing.probe
        if pr is not None:
            return probe.http_ok(endpoint, pr.path, pr.timeout) and health != "unhealthy"
        if svc.healthcheck is not None and svc.healthcheck.test != ("NONE",):
            return health == "healthy"
        if svc.routed:
            return probe.tcp_ok(endpoint, 1.0)
        return True  # a worker without probe or healthcheck: running is all we can know

    def _route(self, service: str, replica: str) -> str:
        pl = self._placement(replica)
        live = {s.server: s for s in self.router.servers() if s.backend == service}.get(replica)
        if live is not None and (live.admin_state == "maint" or live.endpoint != pl.endpoint):
            # In maintenance: an add or a removal a crash interrupted, maybe before its health
            # checks were enabled. Put in rotation as it is, it would never be marked down;
            # it takes no traffic, so it is added again from the start.
            self.router.remove_server(service, replica)
            live = None
        if live is not None:
            if live.weight != FULL_WEIGHT:  # changed behind Conveyor's back
                self.router.set_weight(service, replica, FULL_WEIGHT)
            self.router.set_state(service, replica, "ready")
        else:
            self.router.add_server(
                service, ServerEntry(name=replica, endpoint=pl.endpoint, ports=pl.ports)
            )
        return str(pl.endpoint)

    def _drain(self, service: str, replica: str) -> str:
        """Stop new requests, then wait until the replica's sessions end or its grace runs out."""
        svc = self.release.services.get(service)
        grace = svc.service.stop_grace_period if svc else 10.0
        self.router.set_state(service, replica, "drain")
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            live = [
                s for s in self.router.servers() if s.backend == service and s.server == replica
            ]
            if not live or live[0].sessions == 0:
                return "no sessions left"
            time.sleep(0.05)
        return f"grace period {grace:g}s ended with sessions open"

    def _stop(self, service: str, replica: str) -> str:
        pl = self._placement(replica)
        svc = self.release.services.get(service)
        signal = svc.service.stop_signal if svc else "SIGTERM"
        grace = svc.service.stop_grace_period if svc else 10.0
        code = self.runtime.stop(pl.container_id, signal, grace)
        self.runtime.remove(pl.container_id)
        self.placements.pop(replica, None)
        return f"exit code {code}"

    def _monitor(self, service: str, seconds: float) -> str:
        svc = self.release.services[service]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for r in self.runtime.list_replicas(self.release.project):
                if r.service == service and r.spec_hash == svc.spec_hash and not r.running:
                    raise RolloutError(
                        f"replica {r.replica} exited with code {r.exit_code} while monitored"
                    )
            time.sleep(0.25)
        return "stayed up"
