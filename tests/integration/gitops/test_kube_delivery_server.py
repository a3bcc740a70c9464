"""`target: kubernetes` environments on the real `conveyor server`: a push → its pipeline
pushes the image (a manifest PUT to a fake registry on 127.0.0.1) → the server commits the
environment's base and overlay, naming that image by the digest the registry serves, to a
deploy bare repository; nothing runs on Docker. The environment's Secret is filled from the
server's environment and committed SOPS-encrypted (never plaintext). Flux's signed event about
the commit marks it reconciled; the same source commit delivered again commits nothing;
`conveyor rollback --env` is a revert commit there (and a pin on the source branch); a
promotion into production (also kubernetes) commits production's overlay with the very
digests staging delivered. Then the releases, rollouts and diff routes, and the dashboard's
environment page in Chromium.

No cluster and no Flux run here: what Flux would do with the commits is not tested (the
rendered overlay is built with `kubectl kustomize`, as `render kubernetes`'s tests do)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pyrage
import pytest
import yaml

from conveyor.host.sops import decrypt_file
from tests.integration.dashboard.conftest import Browser
from tests.integration.dashboard.conftest import browser as browser  # noqa: PLC0414 (fixture)
from tests.integration.dashboard.test_dashboard_browser import check_page, sign_in
from tests.integration.gitops.server_world import SECRET, ServerWorld, conveyor, git

COMPOSE = """\
services:
  web:
    build: .
    image: 127.0.0.1:{registry}/shop/web:${{CI_COMMIT_SHA}}
    environment: {{V: "{version}"}}
    secrets: [api_key]
    x-conveyor: {{port: 8000}}
secrets:
  api_key: {{environment: API_KEY}}
"""
API_KEY = "plaintext-api-key-3f9a1c"  # in the server's environment only
IDENTITY = pyrage.x25519.Identity.generate()

# The pipeline "pushes" the image: it PUTs a manifest (the commit's sha as its bytes) under
# the commit's tag, as `docker push` ends.
PIPELINE = """\
push:
  script:
    - >-
      python3 -c 'import os, urllib.request as u; sha = os.environ["CI_COMMIT_SHA"];
      u.urlopen(u.Request("http://127.0.0.1:{registry}/v2/shop/web/manifests/" + sha,
      data=sha.encode(), method="PUT"))'
"""

CONVEYOR = """\
kubernetes:
  age_recipients: [{recipient}]
environments:
  staging:
    branch: main
    poll_interval: 1h   # webhooks make it immediate
    target: kubernetes
    deploy: {{repo: {deploy}, path: clusters/staging}}
  production:
    promote_from: staging
    target: kubernetes
    deploy: {{repo: {deploy}}}   # path: clusters/production
