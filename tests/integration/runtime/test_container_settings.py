"""Compose container settings reach a real container: what `docker inspect` and the container
itself report, from a compose file through the spec loader and the Docker Engine adapter."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from conveyor.deploy.config_files import config_files
from conveyor.runtime.docker_engine import DockerEngine
from conveyor.runtime.protocol import LABEL_PROJECT, ReplicaRun
from conveyor.spec.compose import load_compose
from conveyor.testing.net import free_port

COMPOSE = """\
services:
  app:
    image: {image}
    command: ["python", "-c", "import time; time.sleep(600)"]
    hostname: settings-test
    init: false
    read_only: true
    tmpfs: ["/scratch:size=8m"]
    shm_size: 32m
    cap_drop: [NET_RAW, MKNOD]
    cap_add: [SYS_PTRACE]
    security_opt: [no-new-privileges:true]
    ulimits:
      nofile: {{soft: 1024, hard: 2048}}
    sysctls:
      kernel.msgmax: 65536
    devices: ["/dev/null:/dev/conveyor-null:r"]
    extra_hosts: ["ldap.example.test:10.20.0.5"]
    group_add: ["4242"]
    pids_limit: 64
    mem_reservation: 64m
    logging:
      driver: json-file
      options: {{max-size: 1m, max-file: "2"}}
    configs:
      - source: greeting
        target: /etc/greeting
    volumes:
      - data:/data
volumes:
  data:
    driver: local
    driver_opts:
      type: none
      o: bind
      device: {data}
configs:
  greeting:
    content: hello from a config
"""


@pytest.fixture
def client(dockerd: None) -> Iterator[Any]:
    api = docker.from_env()
    yield api
    api.close()


@pytest.fixture
def project(client: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    label = {"label": f"{LABEL_PROJECT}={name}"}
    for container in client.containers.list(all=True, filters=label, ignore_removed=True):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)


def test_a_container_gets_the_files_settings(
    client: Any, project: str, base_image: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    compose = tmp_path / "compose.yaml"
    compose.write_text(COMPOSE.format(image=base_image, data=data))
    stack = load_compose([compose], environ={}).stack
    service = stack.services["app"]
    engine = DockerEngine(client)
    volume = stack.volumes["data"]
    docker_volume = engine.ensure_volume(
        project, "data", external=False, driver=volume.driver, driver_opts=volume.driver_opts
    )
    container_id = engine.run(
        ReplicaRun(
            project=project,
            replica="app-1-1",
            release=1,
            spec_hash="s1",
            image_id=engine.ensure_image(base_image, lambda _line: None),
            port=free_port(),
            service=service,
            secret_files=config_files(service, tmp_path / "configs"),
            volume_names={"data": docker_volume},
        )
    )
    container = client.containers.get(container_id)
    host = container.attrs["HostConfig"]
    assert container.attrs["Config"]["Hostname"] == "settings-test"
    assert host["Init"] is False
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/scratch": "size=8m"}
    assert host["ShmSize"] == 32 * 1024**2
    assert sorted(host["CapDrop"]) == ["MKNOD", "NET_RAW"]
    assert host["CapAdd"] == ["SYS_PTRACE"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host["Sysctls"] == {"kernel.msgmax": "65536"}
    assert host["Devices"] == [
        {
            "PathOnHost": "/dev/null",
            "PathInContainer": "/dev/conveyor-null",
            "CgroupPermissions": "r",
        }
    ]
    assert host["ExtraHosts"] == ["ldap.example.test:10.20.0.5"]
    assert host["GroupAdd"] == ["4242"]
    assert host["PidsLimit"] == 64
    assert host["MemoryReservation"] == 64 * 1024**2
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}

    def run(*argv: str) -> str:
        code, output = container.exec_run(list(argv))
        assert code == 0, output
        return str(output.decode())

    # The container itself sees them, not only the engine's record.
    assert run("cat", "/proc/sys/kernel/msgmax").strip() == "65536"
    assert run("sh", "-c", "ulimit -n").strip() == "1024"
    assert "10.20.0.5\tldap.example.test" in run("cat", "/etc/hosts")
    assert run("cat", "/etc/greeting") == "hello from a config"
    code, _ = container.exec_run(["touch", "/read-only-root"])
    assert code != 0  # read_only
    run("touch", "/scratch/ok")  # the tmpfs is writable
    # the volume's driver options bind the host directory
    run("sh", "-c", "echo written-in-container > /data/proof")
    assert (data / "proof").read_text() == "written-in-container\n"
