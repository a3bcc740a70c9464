"""The example application's real pipeline, end to end through `conveyor ci run`: lint, unit
tests, images built and pushed to Conveyor's registry, a review environment deployed with
Conveyor from those images, Selenium tests in Chromium against it in Conveyor's browser-test
image (screenshots kept as artifacts, then downloaded with `ci artifacts`), the review
environment stopped, and production left as a manual job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.runtime.registry import Registry
from conveyor.testing.net import free_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory, dockerd: None) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry"), free_port())
    reg.ensure()
    yield reg
    reg.stop()
    # the pipeline's pushes left local tags of this registry's port: remove them
    refs = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    mine = [r for r in refs if r.startswith(f"127.0.0.1:{reg.port}/")]
    if mine:
        subprocess.run(["docker", "rmi", *mine], capture_output=True, check=False)


@pytest.fixture
def shop_repo(tmp_path: Path, base_image: str, browser_image: str) -> Path:
    repo = tmp_path / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop", repo, ignore=shutil.ignore_patterns(".conveyor", "__pycache__")
    )
    (repo / ".gitignore").write_text(".conveyor/\n.cache/\nscreenshots/\n__pycache__/\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "shop"], check=True)
    return repo


def conveyor_ci(repo: Path, registry: Registry, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONVEYOR_REGISTRY_PORT": str(registry.port),
        "CONVEYOR_REGISTRY_DIR": str(registry.state_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "ci", *args, "--file", str(repo / ".gitlab-ci.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )


def test_shop_pipeline_builds_pushes_reviews_and_browser_tests(
    shop_repo: Path, registry: Registry
) -> None:
    review_port = free_port()
    out = conveyor_ci(shop_repo, registry, "run", "--variable", f"REVIEW_PORT={review_port}", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    show = json.loads(conveyor_ci(shop_repo, registry, "show", "1", "--json").stdout)
    statuses = {j["name"]: j["status"] for j in show["jobs"]}
    assert statuses == {
        "lint": "success",
        "unit": "success",
        "build: [gateway]": "success",
        "build: [catalog]": "success",
        "build: [orders]": "success",
        "review": "success",
        "browser": "success",
        "stop-review": "success",
        "production": "manual",
    }
    # the manual production deploy is non-blocking (allow_failure: true): green without it
    assert show["status"] == "success"
    assert show["tests"]["total"] >= 5 and show["tests"]["failed"] == 0
    # the images the build jobs pushed are in Conveyor's registry
    catalog = registry.catalog()
    assert {r.rsplit("/", 1)[-1] for r in catalog} >= {"gateway", "catalog", "orders"}, catalog
    # the review deploy pulled them (not a rebuild), and the browser job kept screenshots
    review_log = conveyor_ci(shop_repo, registry, "logs", "review").stdout
    assert f"pulling 127.0.0.1:{registry.port}/" in review_log
    browser = next(j for j in show["jobs"] if j["name"] == "browser")
    assert browser["artifacts"]["files"] >= 3  # two screenshots and the JUnit report
    assert browser["artifacts"]["entries"] == ["junit.xml", "screenshots/"]
    assert browser["test_failures"] == []
    # a user can open them: `ci artifacts` extracts the screenshots
    out = shop_repo / "downloaded"
    got = conveyor_ci(shop_repo, registry, "artifacts", "browser", "--out", str(out))
    assert got.returncode == 0, got.stderr
    for shot in ("01-storefront.png", "02-ordered.png"):
        assert (out / "screenshots" / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the review environment is gone
    left = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=io.conveyor.project=review-main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert left == []
    # one timeline tells commit -> pipeline -> jobs -> the review release -> its rollout
    timeline = subprocess.run(
        [sys.executable, "-m", "conveyor", "-f", str(shop_repo / "compose.yaml"), "timeline"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    tl = json.loads(
        subprocess.run(
            [*timeline.args, "--json"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    head = subprocess.run(
        ["git", "-C", str(shop_repo), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert tl["commit"] == head and tl["subject"] == "shop"
    [pipeline] = tl["pipelines"]
    review_job = next(j for j in pipeline["jobs"] if j["name"] == "review")
    assert (pipeline["id"], review_job["environment"]) == (1, "review/main")
    [release] = tl["releases"]
    assert (release["project"], release["environment"]) == ("review-main", "review/main")
    assert (release["pipeline"], release["job"]) == (1, review_job["id"])
    assert [(r["kind"], r["status"]) for r in release["rollouts"]] == [("up", "succeeded")]
    whats = [e["what"] for e in tl["entries"]]
    assert whats.index("pipeline") < whats.index("release") < whats.index("rollout")
    assert [e["at"] for e in tl["entries"]] == sorted(e["at"] for e in tl["entries"])
    assert "release 1 of review/main by pipeline #1" in timeline.stdout
