"""Shared fixtures: real servers started here are recorded by PID and stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing.net import free_port

__all__ = ["free_port"]

# `conveyor up` runs Nagios for the project (docs/checks.md): tests that are not about checks
# leave it off (2 cores, and many tests never bring their project down); those about checks
# turn it on in the environment they give `conveyor`.
os.environ.setdefault("CONVEYOR_CHECKS", "off")

BASE_IMAGE = "python:3.11-slim-bookworm"

# `conveyor up` starts Prometheus, Alertmanager and node exporter for every project; the suite
# brings up many short-lived projects, so they are off unless a test turns them on
# (tests/integration/observe does, with CONVEYOR_METRICS=1 in its commands' environment).
os.environ.setdefault("CONVEYOR_METRICS", "0")
BROWSER_IMAGE = "conveyor/selenium:1"  # conveyor.provision.bootstrap.SELENIUM_IMAGE


def _docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Docker Engine that answers. Starts one (no bridge, no iptables) only when none does,
    and stops exactly that process at the end."""
    if shutil.which("docker") is None:
        pytest.skip("docker client not installed (run `make test`, which installs it)")
    proc: subprocess.Popen[bytes] | None = None
    if not _docker_answers():
        if shutil.which("dockerd") is None:
            pytest.skip("dockerd not installed (run `make test`, which installs it)")
        log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
        proc = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for _ in range(150):
            if _docker_answers():
                break
            time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail(f"dockerd did not answer; see {log}")
    yield
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def base_image(dockerd: None) -> str:
    """The Python base image the example and the tests build on (made by `conveyor bootstrap`)."""
    if (
        subprocess.run(
            ["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False
        ).returncode
        != 0
    ):
        pytest.fail(f"{BASE_IMAGE} missing: `make test` runs `conveyor bootstrap` first")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def browser_image(base_image: str) -> str:
    """Conveyor's browser-test image (made by `conveyor bootstrap`)."""
    inspect = ["docker", "image", "inspect", BROWSER_IMAGE]
    if subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
        pytest.fail(f"{BROWSER_IMAGE} missing: `make test` runs `conveyor bootstrap` first")
    return BROWSER_IMAGE


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A short-pathed project directory (HAProxy's admin socket path is length-limited)."""
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid.split(os.sep)[0:2] or "/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
