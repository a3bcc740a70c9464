"""Prometheus's data directory on a read-only or a full disk: a clear error naming the
directory and the reason, before any daemon is started (a small tmpfs mounted by the test,
unmounted after; needs root, as the suite runs)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.errors import MetricsError
from conveyor.observe.metrics.supervisor import MetricsLayout, MetricsPorts, MetricsStack
from conveyor.render import alertmanager_routes, prometheus
from conveyor.testing.net import free_port

Mount = Callable[[Path, str], None]


@pytest.fixture
def mount() -> Iterator[Mount]:
    """Mounts a tmpfs with the given options; each is unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def do(where: Path, options: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(where)

    yield do
    for where in reversed(mounted):
        subprocess.run(["umount", str(where)], capture_output=True, check=False)


def _stack(root: Path) -> MetricsStack:
    ports = MetricsPorts(free_port(), free_port(), free_port(), free_port())
    return MetricsStack(MetricsLayout(root), ports)


def _configure(stack: MetricsStack) -> None:
    lay = stack.layout
    config = prometheus.PrometheusConfig(
        listen=f"127.0.0.1:{stack.ports.prometheus}",
        targets_dir=str(lay.targets_dir),
        rules_dir=str(lay.rules_dir),
    )
    stack.configure(prometheus.render(config), alertmanager_routes.render(None))


def test_a_read_only_data_directory_is_a_clear_error(tmp_path: Path, mount: Mount) -> None:
    stack = _stack(tmp_path / "metrics")
    _configure(stack)
    mount(stack.layout.prometheus_data, "ro,size=1m")

    with pytest.raises(
        MetricsError, match=r"Prometheus data directory .* not writable: Read-only file system"
    ):
        stack.ensure()

    assert stack.running() == []  # nothing started


def test_a_full_data_directory_is_a_clear_error(tmp_path: Path, mount: Mount) -> None:
    stack = _stack(tmp_path / "metrics")
    _configure(stack)
    mount(stack.layout.prometheus_data, "size=64k")
    filler = stack.layout.prometheus_data / "filler"
    with filler.open("wb", buffering=0) as f, pytest.raises(OSError):
        while True:  # until the disk is full
            f.write(b"\0" * 4096)

    with pytest.raises(MetricsError, match="No space left on device"):
        stack.ensure()

    assert stack.running() == []
