"""A kubernetes environment's releases as commits of a deploy repository (a local bare
repository here): the trailers that make the log its release history, a delivery that
changes nothing commits nothing, a rollback is a revert, and the rendered overlay names the
digests (kubectl kustomize builds it)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conveyor.app import kube_delivery
from conveyor.errors import ActionRefused, NotFound
from conveyor.gitops.deploy_repo import DeployCheckout
from conveyor.gitops.kube_releases import History, parse, rollback_plan, trailers
from conveyor.model.deploy_repo import DeployRepo
from conveyor.model.environments import EnvironmentSpec, ServiceOverride
from conveyor.render.kubernetes import KubeOptions
from conveyor.spec.compose import Loaded, load_compose

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64
SOURCE_1 = "a" * 40
SOURCE_2 = "b" * 40


@pytest.fixture(autouse=True)
def _no_machine_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "deploy.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


def spec(bare: Path, path: str = "clusters/staging") -> EnvironmentSpec:
    return EnvironmentSpec(
        name="staging",
        branch="main",
        target="kubernetes",
        deploy=DeployRepo(repo=str(bare), branch="main", path=path),
        overrides={"web": ServiceOverride(replicas=3)},
    )


def deploy(bare: Path, path: str = "clusters/staging") -> DeployRepo:
    found = spec(bare, path).deploy
    assert found is not None
    return found


def writer(text: str) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "release.txt").write_text(text)

    return write


# --- the trailers (pure) ---------------------------------------------------------------------


def test_a_release_message_carries_what_the_history_is_read_from() -> None:
    from conveyor.gitops.kube_releases import release_message

    message = release_message("staging", 3, SOURCE_1, "shop", {"web": f"r/web:1@{DIGEST_1}"})
    found = parse("c" * 40, message)

    assert message.startswith(f"staging: release 3 of shop at {SOURCE_1[:12]}\n")
    assert trailers(message)["Conveyor-Source-Commit"] == SOURCE_1
    assert found is not None
    assert (found.environment, found.release, found.source, found.reverts) == (
        "staging", 3, SOURCE_1, ()
    )  # fmt: skip
    assert found.images == (("web", f"r/web:1@{DIGEST_1}"),)
    assert parse("d" * 40, "a person's commit\n\nno trailers\n") is None


def test_a_rollback_reverts_the_newest_release_in_force_each_time() -> None:
    from conveyor.gitops.kube_releases import release_message, rollback_message

    one = ("1" * 40, release_message("staging", 1, SOURCE_1, "shop", {"web": "r/web:1"}))
    two = ("2" * 40, release_message("staging", 2, SOURCE_2, "shop", {}))
    three = ("3" * 40, release_message("staging", 3, "c" * 40, "shop", {}))
    other = ("4" * 40, release_message("production", 9, SOURCE_1, "shop", {}))
    history = History.of("staging", [three, other, two, one])

    undone, target = rollback_plan(history, None)
    assert ([d.release for d in undone], target.release) == ([3], 2)
    assert history.next_number() == 4

    back = parse("5" * 40, rollback_message("staging", undone, target, "ann"))
    assert back is not None and back.reverts == ("3" * 40,)
    after = History.of("staging", [("5" * 40, rollback_message("staging", undone, target, "ann")),
                                   three, two, one])  # fmt: skip
    assert [d.release for d in after.releases()] == [2, 1]
    undone, target = rollback_plan(after, None)
    assert ([d.release for d in undone], target.release) == ([2], 1)
    # The revert names the images of the release in force again.
    again = parse("6" * 40, rollback_message("staging", undone, target, "ann"))
    assert again is not None and again.images == (("web", "r/web:1"),)
    # Straight to release 1: both newer ones undone in one revert.
    undone, target = rollback_plan(history, 1)
    assert ([d.release for d in undone], target.release) == ([3, 2], 1)
    with pytest.raises(ValueError, match="is the one delivered now"):
        rollback_plan(history, 3)
    with pytest.raises(LookupError, match="no release 7"):
        rollback_plan(history, 7)
    with pytest.raises(ValueError, match="no previous release"):
        rollback_plan(History.of("staging", [one]), None)


# --- the deploy repository (git) -------------------------------------------------------------


def test_a_delivery_commits_once_and_a_rollback_reverts_it(bare: Path, tmp_path: Path) -> None:
    checkout = DeployCheckout(deploy(bare), tmp_path / "clone", {})

    first = checkout.deliver("staging", SOURCE_1, "shop", writer("one\n"))
    again = checkout.deliver("staging", SOURCE_1, "shop", writer("one\n"))
    second = checkout.deliver("staging", SOURCE_2, "shop", writer("two\n"))

    assert (first.created, first.release) == (True, 1)
    assert (again.created, again.commit, again.release) == (False, first.commit, 1)
    assert (second.created, second.release) == (True, 2)
    assert git(bare, "rev-parse", "main") == second.commit
    assert git(bare, "show", "main:clusters/staging/release.txt") == "two"
    assert f"Conveyor-Source-Commit: {SOURCE_2}" in git(bare, "log", "-1", "--format=%B", "main")

    back = checkout.revert("staging", None, "ann")

    assert [d.commit for d in back.undone] == [second.commit]
    assert (back.target.release, back.target.source) == (1, SOURCE_1)
    assert git(bare, "rev-parse", "main") == back.commit
    assert git(bare, "diff", first.commit, back.commit, "--", "clusters/staging") == ""
    assert f"Conveyor-Reverts: {second.commit}" in git(bare, "log", "-1", "--format=%B", "main")
    with pytest.raises(ValueError, match="no previous release"):
        checkout.revert("staging", None, "ann")
    # The reverted tree is release 1's bytes: delivering release 1's commit changes nothing.
    assert not checkout.deliver("staging", SOURCE_1, "shop", writer("one\n")).created


def test_another_environments_commits_are_kept(bare: Path, tmp_path: Path) -> None:
    staging = DeployCheckout(deploy(bare), tmp_path / "a", {})
    production = DeployCheckout(deploy(bare, "clusters/production"), tmp_path / "b", {})
    staging.deliver("staging", SOURCE_1, "shop", writer("s1\n"))
    production.deliver("production", SOURCE_1, "shop", writer("p1\n"))
    staging.deliver("staging", SOURCE_2, "shop", writer("s2\n"))

    back = staging.revert("staging", None, "ann")

    assert back.target.source == SOURCE_1
    assert git(bare, "show", "main:clusters/production/release.txt") == "p1"
    assert git(bare, "show", "main:clusters/staging/release.txt") == "s1"
    assert len(git(bare, "rev-list", "main").split()) == 4


# --- images and the rendering ----------------------------------------------------------------


def _project(tmp_path: Path, compose: str) -> Loaded:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app" / "compose.yaml").write_text(compose)
    return load_compose([tmp_path / "app" / "compose.yaml"], "shop", {}, cwd=tmp_path / "app")


COMPOSE = """\
services:
  web:
    build: .
    image: registry.example.com/shop/web:abc
    x-conveyor: {port: 8000}
  db:
    image: postgres:16
    volumes: ["./init.sql:/docker-entrypoint-initdb.d/init.sql:ro"]
  cache:
    image: redis@sha256:3333333333333333333333333333333333333333333333333333333333333333
