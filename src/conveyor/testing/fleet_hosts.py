"""Test hosts for provisioning and fleet tests: containers with their own filesystem, sshd and
Docker Engine (Docker in Docker), on an `--internal` network the test owns.

Network-namespace hosts share this machine's filesystem, so an Ansible play "on" them would
change this machine; these hosts are separate machines as far as SSH, Ansible and the docker SDK
can tell. The recipe is reference/README.md's "Hosts as containers": `--privileged` is refused
here, so the capabilities are listed; dockerd inside runs with overlay2 (vfs where the kernel
refuses an overlay there), no bridge, no iptables.

    with fleet_of_hosts(2) as fleet:
        web = fleet.hosts[0]
        web.ssh("docker", "info")            # the real ssh client, with the fleet's key
        web.fleet_host(roles=("app", "edge"))  # the model's FleetHost for it
        fleet.ssh_config                      # a file for `ssh -F` / ansible's ssh args

Everything made is named `<prefix>-<random>-...` and removed by `TestFleet.close()` (the context
manager calls it), by id: containers, their volumes, the network and the key directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.model.fleet import FleetHost, HostRole
from conveyor.provision.bootstrap import RECIPE_LABEL, build_argv, recipe_digest

RECIPE = Path(__file__).parent / "fleet_host"
# :2 since its dockerd picks overlay2 (a branch still on :1 builds its own tag, not this one)
HOST_IMAGE = "conveyor/fleet-host:2"
# Test networks take a /24 of this range (Conveyor's own pool is 10.213.0.0/16): private, and
# never a range of anything outside this machine.
SUBNET_POOL = ipaddress.ip_network("10.214.0.0/16")
READY_TIMEOUT = 90.0  # seconds for sshd and dockerd to answer (dockerd starts in ~2 s)
# What a container needs to run its own dockerd without --privileged (reference/README.md).
RUN_OPTIONS = (
    "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp",
)  # fmt: skip
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
)  # fmt: skip


class FleetHostError(RuntimeError):
    """A test host could not be made or did not answer."""


def _run(argv: Sequence[str], *, input: bytes | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        list(argv), check=False, input=input, capture_output=True, timeout=timeout
    )
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise FleetHostError(f"{' '.join(argv[:4])}... failed ({done.returncode}): {err}")
    return done.stdout.decode(errors="replace")


def ensure_host_image() -> str:
    """Build the host image unless one built from this very recipe exists; one build at a time
    on this machine (pytest-xdist workers share it)."""
    digest = recipe_digest(RECIPE)
    with open(Path(tempfile.gettempdir()) / "conveyor-fleet-host.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        label = '{{ index .Config.Labels "' + RECIPE_LABEL + '" }}'
        found = subprocess.run(
            ["docker", "image", "inspect", "--format", label, HOST_IMAGE],
            check=False,
            capture_output=True,
            text=True,
        )
        if found.returncode != 0 or found.stdout.strip() != digest:
            _run(build_argv(HOST_IMAGE, RECIPE, digest), timeout=900)
    return HOST_IMAGE


@dataclass(frozen=True)
class TestHost:
    """One running test host."""

    __test__ = False  # not a pytest test class

    name: str  # the inventory name, e.g. "h1"
    container: str  # the container's id
    address: str  # its address on the test network (what SSH and other hosts reach)
    network: str  # the test network's id
    key: Path  # the private key root's authorized_keys accepts
    user: str = "root"

    def fleet_host(
        self, roles: Sequence[HostRole] = ("app",), labels: Mapping[str, str] | None = None
    ) -> FleetHost:
        return FleetHost(
            name=self.name,
            address=self.address,
            user=self.user,
            key=str(self.key),
            roles=tuple(roles),
            labels=dict(labels or {}),
        )

    def exec(self, *argv: str, input: bytes | None = None, timeout: float = 120) -> str:
        """Run a command inside the host (docker exec, not SSH); its stdout."""
        flags = ["-i"] if input is not None else []
        return _run(["docker", "exec", *flags, self.container, *argv], input=input, timeout=timeout)

    def ssh(self, *argv: str, timeout: float = 60) -> str:
        """Run a command over real SSH as `user` with the fleet's key; its stdout."""
        return _run(
            ["ssh", *SSH_OPTIONS, "-i", str(self.key), f"{self.user}@{self.address}", *argv],
            timeout=timeout,
        )

    def docker_ready(self) -> bool:
        done = subprocess.run(
            ["docker", "exec", self.container, "docker", "info", "--format", "{{.ID}}"],
            check=False,
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0

    def kill_dockerd(self) -> None:
        """The host's engine dies (SIGKILL to the PID in its pid file); containers with it."""
        self.exec("sh", "-c", "kill -9 $(cat /run/docker.pid) && rm -f /run/docker.pid")

    def start_dockerd(self) -> None:
        self.exec("/usr/local/sbin/fleet-host-init", "dockerd")
        _wait(self.docker_ready, f"dockerd on {self.name}")

    def cut_link(self) -> None:
        """The host drops off the network (its processes keep running)."""
        _run(["docker", "network", "disconnect", "--force", self.network, self.container])

    def linked(self) -> bool:
        """Whether the host is on the test network (a cut link takes it off)."""
        fmt = "{{range $k, $v := .NetworkSettings.Networks}}{{$v.NetworkID}} {{end}}"
        return self.network in _run(["docker", "inspect", "--format", fmt, self.container]).split()

    def restore_link(self) -> None:
        _run(["docker", "network", "connect", "--ip", self.address, self.network, self.container])

    def load_image(self, image: str) -> None:
        """Copy an image of this machine's engine into the host's engine."""
        saved = subprocess.run(
            ["docker", "save", image], check=False, capture_output=True, timeout=300
        )
        if saved.returncode != 0:
            raise FleetHostError(f"docker save {image}: {saved.stderr.decode().strip()}")
        self.exec("docker", "load", "--quiet", input=saved.stdout, timeout=300)


@dataclass
class TestFleet:
    """Hosts on one test network, and what they were made with."""

    __test__ = False

    name: str
    network: str
    subnet: str
    workdir: Path
    key: Path
    hosts: list[TestHost] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def ssh_config(self) -> Path:
        """An ssh_config (for `ssh -F`, Ansible's ssh args or the docker SDK) naming every
        host by its inventory name, with the key and no host-key prompts."""
        path = self.workdir / "ssh_config"
        lines: list[str] = []
        for host in self.hosts:
            lines += [
                f"Host {host.name} {host.address}",
                f"  HostName {host.address}",
                f"  User {host.user}",
                f"  IdentityFile {host.key}",
                "  IdentitiesOnly yes",
                "  StrictHostKeyChecking no",
                "  UserKnownHostsFile /dev/null",
                "  LogLevel ERROR",
            ]
        path.write_text("\n".join(lines) + "\n")
        return path

    def host(self, name: str) -> TestHost:
        return next(h for h in self.hosts if h.name == name)

    def restore(self) -> None:
        """Undo what a test broke: every host on the network and its dockerd answering."""
        for host in self.hosts:
            if not host.linked():
                host.restore_link()
            if not host.docker_ready():
                host.start_dockerd()
            _wait(functools.partial(_answers_ssh, host), f"sshd on {host.name}")

    def close(self) -> None:
        """Remove what was made, by id; a failure to remove one thing does not keep the rest."""
        # Each host's engine first, gracefully, its containers killed: `docker rm -f` of a host
        # whose dockerd still runs containers took minutes here, against seconds this way.
        stops = [
            subprocess.Popen(
                ["docker", "exec", host.container, "sh", "-c", _STOP_ENGINE],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for host in self.hosts
        ]
        for stop in stops:
            try:
                stop.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stop.kill()
                stop.wait()
        # All at once: removing a host is mostly deleting its engine's layers (I/O bound).
        removals = [
            subprocess.Popen(
                ["docker", "rm", "-f", "-v", host.container],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for host in self.hosts
        ]
        for removal in removals:
            removal.wait()
        removals = [
            subprocess.Popen(
                ["docker", "volume", "rm", "-f", volume],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for volume in self.volumes
        ]
        for removal in removals:
            removal.wait()
        subprocess.run(["docker", "network", "rm", self.network], check=False, capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


# Kill the host's containers, then stop its dockerd and wait (at most 20 s) until it is gone.
_STOP_ENGINE = (
    'ids=$(docker ps -q 2>/dev/null); [ -z "$ids" ] || docker kill $ids >/dev/null 2>&1; '
    "pid=$(cat /run/docker.pid 2>/dev/null) || exit 0; kill -TERM $pid 2>/dev/null; "
    "for i in $(seq 100); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.2; done"
)


def _wait(ready: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise FleetHostError(f"{what} did not answer within {timeout:.0f} s")
        time.sleep(0.3)


def _free_subnet() -> ipaddress.IPv4Network:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    ids = _run(["docker", "network", "ls", "-q"]).split()
    if ids:
        fmt = "{{range .IPAM.Config}}{{.Subnet}} {{end}}"
        for text in _run(["docker", "network", "inspect", "--format", fmt, *ids]).split():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(text, strict=False))
    candidates = list(SUBNET_POOL.subnets(new_prefix=24))
    start = secrets.randbelow(len(candidates))  # parallel workers rarely pick the same one
    for subnet in candidates[start:] + candidates[:start]:
        assert isinstance(subnet, ipaddress.IPv4Network)
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    raise FleetHostError(f"no free /24 left in {SUBNET_POOL}")


@contextlib.contextmanager
def fleet_of_hosts(count: int, *, prefix: str = "cvfleet") -> Iterator[TestFleet]:
    """`count` hosts named h1..hN, ready (sshd and dockerd answer), removed on exit."""
    image = ensure_host_image()
    name = f"{prefix}-{secrets.token_hex(3)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    key = workdir / "id_ed25519"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)])
    public = (workdir / "id_ed25519.pub").read_text().strip()
    fleet: TestFleet | None = None
    for _attempt in range(3):  # another worker may take the same subnet between look and make
        subnet = _free_subnet()
        made = subprocess.run(
            ["docker", "network", "create", "--internal", "--subnet", str(subnet), name],
            check=False,
            capture_output=True,
            text=True,
        )
        if made.returncode == 0:
            fleet = TestFleet(name, made.stdout.strip(), str(subnet), workdir, key)
            break
    if fleet is None:
        shutil.rmtree(workdir, ignore_errors=True)
        raise FleetHostError(f"could not create the test network {name}")
    try:
        addresses = list(ipaddress.ip_network(fleet.subnet).hosts())[10:]
        for index in range(1, count + 1):
            host_name = f"h{index}"
            volume = f"{name}-{host_name}-docker"
            fleet.volumes.append(volume)
            address = str(addresses[index])
            run = [
                "docker", "run", "-d", "--name", f"{name}-{host_name}",
                "--hostname", host_name, "--network", fleet.network, "--ip", address,
                *RUN_OPTIONS, "-v", f"{volume}:/var/lib/docker",
                "-e", f"AUTHORIZED_KEY={public}", image,
            ]  # fmt: skip
            container = _run(run).strip()
            fleet.hosts.append(TestHost(host_name, container, address, fleet.network, key))
        for host in fleet.hosts:
            _wait(functools.partial(_answers_ssh, host), f"sshd on {host.name}")
            _wait(host.docker_ready, f"dockerd on {host.name}")
        yield fleet
    finally:
        fleet.close()


def _answers_ssh(host: TestHost) -> bool:
    try:
        host.ssh("true", timeout=10)
    except (FleetHostError, subprocess.TimeoutExpired):
        return False
    return True
