"""The labels of a container's lines, from the Docker labels Conveyor gave the container
(runtime.protocol for replicas and one-shot services, runtime.job_protocol for CI job and
service containers). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.model.logs import LogLabels, Stream
from conveyor.runtime.job_protocol import LABEL_JOB
from conveyor.runtime.protocol import (
    LABEL_ADDRESS,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_REPLICA,
    LABEL_SERVICE,
)


def collected(labels: Mapping[str, str]) -> bool:
    """Whether a container's output is collected: every container of a project but the
    service addresses (they only hold a network namespace and write nothing)."""
    return LABEL_ADDRESS not in labels


def labels_of(
    container: str,
    docker_labels: Mapping[str, str],
    stream: Stream,
    project: str,
    environment: str | None,
    host: str | None = None,
) -> LogLabels:
    """A line's labels: the project the collector follows (the container's own label says
    the same), the environment it was told, the fleet host whose engine it read the container
    from (None on one host), and what the container's labels say."""
    release = docker_labels.get(LABEL_RELEASE, "")
    job = docker_labels.get(LABEL_JOB, "")
    return LogLabels(
        project=docker_labels.get(LABEL_PROJECT, project),
        environment=environment,
        # None for a CI job's container (LABEL_CI): it is found by its job id
        service=docker_labels.get(LABEL_SERVICE),
        replica=docker_labels.get(LABEL_REPLICA),
        release=int(release) if release.isdigit() else None,
        container=container,
        stream=stream,
        job=int(job) if job.isdigit() else None,
        host=host,
    )
