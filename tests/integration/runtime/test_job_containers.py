"""The CI job-containers adapter against the real dockerd: a job container's whole life, a
service's state, and errors that say what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import RuntimeAdapterError
from conveyor.runtime.job_containers import DockerJobContainers
from conveyor.runtime.job_protocol import Bind, JobContainer


@pytest.fixture
def containers(base_image: str) -> Iterator[DockerJobContainers]:
    adapter = DockerJobContainers()
    adapter.connect()
    created: list[str] = []
    original = adapter.create

    def create(spec: JobContainer) -> str:
        cid = original(spec)
        created.append(cid)
        return cid

    adapter.create = create  # type: ignore[method-assign]
    yield adapter
    for cid in created:
        adapter.remove(cid)


def test_a_job_container_runs_attached_with_its_bind_and_environment(
    containers: DockerJobContainers, base_image: str, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("from the host\n")
    cid = containers.create(
        JobContainer(
            image=base_image,
            role="job",
            command=("sh", "-c", 'cat /work/in.txt; echo "$GREETING" >&2; exit 3'),
            environment={"GREETING": "hello"},
            working_dir="/work",
            binds={str(tmp_path): Bind("/work", read_only=True)},
        )
    )
    output = containers.attach(cid)
    containers.start(cid)
    assert containers.wait(cid) == 3
    # stdout and stderr are separate streams: both arrive, in no guaranteed order
    assert sorted(b"".join(output).splitlines()) == [b"from the host", b"hello"]
    assert containers.state(cid).exit_code == 3
    assert sorted(containers.tail(cid, 2).splitlines()) == ["from the host", "hello"]
    containers.kill(cid)  # stopped already: fine
    containers.remove(cid)
    containers.remove(cid)  # gone already: fine


def test_a_running_container_is_killed(containers: DockerJobContainers, base_image: str) -> None:
    cid = containers.create(JobContainer(image=base_image, role="service", command=("sleep", "60")))
    containers.start(cid)
    assert containers.state(cid).running
    containers.kill(cid)
    assert containers.wait(cid) == 137


def test_a_missing_image_that_cannot_be_pulled_says_so(containers: DockerJobContainers) -> None:
    with pytest.raises(RuntimeAdapterError, match=r"1:1/nope:x is not present and cannot"):
        containers.create(JobContainer(image="127.0.0.1:1/nope:x", role="job"))


def test_an_absent_daemon_is_reported_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(RuntimeAdapterError, match="cannot reach the Docker Engine at unix:///non"):
        DockerJobContainers().connect()


def test_labels_name_the_job_and_project_its_output_belongs_to(
    containers: DockerJobContainers, base_image: str
) -> None:
    import json
    import subprocess

    spec = JobContainer(
        image=base_image,
        role="job",
        command=("true",),
        labels={"io.conveyor.ci.job": "42", "io.conveyor.project": "shop", "io.conveyor.ci": "x"},
    )
    cid = containers.create(spec)
    out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True)
    labels = json.loads(out.stdout)[0]["Config"]["Labels"]
    # the role is the adapter's to set, whatever the labels say
    assert labels == {
        "io.conveyor.ci.job": "42",
        "io.conveyor.project": "shop",
        "io.conveyor.ci": "job",
    }
