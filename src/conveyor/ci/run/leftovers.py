"""What a pipeline runner that died (a SIGKILLed server) left running, found and stopped: the
containers of its docker jobs, by the labels every job container carries (the CI store's
directory and the job's id), and the process groups of its shell jobs, killed only while the
process recorded as their leader still leads them (a reused PID is never hit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.errors import RuntimeAdapterError
from conveyor.host import process_groups
from conveyor.runtime.job_protocol import LABEL_JOB, LABEL_STORE
from conveyor.store.db import Store
from conveyor.store.pipelines import JobRow


@dataclass
class LeftRunning:
    stopped: list[str] = field(default_factory=list)  # what was stopped, one phrase each
    problems: list[str] = field(default_factory=list)  # what could not be, and why


def store_labels(store: Store) -> dict[str, str]:
    """The labels that tie a job container to `store` (its job's id is added per job)."""
    return {LABEL_STORE: str(store.directory.resolve())}


def stop_left_running(store: Store, jobs: Sequence[JobRow]) -> LeftRunning:
    """Stop what `jobs` (of `store`, that no live process runs any more) left running."""
    out = LeftRunning()
    engine = None
    for job in jobs:
        who = f"job {job.name} (#{job.id})"
        group, leader = job.process_group, job.process_start
        if group is not None and leader is not None and process_groups.kill_group(group, leader):
            out.stopped.append(f"process group {group} of {who}")
        if job.executor != "docker":
            continue
        if engine is None:
            # Imported here: the Docker SDK is needed only when a docker job was left.
            from conveyor.runtime.job_containers import DockerJobContainers

            engine = DockerJobContainers()
        try:
            names = engine.remove_labelled({**store_labels(store), LABEL_JOB: str(job.id)})
        except RuntimeAdapterError as e:
            out.problems.append(f"the containers of {who} were not removed: {e}")
            continue
        out.stopped += [f"container {name} of {who}" for name in names]
    return out
