"""moto's server (a real HTTP endpoint for CloudFormation, EC2, ELBv2, S3, IAM, SSM...) on a
free loopback port, started once per module; its PID is recorded and it is stopped by PID
(conveyor.testing.moto, shared with the backup tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing.moto import Moto, aws_test_environ, moto_server


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def aws_env(moto: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Moto:
    """Fake credentials, no shared AWS files, and boto3 pointed at moto (AWS_ENDPOINT_URL)."""
    for name, value in aws_test_environ(moto, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto
