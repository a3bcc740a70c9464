"""`parallel` expansion with GitLab's job names (GitLab's config Normalizer).

- `parallel: 3` gives "job 1/3", "job 2/3", "job 3/3".
- `parallel:matrix` gives one job per combination, entry by entry, each entry's values crossed
  in the order of its keys (the last key varies fastest), named `job: [v1, v2]` with the
  values in key order. Instances are numbered 1..N across all entries: GitLab sets
  CI_NODE_INDEX and CI_NODE_TOTAL for matrix jobs too.
- `needs: [job]` and `dependencies: [job]` on a parallel job mean every instance;
  `needs:parallel:matrix` picks the instances whose names the selection spells (GitLab builds
  those names from the need's own keys, so a selection must list them in the job's key order).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from conveyor.model.pipeline import JobSpec, NeedSpec

__all__ = [
    "Instance",
    "combinations",
    "count_name",
    "expand_names",
    "expand_needs",
    "instances",
    "matrix_name",
    "parallel_names",
]


@dataclass(frozen=True)
class Instance:
    """One job of the pipeline made from a JobSpec (the spec itself when not parallel)."""

    name: str
    spec: str
    variables: dict[str, str] = field(default_factory=dict)  # the matrix combination
    node_index: int | None = None
    node_total: int | None = None


def combinations(matrix: Iterable[Mapping[str, Sequence[str] | str]]) -> list[dict[str, str]]:
    """Every combination of a `parallel:matrix`, entry after entry, keys in written order."""
    out: list[dict[str, str]] = []
    for entry in matrix:
        keys = list(entry)
        values = [(v,) if isinstance(v, str) else tuple(v) for v in entry.values()]
        out.extend(dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values))
    return out


def matrix_name(job: str, combination: Mapping[str, str]) -> str:
    return f"{job}: [{', '.join(combination.values())}]"


def count_name(job: str, index: int, total: int) -> str:
    return f"{job} {index}/{total}"


def instances(job: JobSpec) -> list[Instance]:
    """The pipeline jobs one JobSpec becomes."""
    parallel = job.parallel
    if parallel is not None and parallel.count is not None:
        total = parallel.count
        return [
            Instance(count_name(job.name, i, total), job.name, {}, i, total)
            for i in range(1, total + 1)
        ]
    if parallel is not None and parallel.matrix:
        combos = combinations(parallel.matrix)
        return [
            Instance(matrix_name(job.name, combo), job.name, combo, i, len(combos))
            for i, combo in enumerate(combos, start=1)
        ]
    return [Instance(job.name, job.name)]


def parallel_names(jobs: Iterable[JobSpec]) -> dict[str, list[str]]:
    """Instance names of every parallel job, by JobSpec name (non-parallel jobs are absent)."""
    out: dict[str, list[str]] = {}
    for job in jobs:
        made = instances(job)
        if job.parallel is not None and (job.parallel.count is not None or job.parallel.matrix):
            out[job.name] = [instance.name for instance in made]
    return out


def expand_names(names: Iterable[str], parallel: Mapping[str, Sequence[str]]) -> list[str]:
    """`dependencies:` with every parallel job replaced by all its instances."""
    return [expanded for name in names for expanded in parallel.get(name, (name,))]


def expand_needs(
    needs: Iterable[NeedSpec], parallel: Mapping[str, Sequence[str]]
) -> list[NeedSpec]:
    """`needs:` with parallel jobs replaced by their instances (all, or the matrix selection).

    A selection on a job that is not parallel is ignored, as GitLab does. Names a selection
    spells that the job does not have are kept: the caller reports them as undefined needs."""
    out: list[NeedSpec] = []
    for need in needs:
        if need.job not in parallel:
            out.append(need.model_copy(update={"parallel_matrix": ()}))
            continue
        if need.parallel_matrix:
            names = [matrix_name(need.job, combo) for combo in need.parallel_matrix]
        else:
            names = list(parallel[need.job])
        out.extend(need.model_copy(update={"job": name, "parallel_matrix": ()}) for name in names)
    return out
