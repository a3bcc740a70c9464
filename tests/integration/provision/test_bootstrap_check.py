"""`conveyor bootstrap --check` on this machine: the test setup installs and starts everything
bootstrap looks for, so every step must report ok, and checking must change nothing."""

from __future__ import annotations

import subprocess
import tarfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from conveyor.provision.bootstrap import (
    SELENIUM_IMAGE,
    SystemCommands,
    host_config,
    plan_bootstrap,
    plan_browser_image,
    run_bootstrap,
)
from conveyor.runtime.registry import Registry
from conveyor.testing.net import free_port

LIVE = "dockerd live-restore"


def _live_restore_enabled() -> bool:
    out = subprocess.run(
        ["docker", "info", "--format", "{{.LiveRestoreEnabled}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() == "true"


def test_check_reports_every_step_ok_on_the_prepared_host(dockerd: None, base_image: str) -> None:
    config = host_config()
    expected = [step.name for step in plan_bootstrap(config)]
    pid_file = config.state_dir / "dockerd.pid"
    pid_before = pid_file.read_text() if pid_file.exists() else None
    reports: list[tuple[str, str]] = []

    ok = run_bootstrap(True, lambda name, status: reports.append((name, status)))

    # live-restore as the running dockerd reports it: a dockerd shared with other work here may
    # have been started before bootstrap configured it (bootstrap reloads it; a check must not)
    live = "ok" if _live_restore_enabled() else "missing"
    assert reports == [(name, live if name == LIVE else "ok") for name in expected]
    assert ok == (live == "ok"), reports
    assert expected[-1] == f"image {base_image}"
    # nothing was started or written by a check
    assert (pid_file.read_text() if pid_file.exists() else None) == pid_before


def test_check_sees_a_missing_image(dockerd: None) -> None:
    """The image step really asks the Docker Engine (a check that always said ok would pass
    the test above on any machine)."""
    config = replace(host_config(), base_image="conveyor-test/absent:never")
    inspect = ["docker", "image", "inspect", config.base_image]
    if subprocess.run(inspect, capture_output=True, check=False).returncode == 0:
        pytest.skip(f"{config.base_image} exists here")
    reports: list[tuple[str, str]] = []

    ok = run_bootstrap(True, lambda n, s: reports.append((n, s)), steps=plan_bootstrap(config))

    assert not ok
    assert reports[-1] == ("image conveyor-test/absent:never", "missing")
    assert [status for name, status in reports[:-1] if name != LIVE] == ["ok", "ok"]


def test_the_browser_image_is_built_from_its_recipe_and_pushed_to_a_registry(
    dockerd: None, base_image: str, tmp_path: Path
) -> None:
    """`conveyor bootstrap` (run by the test setup) built conveyor/selenium from the current
    recipe; its push step fills a fresh registry, after which its check holds.

    The push step is run here on a stand-in for the browser image (one small layer, made
    here): the step is the same for any image, and pushing the whole browser image again took
    ~45 s of every CI run, which pushes it already before the tests (scripts/test.sh runs
    `conveyor bootstrap` with its registry)."""
    (build,) = plan_browser_image(host_config(), SystemCommands(), None)
    assert build.check(), f"{SELENIUM_IMAGE} is missing or stale: run `conveyor bootstrap`"

    stand_in = f"conveyor-test/browser-push:{uuid.uuid4().hex[:8]}"
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        marker = tmp_path / "stand-in"
        marker.write_text(f"{stand_in}\n")  # unique: its digest is new to any registry
        tar.add(marker, arcname="stand-in")
    subprocess.run(["docker", "import", str(layer), stand_in], check=True, capture_output=True)
    registry = Registry(tmp_path / "registry", free_port())
    config = replace(host_config(), selenium_image=stand_in)
    _, push = plan_browser_image(config, SystemCommands(), registry)
    try:
        assert not push.check()  # this registry is new
        push.apply()
        assert push.check()
        assert "conveyor-test/browser-push" in registry.catalog()
    finally:
        registry.stop()
        target = f"{registry.url}/{stand_in}"
        subprocess.run(["docker", "rmi", target, stand_in], capture_output=True, check=False)
