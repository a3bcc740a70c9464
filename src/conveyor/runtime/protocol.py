"""The seam between Conveyor and whatever runs containers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from pydantic import Field

from conveyor.model.release import ObservedAddress, ObservedNetwork, ObservedReplica
from conveyor.model.stack import Frozen, Service
from conveyor.plan.network import DesiredAddress, DesiredNetwork, SubnetPool

Progress = Callable[[str], None]

# Labels every container Conveyor owns carries; `list_replicas` finds them by these.
LABEL_PROJECT = "io.conveyor.project"
LABEL_SERVICE = "io.conveyor.service"
LABEL_REPLICA = "io.conveyor.replica"
LABEL_RELEASE = "io.conveyor.release"
LABEL_SPEC = "io.conveyor.spec-hash"
LABEL_PORT = "io.conveyor.port"
# Project networking: the network whose address a replica is reached at; on networks and
# service addresses, what they were made for.
LABEL_NETWORK = "io.conveyor.network"
LABEL_ADDRESS = "io.conveyor.address"


class ReplicaRun(Frozen):
    """Everything needed to start one replica; computed by the deploy layer."""

    project: str
    replica: str  # replica id; the container is named f"{project}-{replica}"
    release: int
    spec_hash: str
    image_id: str
    port: int  # host networking: the assigned host port; project networks: the app port or 0
    service: Service
    env: dict[str, str] = Field(default_factory=dict)  # full environment, PORT included
    extra_hosts: dict[str, str] = Field(default_factory=dict)  # name -> 127.0.0.1
    secret_files: dict[str, str] = Field(default_factory=dict)  # target path -> host file
    # volume key (VolumeMount.source) -> Docker volume name, as `ensure_volume` returned it;
    # needed for external volumes, whose names are not project-scoped. Keys missing here
    # get the project-scoped name `<project>_<key>`.
    volume_names: dict[str, str] = Field(default_factory=dict)
    # Project networking: Docker network -> the names the replica answers to there (none for a
    # routed service: its name is its address's). Empty: host networking.
    networks: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # A fleet (project networking): publish `port` on an ephemeral host port of this address,
    # where the other hosts' HAProxies reach the replica (docs/fleet.md, "Addresses").
    publish_on: str | None = None
    # A fleet: the controller's files of the replica (`file:` configs and secrets, project
    # bind mounts) -> the content digest its release recorded (plan.fleet_files); copied to
    # the replica's host by the fleet runtime. Empty on one host.
    files: dict[str, str] = Field(default_factory=dict)


class NetworkRun(Frozen):
    """A project network to create (or, when external, to find)."""

    project: str
    network: DesiredNetwork
    pool: SubnetPool = SubnetPool()


class AddressRun(Frozen):
    """A service address to start: a container that only holds a network namespace on the
    service's networks, under its names."""

    project: str
    address: DesiredAddress
    image: str  # any local image with `sleep` (Conveyor's base image)
    ips: dict[str, str] = Field(default_factory=dict)  # Docker network -> its static address


class Runtime(Protocol):
    def build(self, project: str, service: Service, progress: Progress) -> tuple[str, str]:
        """Build the service's image; return (tag, image id)."""
        ...

    def ensure_image(self, ref: str, progress: Progress) -> str:
        """Return the image id of `ref`, pulling it when it is not present."""
        ...

    def pull(self, ref: str, progress: Progress) -> str:
        """Pull `ref` even when present; return its image id."""
        ...

    def local_image(self, ref: str) -> str | None:
        """The id of `ref` when it is present locally."""
        ...

    def tag(self, image_id: str, ref: str) -> None:
        """Give an image another name (`repo:tag`)."""
        ...

    def exposed_ports(self, image_id: str) -> tuple[int, ...]:
        """The TCP ports the image declares (Dockerfile `EXPOSE`), sorted."""
        ...

    def ensure_volume(
        self,
        project: str,
        name: str,
        external: bool,
        driver: str | None = None,
        driver_opts: Mapping[str, str] | None = None,
    ) -> str:
        """Create the project's named volume if missing (with `driver` and its options);
        return the Docker volume name. An existing volume is used as it is."""
        ...

    def remove_volumes(self, project: str) -> list[str]:
        """Remove the named volumes Conveyor created for `project` (never external ones);
        return their Docker names. Their data is gone."""
        ...

    def run(self, req: ReplicaRun, warn: Progress | None = None) -> str:
        """Start a replica; return its container id. `warn` hears what a user should fix
        (a replica running as root).

        Replaces a stopped container of the same name."""
        ...

    def list_replicas(self, project: str) -> list[ObservedReplica]:
        """Every container of the project (running or not), router state left as 'absent'."""
        ...

    def inspect(self, container_id: str) -> ObservedReplica | None:
        """One container's state (None when it does not exist); cheaper than list_replicas."""
        ...

    def stop(self, container_id: str, signal: str, grace: float) -> int | None:
        """Send `signal`, wait up to `grace` seconds, then SIGKILL; return the exit code."""
        ...

    def remove(self, container_id: str) -> None:
        """Remove the container (stopped or not); a missing container is not an error."""
        ...

    def logs(
        self, project: str, service: str, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str]]:
        """(replica id, line) pairs of the service's replicas, interleaved by timestamp."""
        ...

    # project networks and service addresses --------------------------------------------------

    def list_networks(self, project: str, names: Iterable[str] = ()) -> list[ObservedNetwork]:
        """The project's networks, and of `names` (external networks) those that exist."""
        ...

    def ensure_network(self, req: NetworkRun) -> ObservedNetwork:
        """Create the network unless it exists, with a subnet of the pool that overlaps no
        other Docker network and no route of the host. An external network must exist."""
        ...

    def remove_network(self, docker_name: str) -> None:
        """A missing network is not an error."""
        ...

    def list_addresses(self, project: str) -> list[ObservedAddress]: ...

    def run_address(self, req: AddressRun) -> ObservedAddress:
        """Start the service address (replacing a stopped one of the same name)."""
        ...
