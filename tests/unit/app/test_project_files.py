"""Which compose files a project reads, as Docker Compose picks them, and how they are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.app.project import Project, find_compose_files
from conveyor.errors import ConveyorError, NoComposeFile


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("services:\n  web:\n    image: nginx\n")


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (["compose.yaml"], ["compose.yaml"]),
        (["compose.yaml", "compose.override.yaml"], ["compose.yaml", "compose.override.yaml"]),
        (["compose.yml", "compose.override.yml"], ["compose.yml", "compose.override.yml"]),
        (
            ["docker-compose.yml", "docker-compose.override.yml"],
            ["docker-compose.yml", "docker-compose.override.yml"],
        ),
        # the first default name wins; its own override spelling is preferred
        (
            ["compose.yaml", "docker-compose.yml", "compose.override.yml"],
            ["compose.yaml", "compose.override.yml"],
        ),
    ],
)
def test_default_files_and_their_override(
    tmp_path: Path, present: list[str], expected: list[str]
) -> None:
    touch(tmp_path, *present)
    assert find_compose_files([], {}, tmp_path) == [Path(n) for n in expected]


def test_dash_f_wins_over_compose_file_and_reads_no_override(tmp_path: Path) -> None:
    touch(tmp_path, "compose.yaml", "compose.override.yaml", "a.yaml", "b.yaml")
    environ = {"COMPOSE_FILE": "compose.yaml"}
    given = [Path("a.yaml"), Path("b.yaml")]
    assert find_compose_files(given, environ, tmp_path) == given


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"COMPOSE_FILE": "base.yaml:ops/prod.yaml"}, ["base.yaml", "ops/prod.yaml"]),
        (
            {"COMPOSE_FILE": "base.yaml;ops/prod.yaml", "COMPOSE_PATH_SEPARATOR": ";"},
            ["base.yaml", "ops/prod.yaml"],
        ),
    ],
)
def test_compose_file_lists_files(
    tmp_path: Path, environ: dict[str, str], expected: list[str]
) -> None:
    touch(tmp_path, "base.yaml", "ops/prod.yaml", "compose.override.yaml")
    assert find_compose_files([], environ, tmp_path) == [Path(n) for n in expected]


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(NoComposeFile, match="no compose file in"):
        find_compose_files([], {}, tmp_path)
    with pytest.raises(NoComposeFile, match=r"^prod\.yaml: no such file$"):
        find_compose_files([], {"COMPOSE_FILE": "prod.yaml"}, tmp_path)


def test_a_project_merges_the_override_and_names_files_as_typed(tmp_path: Path) -> None:
    touch(tmp_path, "compose.yaml")
    (tmp_path / "compose.override.yaml").write_text("services:\n  web:\n    scale: two\n")
    project = Project.open(None, None, {}, tmp_path)
    assert project.compose_file == tmp_path / "compose.yaml"
    assert project.file_paths() == [tmp_path / "compose.yaml", tmp_path / "compose.override.yaml"]
    with pytest.raises(ConveyorError) as caught:
        project.stack()
    # relative, as the user would type it, not /tmp/... of the machine
    assert str(caught.value) == (
        "compose.override.yaml:3: services.web.scale: must be an integer, got 'two'"
    )


def test_profiles_given_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: nginx\n  debug:\n    image: busybox\n    profiles: [dev]\n"
    )
    assert set(Project.open(None, None, {}, tmp_path).stack().services) == {"web"}
    with_dev = Project.open(None, None, {}, tmp_path, profiles=["dev"])
    assert set(with_dev.stack().services) == {"web", "debug"}
    from_env = Project.open(None, None, {"COMPOSE_PROFILES": "dev"}, tmp_path)
    assert set(from_env.stack().services) == {"web", "debug"}
