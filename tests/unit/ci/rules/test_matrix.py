"""`parallel` names and needs expansion, driven by matrix_cases.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ci.select.matrix import (
    combinations,
    expand_names,
    expand_needs,
    instances,
    parallel_names,
)
from conveyor.model.pipeline import JobSpec, NeedSpec, ParallelSpec, Where

DATA = yaml.safe_load((Path(__file__).parent / "matrix_cases.yaml").read_text())
CASES = DATA["instances"]


def parallel(value: Any) -> ParallelSpec | None:
    if value is None:
        return None
    if isinstance(value, int):
        return ParallelSpec(count=value)
    return ParallelSpec(
        matrix=tuple(
            {k: (v,) if isinstance(v, str) else tuple(v) for k, v in entry.items()}
            for entry in value
        )
    )


def job(name: str, value: Any) -> JobSpec:
    return JobSpec(name=name, where=Where(file=".gitlab-ci.yml"), parallel=parallel(value))


def need(value: Any) -> NeedSpec:
    if isinstance(value, str):
        return NeedSpec(job=value)
    return NeedSpec(job=value["job"], parallel_matrix=tuple(value.get("matrix", ())))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_instance_names_and_nodes(case: dict[str, Any]) -> None:
    made = instances(job(case["job"], case["parallel"]))
    assert [i.name for i in made] == case["names"]
    assert all(i.spec == case["job"] for i in made)
    if case["parallel"] is None:
        assert made[0].node_index is None and made[0].node_total is None
        return
    assert [i.node_index for i in made] == list(range(1, len(made) + 1))
    assert {i.node_total for i in made} == {len(made)}


def test_matrix_instances_carry_their_values() -> None:
    made = instances(job("build", [{"OS": ["linux"], "ARCH": ["amd64", "arm64"]}]))
    assert [i.variables for i in made] == [
        {"OS": "linux", "ARCH": "amd64"},
        {"OS": "linux", "ARCH": "arm64"},
    ]


def test_combinations_accept_scalars() -> None:
    assert combinations([{"A": "x", "B": ("1", "2")}]) == [
        {"A": "x", "B": "1"},
        {"A": "x", "B": "2"},
    ]


@pytest.mark.parametrize("case", DATA["needs"], ids=lambda c: c["name"])
def test_needs_expansion(case: dict[str, Any]) -> None:
    jobs = [job("build", None), job("test", case["parallel"])]
    expanded = expand_needs([need(n) for n in case["needs"]], parallel_names(jobs))
    assert [n.job for n in expanded] == case["expanded"]
    assert all(n.parallel_matrix == () for n in expanded)


def test_expanded_needs_keep_their_options() -> None:
    jobs = [job("test", 2)]
    spec = NeedSpec(job="test", artifacts=False, optional=True)
    expanded = expand_needs([spec], parallel_names(jobs))
    assert [(n.artifacts, n.optional) for n in expanded] == [(False, True), (False, True)]


def test_dependencies_expand_to_every_instance() -> None:
    names = parallel_names([job("test", 2), job("lint", None)])
    assert expand_names(["lint", "test"], names) == ["lint", "test 1/2", "test 2/2"]
