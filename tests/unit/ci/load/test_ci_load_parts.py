"""Pieces of the loader whose edges a corpus file shows poorly: durations, limits, tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.ci.load.durations import parse_duration, parse_expire_in
from conveyor.ci.load.loader import load_pipeline
from conveyor.errors import SpecError
from conveyor.spec.yamlpos import load_yaml

DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600.0),
        ("30 mins", 1800.0),
        ("1h 30m", 5400.0),
        ("2h20min", 8400.0),
        ("2 hrs 20 min", 8400.0),
        ("3 mins 4 sec", 184.0),
        ("1 week", 7 * DAY),
        ("3 weeks and 2 days", 23 * DAY),
        ("6 mos 1 day", 181 * DAY),
        ("47 yrs 6 mos and 4d", (47 * 365 + 6 * 30 + 4) * DAY),
        ("1.5 hours", 5400.0),
        ("1:30", 90.0),
        ("1:30:00", 5400.0),
        ("  2 Days ", 2 * DAY),
    ],
)
def test_gitlab_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1 hour banana", "5 parsecs", "-5", "h"])
def test_bad_durations_are_rejected_whole(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_expire_in_never_keeps_artifacts() -> None:
    assert parse_expire_in("never") is None
    assert parse_expire_in("1 day") == DAY


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root / ".gitlab-ci.yml"


def test_150_includes_is_the_limit(tmp_path: Path) -> None:
    files = {f"parts/p{i:03}.yml": f"job{i}:\n  script: [echo {i}]\n" for i in range(151)}
    root = _write(tmp_path, {**files, ".gitlab-ci.yml": "include: parts/*.yml\n"})
    with pytest.raises(SpecError, match=r"include: more than 150 included files"):
        load_pipeline(root)
    (tmp_path / "parts" / "p150.yml").unlink()
    assert len(load_pipeline(root).jobs) == 150


def test_wildcard_matching_nothing_includes_nothing(tmp_path: Path) -> None:
    root = _write(tmp_path, {".gitlab-ci.yml": "include: ci/*.yml\njob:\n  script: [x]\n"})
    pipeline = load_pipeline(root)
    assert pipeline.includes == ()
    assert list(pipeline.jobs) == ["job"]


def _chain(kind: str, levels: int) -> str:
    """`levels` nested extends (or !reference tags) ending in job `job`."""
    lines = [".t0:", "  script: [echo bottom]"]
    for i in range(1, levels):
        if kind == "extends":
            lines += [f".t{i}:", f"  extends: .t{i - 1}"]
        else:
            lines += [f".t{i}:", f"  script: !reference [.t{i - 1}, script]"]
    last = levels - 1
    if kind == "extends":
        lines += ["job:", f"  extends: .t{last}"]
    else:
        lines += ["job:", f"  script: !reference [.t{last}, script]"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["extends", "reference"])
def test_nesting_limits(kind: str, tmp_path: Path) -> None:
    # GitLab: eleven levels of extends, ten levels of nested !reference tags.
    allowed = 11 if kind == "extends" else 10
    root = _write(tmp_path, {".gitlab-ci.yml": _chain(kind, allowed)})
    assert load_pipeline(root).jobs["job"].script == ("echo bottom",)
    root.write_text(_chain(kind, allowed + 1), encoding="utf-8")
    with pytest.raises(SpecError, match="levels"):
        load_pipeline(root)


def test_reference_tag_is_only_known_to_the_ci_loader() -> None:
    # Compose files go through the same YAML loader without tags: still an error there.
    with pytest.raises(SpecError, match="unsupported YAML tag '!reference'"):
        load_yaml("a: !reference [b, c]\n", "compose.yaml")


def test_custom_tag_factory_gets_content_and_line() -> None:
    doc = load_yaml("a:\n  b: !twice [1, 2]\n", "x.yaml", tags={"!twice": lambda v, n: (v * 2, n)})
    assert doc.data == {"a": {"b": ([1, 2, 1, 2], 2)}}


def test_unreadable_root_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_pipeline(tmp_path / "missing.yml")