"""


class Registry(BaseHTTPRequestHandler):
    manifests: ClassVar[dict[str, bytes]] = {}  # path -> manifest

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.manifests[self.path] = body
        self._answer(201, {"Docker-Content-Digest": digest(body)})

    def do_HEAD(self) -> None:
        body = self.manifests.get(self.path)
        if body is None:
            self._answer(404, {})
        else:
            self._answer(200, {"Docker-Content-Digest": digest(body)})

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture(scope="module")
def registry() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, registry: int) -> Iterator[ServerWorld]:
    root = tmp_path_factory.mktemp("kube")
    deploy = root / "deploy.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(deploy)], check=True)
    w = ServerWorld(
        root,
        "unused",
        f"kube{uuid.uuid4().hex[:6]}",
        CONVEYOR.format(deploy=deploy, recipient=IDENTITY.to_public()),
    )
    w.env["GIT_CONFIG_GLOBAL"] = str(root / "no-gitconfig")
    w.env["API_KEY"] = API_KEY
    push(w, registry, "1")
    try:
        w.start()
        yield w
    finally:
        w.close(conveyor)


def push(w: ServerWorld, registry: int, version: str) -> str:
    (w.repo / "Dockerfile").write_text("FROM scratch\n")
    (w.repo / "compose.yaml").write_text(COMPOSE.format(registry=registry, version=version))
    (w.repo / ".gitlab-ci.yml").write_text(PIPELINE.format(registry=registry))
    git(w.repo, "add", "-A")
    git(w.repo, "commit", "-q", "-m", f"version {version}")
    git(w.repo, "push", "-q", "origin", "main")
    return git(w.repo, "rev-parse", "HEAD")


def deploy_repo(w: ServerWorld) -> Path:
    return w.root / "deploy.git"


def deliveries(w: ServerWorld) -> list[str]:
    """The deploy repository's commits on main, newest first."""
    done = subprocess.run(
        ["git", "-C", str(deploy_repo(w)), "rev-list", "main"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.split() if done.returncode == 0 else []


def message(w: ServerWorld, rev: str) -> str:
    return git(deploy_repo(w), "log", "-1", "--format=%B", rev)


def overlay_image(w: ServerWorld, rev: str, scratch: Path, env: str = "staging") -> str:
    """The image `kubectl kustomize` gives the web Deployment of `env` at deploy commit
    `rev`."""
    tree = scratch / f"{env}-{rev}"
    if not tree.exists():
        subprocess.run(["git", "clone", "-q", str(deploy_repo(w)), str(tree)], check=True)
        git(tree, "checkout", "-q", rev)
    built = subprocess.run(
        ["kubectl", "kustomize", str(tree / f"clusters/{env}/overlays/{env}")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for doc in yaml.safe_load_all(built):
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == "web":
            return str(doc["spec"]["template"]["spec"]["containers"][0]["image"])
    raise AssertionError("no web Deployment in the overlay")


def flux_event(w: ServerWorld, revision: str) -> int:
    body = json.dumps({
        "involvedObject": {"kind": "Kustomization", "name": "apps-staging",
                           "namespace": "flux-system"},
        "severity": "info", "reason": "ReconciliationSucceeded", "message": "Applied revision",
        "metadata": {"revision": revision}, "reportingController": "kustomize-controller",
    }).encode()  # fmt: skip
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = httpx.post(
        f"{w.url}/hooks/flux", content=body, headers={"X-Signature": f"sha256={signature}"}
    )
    return r.status_code


def test_releases_are_commits_of_the_deploy_repository_and_rollback_reverts(
    world: ServerWorld, registry: int, tmp_path: Path
) -> None:
    w = world
    viewer, deployer = w.token("viewer"), w.token("deployer")
    first_source = git(w.repo, "rev-parse", "HEAD")

    first = w.wait_for(lambda: deliveries(w)[:1], "the first release committed")[0]
    said = message(w, first)
    assert f"Conveyor-Source-Commit: {first_source}" in said
    assert "Conveyor-Release: 1" in said
    image = f"127.0.0.1:{registry}/shop/web:{first_source}"
    assert overlay_image(w, first, tmp_path) == f"{image}@{digest(first_source.encode())}"
    detail = w.api("/environments/staging", viewer)
    assert detail["environment"]["target"] == "kubernetes"
    assert detail["environment"]["state"] == "serving"
    assert detail["environment"]["release"] == 1
    assert detail["status"] is None  # nothing of it runs on this host's Docker
    assert (detail["delivery"]["commit"], detail["delivery"]["flux"]) == (first, "committed")
    # The Secret is filled from the server's environment and encrypted to the recipient: no
    # plaintext anywhere in the deploy repository's history.
    assert API_KEY not in git(deploy_repo(w), "log", "-p", "--all")
    tree = tmp_path / f"staging-{first}"
    sealed = tree / "clusters/staging/overlays/staging/secrets/secret-api-key.yaml"
    assert "conveyor.dev/plaintext-hmac: hmac-sha256:" in sealed.read_text()
    plain = yaml.safe_load(decrypt_file(sealed, str(IDENTITY)))
    assert plain["stringData"] == {"api-key": API_KEY}

    # Flux says it applied the commit: the delivery is reconciled.
    assert flux_event(w, f"main@sha1:{first}") == 200
    detail = w.api("/environments/staging", viewer)
    assert detail["delivery"]["flux"] == "reconciled"

    # A second push: release 2, the new digest.
    second_source = push(w, registry, "2")
    assert w.hook(second_source, "kube-2") in (200, 202)
    second = w.wait_for(lambda: [c for c in deliveries(w)[:1] if c != first], "release 2")[0]
    assert "Conveyor-Release: 2" in message(w, second)
    assert overlay_image(w, second, tmp_path).endswith(digest(second_source.encode()))
    kinds = [e["kind"] for e in w.events(viewer) if e["subject"]["environment"] == "staging"]
    assert kinds.count("delivery.committed") == 2
    # The timeline of the first commit: its pipeline, its delivery, Flux's word on it.
    (entry,) = [t for t in w.api("/environments/staging/timeline", viewer)
                if t["commit"] == first_source]  # fmt: skip
    told = [(e["what"], e["status"]) for e in entry["entries"]]
    assert ("delivery", "committed") in told and ("delivery", "reconciled") in told
    assert told.index(("delivery", "committed")) < told.index(("delivery", "reconciled"))
    assert ("pipeline", "success") in told

    # The server forgets what it delivered (its progress file lost): the same source commit
    # is rendered again, to the same bytes, and nothing is committed.
    w.kill()
    (w.data / "environments" / "staging" / "progress.json").unlink()
    w.start()
    w.wait_for(
        lambda: any(e["kind"] == "delivery.unchanged" for e in w.events(viewer)),
        "the same commit delivered again",
    )
    assert deliveries(w)[0] == second

    # rollback --env: a revert commit of release 2, pushed; release 1's files again.
    back = conveyor(
        "rollback", "--env", "staging", cwd=w.root,
        env={"CONVEYOR_SERVER": w.url, "CONVEYOR_TOKEN": deployer},
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    revert = deliveries(w)[0]
    assert revert not in (first, second)
    assert f"Conveyor-Reverts: {second}" in message(w, revert)
    assert git(deploy_repo(w), "diff", first, revert, "--", "clusters/staging") == ""
    assert overlay_image(w, revert, tmp_path).endswith(digest(first_source.encode()))
    detail = w.api("/environments/staging", viewer)
    assert detail["environment"]["release"] == 1
    assert detail["environment"]["commit"] == first_source
    assert detail["desired_commit"] == first_source
    git(w.repo, "pull", "-q", "origin", "main")
    assert (w.repo / ".conveyor" / "pins" / "staging.json").is_file()
    # The pinned commit is what is delivered: the next pass commits nothing.
    assert w.hook(second_source, "kube-after-rollback") in (200, 202)
    w.wait_for(lambda: w.delivery_status("kube-after-rollback") == "done", "the pass it asked for")
    assert deliveries(w)[0] == revert
    assert w.api("/environments/staging", viewer)["environment"]["commit"] == first_source


def test_a_promotion_delivers_the_sources_images(
    world: ServerWorld, registry: int, tmp_path: Path
) -> None:
    w = world
    viewer, deployer = w.token("viewer"), w.token("deployer")
    staging = w.api("/environments/staging", viewer)
    source = staging["environment"]["commit"]
    image = f"127.0.0.1:{registry}/shop/web:{source}"
    # Resolved again now, the tag would give another digest (pushed again since): a
    # promotion must move what staging runs, not what the tag names today.
    Registry.manifests[f"/v2/shop/web/manifests/{source}"] = b"rebuilt"

    done = conveyor(
        "promote", "production", "--from", "staging", cwd=w.root,
        env={"CONVEYOR_SERVER": w.url, "CONVEYOR_TOKEN": deployer},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    production = w.api("/environments/production", viewer)
    assert production["environment"]["commit"] == source
    assert production["delivery"]["overlay"] == "clusters/production/overlays/production"
    commit = production["delivery"]["commit"]
    assert deliveries(w)[0] == commit
    assert "Conveyor-Environment: production" in message(w, commit)
    ran = overlay_image(w, commit, tmp_path, "production")
    assert ran == overlay_image(w, staging["delivery"]["commit"], tmp_path)
    assert ran.startswith(image + "@") and not ran.endswith(digest(b"rebuilt"))


def test_releases_rollouts_and_diff_of_a_kubernetes_environment(
    world: ServerWorld, registry: int, tmp_path: Path
) -> None:
    """After the tests above: staging delivered releases 1 and 2, Flux reconciled release 1,
    and a rollback reverted release 2."""
    w = world
    viewer = w.token("viewer")
    commits = deliveries(w)
    staging = [c for c in commits if "Conveyor-Environment: staging" in message(w, c)]
    revert, second, first = staging[:3]

    releases = w.api("/environments/staging/releases", viewer)
    assert [(r["number"], r["deploy_commit"], r["flux"]) for r in releases] == [
        (2, second, "committed"),
        (1, first, "reconciled"),
    ]
    web = releases[1]["services"]["web"]["image"]
    assert web.startswith(f"127.0.0.1:{registry}/shop/web:{releases[1]['commit']}@sha256:")
    assert all(r["created_at"] > 0 for r in releases)

    rollouts = w.api("/environments/staging/rollouts", viewer)
    assert [
        (r["kind"], r["from_release"], r["to_release"], r["deploy_commit"]) for r in rollouts
    ] == [
        ("rollback", 2, 1, revert),
        ("deploy", 1, 2, second),
        ("deploy", None, 1, first),
    ]
    assert rollouts[0]["actor"] != "server"  # the person who asked for the rollback

    # The tag of the pinned commit was pushed again (the promotion test): the next delivery
    # would name the new digest, and only that changes.
    pinned = releases[1]["commit"]
    view = w.api("/environments/staging/diff", viewer)
    assert not view["in_sync"]
    changed = [line for line in view["manifests"].splitlines() if line[:1] in "+-"]
    assert len(changed) == 4, changed  # ---/+++ and the one digest line
    assert changed[2].startswith(f"-- digest: {digest(pinned.encode())}")
    assert changed[3].startswith(f"+- digest: {digest(b'rebuilt')}")
    # The registry serves the delivered manifest again: nothing to change.
    Registry.manifests[f"/v2/shop/web/manifests/{pinned}"] = pinned.encode()
    view = w.api("/environments/staging/diff", viewer)
    assert (view["manifests"], view["in_sync"]) == ("", True)

    # Someone edits the overlay by hand: the next delivery would undo it, and diff says so.
    person = tmp_path / "person"
    subprocess.run(["git", "clone", "-q", str(deploy_repo(w)), str(person)], check=True)
    kustomization = person / "clusters/staging/overlays/staging/kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + "# edited by hand\n")
    git(person, "-c", "user.name=p", "-c", "user.email=p@x", "commit", "-qam", "by hand")
    git(person, "push", "-q", "origin", "HEAD:main")

    view = w.api("/environments/staging/diff", viewer)
    assert not view["in_sync"]
    assert "--- a/clusters/staging/overlays/staging/kustomization.yaml" in view["manifests"]
    assert "\n-# edited by hand\n" in view["manifests"]
    shown = conveyor(
        "diff", "--env", "staging", cwd=w.root,
        env={"CONVEYOR_SERVER": w.url, "CONVEYOR_TOKEN": viewer},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "-# edited by hand" in shown.stdout
    # Only looked at: the branch still holds the hand edit.
    assert git(deploy_repo(w), "log", "-1", "--format=%s", "main") == "by hand"


def test_the_environment_page_of_a_kubernetes_environment(
    world: ServerWorld,
    browser: Browser,
) -> None:
    """The dashboard's environment page, in a real Chromium: where the release was delivered,
    its releases with their deploy commits and Flux's word, the rollback among the rollouts;
    no serious axe violation; screenshots (artifacts/screenshots/kube-environment-*.png)."""
    from selenium.webdriver.common.by import By

    sign_in(browser, world, world.token("viewer"), "/environments/staging")
    main = browser.driver.find_element(By.TAG_NAME, "main").text

    assert "Delivered to" in main and "clusters/staging/overlays/staging" in main
    assert "Runs on Kubernetes" in main
    releases = [
        row.text
        for row in browser.driver.find_elements(By.CSS_SELECTOR, "#releases-h + div tbody tr")
    ]
    assert releases[0].startswith("#2") and "Flux committed" in releases[0]
    assert releases[1].startswith("#1") and "Flux reconciled" in releases[1]
    rollouts = browser.driver.find_element(By.CSS_SELECTOR, "#rollouts-h + div tbody").text
    assert "rollback" in rollouts and "#2 → #1" in rollouts
    check_page(browser, "kube-environment")
