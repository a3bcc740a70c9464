"""moto's server (a real HTTP endpoint for CloudFormation, EC2, S3, IAM, SSM...) on a free
loopback port for the tests: started by `moto_server`, its PID recorded, stopped by PID.
The aws and backup integration tests share it through their conftest fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from conveyor.testing.net import free_port

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


@dataclass(frozen=True)
class Moto:
    url: str
    pid: int
    log: Path


@contextmanager
def moto_server(work: Path) -> Iterator[Moto]:
    port = free_port()
    log = work / "moto.log"
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (work / "moto.pid").write_text(str(process.pid))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        yield Moto(url=url, pid=process.pid, log=log)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"moto_server exited ({process.returncode}): {log.read_text()}")
        try:
            if requests.get(f"{url}/moto-api/", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"moto_server never answered at {url}: {log.read_text()}")


def aws_test_environ(moto: Moto, scratch: Path) -> dict[str, str]:
    """Fake credentials, no shared AWS files, and boto3 pointed at moto (AWS_ENDPOINT_URL)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
        "AWS_ENDPOINT_URL": moto.url,
    }
