"""The browser-test image steps of `conveyor bootstrap` against a fake Docker Engine and
registry: built from its recipe (again when the recipe changes), pushed to Conveyor's registry
(again when the image changed), each step idempotent."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.errors import BootstrapError, RegistryError
from conveyor.provision.bootstrap import (
    BASE_IMAGE,
    RECIPE_LABEL,
    SELENIUM_IMAGE,
    SELENIUM_RECIPE,
    BootstrapConfig,
    Result,
    plan_browser_image,
    recipe_digest,
    run_bootstrap,
)


@dataclass
class FakeRegistry:
    url: str = "127.0.0.1:5000"
    up: bool = False
    starts: bool = True
    served: dict[str, str] = field(default_factory=dict)  # "repo:tag" -> digest

    def ensure(self) -> None:
        if not self.starts:
            raise RegistryError("127.0.0.1:5000 answers (HTTP 404): another service holds it")
        self.up = True

    def credentials(self) -> tuple[str, str]:
        return "conveyor", "pw"

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        return self.served.get(f"{repository}:{tag}") if self.up else None


@dataclass
class FakeDocker:
    """Images with labels and repo digests, changed by build, tag and push as docker would."""

    registry: FakeRegistry
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # image -> labels
    repo_digests: dict[str, list[str]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    client_configs: list[dict[str, object]] = field(default_factory=list)
    builds: int = 0

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> Result:
        call = tuple(argv)
        self.calls.append(call)
        match call:
            case ("docker", "image", "inspect", "--format", fmt, image):
                if image not in self.labels:
                    return Result(1, stderr=f"No such image: {image}")
                if "RepoDigests" in fmt:
                    return Result(0, json.dumps(self.repo_digests.get(image, [])))
                return Result(0, self.labels[image].get(RECIPE_LABEL, "<no value>"))
            case ("docker", "build", *options, context):
                label = options[options.index("--label") + 1]
                image = options[options.index("-t") + 1]
                key, _, value = label.partition("=")
                self.labels[image] = {key: value}
                self.repo_digests[image] = []  # a new image: pushed nowhere yet
                self.builds += 1
                assert Path(context).is_dir()
                return Result(0, "sha256:new")
            case ("docker", "tag", _image, _target):
                return Result(0)
            case ("docker", "--config", client, "push", "--quiet", target):
                self.client_configs.append(json.loads((Path(client) / "config.json").read_text()))
                assert (Path(client) / "config.json").stat().st_mode & 0o077 == 0
                host, _, rest = target.partition("/")
                repository, _, tag = rest.rpartition(":")
                digest = f"sha256:{self.builds:064d}"
                self.registry.served[f"{repository}:{tag}"] = digest
                self.repo_digests[f"{repository}:{tag}"].append(f"{host}/{repository}@{digest}")
                return Result(0)
        raise AssertionError(f"unexpected command {call}")

    def pipe(self, producer: Sequence[str], consumer: Sequence[str], *, timeout: float) -> Result:
        raise AssertionError("not used")

    def spawn(self, argv: Sequence[str], log: Path, **kw: object) -> int:
        raise AssertionError("not used")

    def running(self, pid: int, program: str, markers: Sequence[str] = ()) -> bool:
        return False

    def exit_code(self, pid: int) -> int | None:
        return None

    def kill(self, pid: int, signum: int) -> None:
        raise AssertionError("not used")

    def commands(self) -> list[str]:
        """Every command but the checks."""
        return [" ".join(c) for c in self.calls if c[:3] != ("docker", "image", "inspect")]


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    recipe = tmp_path / "selenium"
    recipe.mkdir()
    (recipe / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\n")
    (recipe / "requirements.txt").write_text("selenium==4.27.1\n")
    return recipe


def config(tmp_path: Path, recipe: Path) -> BootstrapConfig:
    return BootstrapConfig(state_dir=tmp_path / "state", selenium_recipe=recipe)


def bootstrap(
    cfg: BootstrapConfig, docker: FakeDocker, registry: FakeRegistry | None, check_only: bool
) -> tuple[bool, list[str]]:
    reports: list[str] = []
    ok = run_bootstrap(
        check_only,
        lambda name, status: reports.append(f"{name}: {status}"),
        steps=plan_browser_image(cfg, docker, registry),
        preflight=lambda: None,
    )
    return ok, reports


def test_the_steps_build_then_push(tmp_path: Path, recipe: Path) -> None:
    registry = FakeRegistry()
    steps = plan_browser_image(config(tmp_path, recipe), FakeDocker(registry), registry)
    assert [s.name for s in steps] == [
        f"image {SELENIUM_IMAGE}",
        f"image 127.0.0.1:5000/{SELENIUM_IMAGE}",
    ]
    assert all(s.explanation for s in steps)
    only_built = plan_browser_image(config(tmp_path, recipe), FakeDocker(registry), None)
    assert [s.name for s in only_built] == [f"image {SELENIUM_IMAGE}"]


def test_a_fresh_host_builds_and_pushes_once(tmp_path: Path, recipe: Path) -> None:
    registry = FakeRegistry()
    docker = FakeDocker(registry)
    cfg = config(tmp_path, recipe)

    assert bootstrap(cfg, docker, registry, check_only=True) == (
        False,
        [f"image {SELENIUM_IMAGE}: missing", f"image 127.0.0.1:5000/{SELENIUM_IMAGE}: missing"],
    )
    assert docker.commands() == []  # checking changes nothing

    ok, reports = bootstrap(cfg, docker, registry, check_only=False)
    assert ok, reports
    digest = recipe_digest(recipe)
    assert docker.commands() == [
        "docker build --network host --quiet --label "
        f"{RECIPE_LABEL}={digest} -t {SELENIUM_IMAGE} {recipe}",
        f"docker tag {SELENIUM_IMAGE} 127.0.0.1:5000/{SELENIUM_IMAGE}",
        docker.commands()[2],
    ]
    assert docker.commands()[2].endswith(f"push --quiet 127.0.0.1:5000/{SELENIUM_IMAGE}")
    assert registry.up
    # the push logged in with the registry's credentials, in a client config thrown away after
    assert docker.client_configs == [{"auths": {"127.0.0.1:5000": {"auth": "Y29udmV5b3I6cHc="}}}]
    client_dir = docker.commands()[2].split()[2]
    assert not Path(client_dir).exists()

    docker.calls.clear()
    assert bootstrap(cfg, docker, registry, check_only=False) == (
        True,
        [f"image {SELENIUM_IMAGE}: ok", f"image 127.0.0.1:5000/{SELENIUM_IMAGE}: ok"],
    )
    assert docker.commands() == []


def test_a_changed_recipe_rebuilds_and_pushes_again(tmp_path: Path, recipe: Path) -> None:
    registry = FakeRegistry()
    docker = FakeDocker(registry)
    cfg = config(tmp_path, recipe)
    assert bootstrap(cfg, docker, registry, check_only=False)[0]
    (recipe / "requirements.txt").write_text("selenium==4.28.0\n")
    docker.calls.clear()
    ok, reports = bootstrap(cfg, docker, registry, check_only=False)
    assert ok
    assert reports == [
        f"image {SELENIUM_IMAGE}: installing…",
        f"image {SELENIUM_IMAGE}: done",
        f"image 127.0.0.1:5000/{SELENIUM_IMAGE}: installing…",
        f"image 127.0.0.1:5000/{SELENIUM_IMAGE}: done",
    ]
    assert [c.split()[1] for c in docker.commands()] == ["build", "tag", "--config"]


def test_a_registry_that_cannot_start_fails_the_push_step(tmp_path: Path, recipe: Path) -> None:
    registry = FakeRegistry(starts=False)
    docker = FakeDocker(registry)
    with pytest.raises(BootstrapError, match=r"registry at 127\.0\.0\.1:5000 is not available"):
        bootstrap(config(tmp_path, recipe), docker, registry, check_only=False)
    assert [c.split()[1] for c in docker.commands()] == ["build"]


def test_the_recipe_digest_follows_names_and_contents(recipe: Path) -> None:
    before = recipe_digest(recipe)
    assert recipe_digest(recipe) == before
    (recipe / "extra").write_text("")
    with_extra = recipe_digest(recipe)
    assert with_extra != before
    (recipe / "extra").rename(recipe / "other")
    assert recipe_digest(recipe) not in (before, with_extra)


def test_the_shipped_recipe_builds_on_the_base_image() -> None:
    dockerfile = (SELENIUM_RECIPE / "Dockerfile").read_text()
    assert f"\nFROM {BASE_IMAGE}\n" in dockerfile
    copied = {
        word
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for word in line.split()[1:-1]
    }
    assert copied == {p.name for p in SELENIUM_RECIPE.iterdir()} - {"Dockerfile"}
    assert "\nUSER tester\n" in dockerfile
