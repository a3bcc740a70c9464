"""runtime.docker_engine on a fleet: which TCP ports a replica publishes on its host's fleet
address (every port its service serves, the main one first), how they are asked of Docker
(an ephemeral host port each), and how the host ports Docker picked are read back."""

from __future__ import annotations

from conveyor.model.stack import ExposedPort, PortSpec, Service, ServiceNetwork
from conveyor.runtime.docker_engine import _udp_bindings, published_ports, published_tcp
from conveyor.runtime.protocol import ReplicaRun

APP = Service(
    name="app",
    networking="project",
    networks={"default": ServiceNetwork()},
    ports=(
        PortSpec(target=8000, published=8080),
        PortSpec(target=9000),  # admin, not published by the file
        PortSpec(target=5353, published=5353, protocol="udp"),
    ),
    expose=(ExposedPort(port=9100),),
)


def run(publish_on: str | None) -> ReplicaRun:
    return ReplicaRun(
        project="p",
        replica="app-1-1",
        release=1,
        spec_hash="s",
        image_id="sha256:x",
        port=8000,
        service=APP,
        networks={"p_default": ()},
        publish_on=publish_on,
    )


def test_a_fleet_replica_publishes_every_tcp_port_of_its_service() -> None:
    assert published_tcp(run("10.9.0.11")) == (8000, 9000, 9100)
    assert _udp_bindings(run("10.9.0.11")) == {
        "5353/udp": [("", 5353)],  # Docker's own UDP publishing, as on one host
        "8000/tcp": [("10.9.0.11", None)],  # None: Docker picks the host port
        "9000/tcp": [("10.9.0.11", None)],
        "9100/tcp": [("10.9.0.11", None)],
    }


def test_one_host_publishes_no_tcp_port() -> None:
    assert published_tcp(run(None)) == ()
    assert _udp_bindings(run(None)) == {"5353/udp": [("", 5353)]}


def test_the_host_ports_docker_bound_are_read_back_per_port() -> None:
    attrs = {
        "NetworkSettings": {
            "Ports": {
                "8000/tcp": [{"HostIp": "10.9.0.11", "HostPort": "32771"}],
                "9000/tcp": [{"HostIp": "10.9.0.11", "HostPort": "32772"}],
                "9100/tcp": None,  # exposed, not bound
                "5353/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
            }
        }
    }
    assert published_ports(attrs) == {8000: 32771, 9000: 32772}
    assert published_ports({"NetworkSettings": {"Ports": None}}) == {}
    assert published_ports({}) == {}
