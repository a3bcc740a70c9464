"""Every good/*.yml loads, and the model holds what its sidecar `.expect.yaml` says.

The sidecar lists the salient fields only: mappings of model objects are compared key by
key for the keys it names; lists, and the data mappings `jobs` and `variables` (and the
dicts inside them), are compared whole, so a job or variable too many is a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ci.load.context import LoadContext
from conveyor.ci.load.loader import load_pipeline

GOOD = Path(__file__).parent / "good"
CASES = sorted(path.stem for path in GOOD.glob("*.yml"))
# Mappings whose keys are data (names), not model fields: no key may be missing or extra.
EXACT = {"jobs", "variables", "reports_other"}


def test_corpus_is_complete() -> None:
    expects = sorted(path.name.removesuffix(".expect.yaml") for path in GOOD.glob("*.expect.yaml"))
    assert expects == CASES
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", CASES)
def test_good_file_builds_expected_model(
    name: str, load_context: Callable[[Path, str], LoadContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(GOOD)
    expected = yaml.safe_load((GOOD / f"{name}.expect.yaml").read_text(encoding="utf-8"))

    pipeline = load_pipeline(Path(f"{name}.yml"), context=load_context(GOOD, name))

    assert pipeline.file == str(GOOD / f"{name}.yml")
    assert_matches(expected, pipeline.model_dump(mode="json"), name)


def assert_matches(expected: Any, actual: Any, path: str, exact: bool = False) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a mapping, got {actual!r}"
        if exact:
            assert sorted(actual) == sorted(expected), f"{path}: keys differ"
        for key, value in expected.items():
            assert key in actual, f"{path}: no field {key!r} in {sorted(actual)}"
            assert_matches(value, actual[key], f"{path}.{key}", key in EXACT)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            # Matrix entries are data mappings too.
            assert_matches(want, got, f"{path}[{index}]", path.endswith(("matrix", "variables")))
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