"""


def test_built_images_are_pinned_by_the_digest_their_registry_serves(tmp_path: Path) -> None:
    loaded = _project(tmp_path, COMPOSE)
    asked: list[str] = []

    def resolve(ref: str) -> str:
        asked.append(ref)
        return DIGEST_1

    images = kube_delivery.pinned_images(loaded.stack, resolve)

    assert asked == ["registry.example.com/shop/web:abc"]  # not postgres: a third party's
    assert images == {
        "web": f"registry.example.com/shop/web:abc@{DIGEST_1}",
        "cache": "redis@sha256:" + "3" * 64,
    }


def test_a_built_service_without_an_image_name_cannot_be_delivered(tmp_path: Path) -> None:
    loaded = _project(tmp_path, "services:\n  web:\n    build: .\n")
    with pytest.raises(kube_delivery.DeliveryError, match=r"services\.web: .*give the service"):
        kube_delivery.pinned_images(loaded.stack, lambda ref: DIGEST_1)


def test_the_committed_overlay_runs_the_digest_with_flux_setter_markers(
    bare: Path, tmp_path: Path
) -> None:
    loaded = _project(tmp_path, COMPOSE)
    env = spec(bare)
    checkout = kube_delivery.checkout(env, tmp_path / "data", {})
    images = kube_delivery.pinned_images(loaded.stack, lambda ref: DIGEST_1)

    done = kube_delivery.deliver(checkout, env, loaded, KubeOptions(), SOURCE_1, images)

    assert done.overlay == "clusters/staging/overlays/staging"
    # What Kubernetes does otherwise than the file says, at its line (a bind mount).
    assert any("compose.yaml:8: services.db.volumes[0]: a bind" in w for w in done.warnings)
    clone = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
    overlay = clone / done.overlay
    text = (overlay / "kustomization.yaml").read_text()
    assert f'digest: {DIGEST_1} # {{"$imagepolicy": "flux-system:web:digest"}}' in text
    assert 'newTag: abc # {"$imagepolicy": "flux-system:web:tag"}' in text
    assert (clone / "clusters/staging/base/kustomization.yaml").is_file()
    built = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(built) if o}
    web = objects[("Deployment", "web")]
    assert web["spec"]["replicas"] == 3  # the environment's override, in the overlay
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.example.com/shop/web:abc@{DIGEST_1}"
    assert web["metadata"]["namespace"] == "shop-staging"
    # The same source commit renders the same bytes: nothing new is committed.
    again = kube_delivery.deliver(checkout, env, loaded, KubeOptions(), SOURCE_1, images)
    assert (again.committed.created, again.committed.commit) == (False, done.committed.commit)


def test_a_rollback_with_nothing_before_is_refused_and_an_unknown_release_is_not_found(
    bare: Path, tmp_path: Path
) -> None:
    env = spec(bare)
    checkout = kube_delivery.checkout(env, tmp_path / "data", {})
    checkout.deliver("staging", SOURCE_1, "shop", writer("one\n"))

    with pytest.raises(ActionRefused, match="no previous release"):
        kube_delivery.roll_back(checkout, env, None, "ann")
    with pytest.raises(NotFound, match="no release 5"):
        kube_delivery.roll_back(checkout, env, 5, "ann")
    assert os.path.isdir(tmp_path / "data" / "environments" / "staging" / "deploy")


def test_a_push_that_lands_meanwhile_is_kept_and_the_release_made_again_on_it(
    bare: Path, tmp_path: Path
) -> None:
    checkout = DeployCheckout(deploy(bare), tmp_path / "clone", {})
    checkout.deliver("staging", SOURCE_1, "shop", writer("one\n"))
    person = tmp_path / "person"
    subprocess.run(["git", "clone", "-q", str(bare), str(person)], check=True)
    writes: list[int] = []

    def racing(directory: Path) -> None:
        writes.append(1)
        if len(writes) == 1:  # someone pushes while the first attempt writes
            (person / "README").write_text("hand-written\n")
            git(person, "add", "README")
            git(person, "-c", "user.name=p", "-c", "user.email=p@x", "commit", "-qm", "readme")
            git(person, "push", "-q", "origin", "HEAD:main")
        writer("two\n")(directory)

    done = checkout.deliver("staging", SOURCE_2, "shop", racing)

    assert len(writes) == 2 and done.created and done.release == 2
    assert git(bare, "show", "main:README") == "hand-written"
    assert git(bare, "show", "main:clusters/staging/release.txt") == "two"
    assert git(bare, "rev-parse", "main~1") == git(person, "rev-parse", "HEAD")


def test_an_overlay_kustomize_refuses_is_not_committed(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.host.validate import Validation

    loaded = _project(tmp_path, COMPOSE)
    env = spec(bare)
    checkout = kube_delivery.checkout(env, tmp_path / "data", {})
    asked: list[Path] = []

    def refuse(validator: object, path: Path, **_: object) -> Validation:
        asked.append(path)
        return Validation("kubectl kustomize", path, 1, ("accumulating resources: boom",), "")

    monkeypatch.setattr(kube_delivery, "check", refuse)
    with pytest.raises(kube_delivery.DeliveryError, match=r"refuses overlays/staging: .*boom"):
        kube_delivery.deliver(checkout, env, loaded, KubeOptions(), SOURCE_1, {})

    assert asked == [
        tmp_path / "data/environments/staging/deploy/clusters/staging/overlays/staging"
    ]
    assert (
        subprocess.run(
            ["git", "-C", str(bare), "rev-parse", "--verify", "-q", "main"], check=False
        ).returncode
        != 0
    )  # no commit, not even the first
