"""The `checks:` section of conveyor.yaml: what it accepts, its defaults, and errors that
name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.model.checks import ChecksSettings, RemoteHost, Thresholds
from conveyor.spec.checks import checks
from conveyor.spec.context import Context
from conveyor.spec.conveyor_file import parse_conveyor
from conveyor.spec.yamlpos import load_yaml


def load(text: str) -> tuple[ChecksSettings, list[str]]:
    doc = load_yaml(text, "conveyor.yaml", version="1.2")
    ctx = Context(doc=doc, file="conveyor.yaml", base=Path("/repo"), environ={})
    spec = checks(ctx, ("checks",), (doc.data or {}).get("checks"))
    return spec, [e.render() for e in ctx.errors]


def test_every_key() -> None:
    spec, errors = load(
        """\
checks:
  enabled: false
  interval: 30s
  retry_interval: 5s
  attempts: 4
  timeout: 8s
  disk: [/, /var/lib/docker]
  thresholds:
    disk: {warning: 25%, critical: 10%}
    memory: {warning: 15, critical: 5%}
    load: {warning: [3, 2, 1.5], critical: 6}
    certificate: {warning: 21d, critical: 48h}
  hosts:
    - {name: db1, address: 10.0.0.5}
    - {name: edge.example.com, address: edge.example.com, nrpe_port: 5667}
  fleet_hosts: false
"""
    )
    assert errors == []
    assert spec == ChecksSettings(
        enabled=False,
        interval=30,
        retry_interval=5,
        attempts=4,
        timeout=8,
        disk_paths=("/", "/var/lib/docker"),
        thresholds=Thresholds(
            disk_warning=25,
            disk_critical=10,
            memory_warning=15,
            memory_critical=5,
            load_warning=(3, 2, 1.5),
            load_critical=(6, 6, 6),
            certificate_warning=21,
            certificate_critical=2,
        ),
        hosts=(
            RemoteHost(name="db1", address="10.0.0.5"),
            RemoteHost(name="edge.example.com", address="edge.example.com", nrpe_port=5667),
        ),
        fleet_hosts=False,
    )


def test_an_absent_or_empty_section_is_the_defaults() -> None:
    assert load("environments: {}\n") == (ChecksSettings(), [])
    assert load("checks: {}\n") == (ChecksSettings(), [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("checks: [on]\n", "conveyor.yaml:1: checks: must be a mapping, got a list"),
        (
            "checks:\n  intervall: 5s\n",
            "conveyor.yaml:2: checks.intervall: unknown key (known: enabled, interval,",
        ),
        ("checks:\n  interval: 500ms\n", "conveyor.yaml:2: checks.interval: must be at least 1s"),
        (
            "checks:\n  interval: 1.5s\n",
            "conveyor.yaml:2: checks.interval: Nagios counts whole seconds",
        ),
        ("checks:\n  attempts: 0\n", "conveyor.yaml:2: checks.attempts: must be at least 1"),
        (
            "checks:\n  disk: [/, var]\n",
            "conveyor.yaml:2: checks.disk[1]: must be an absolute path",
        ),
        (
            "checks:\n  thresholds:\n    disk: {warning: 10%, critical: 20%}\n",
            "conveyor.yaml:3: checks.thresholds.disk.critical: must be below warning (10)",
        ),
        (
            "checks:\n  thresholds:\n    load: {warning: 8, critical: 4}\n",
            "conveyor.yaml:3: checks.thresholds.load.critical: must be above warning",
        ),
        (
            "checks:\n  thresholds:\n    memory:\n      warning: 120%\n",
            "conveyor.yaml:4: checks.thresholds.memory.warning: must be a percentage",
        ),
        (
            "checks:\n  thresholds:\n    load: {warning: [1, 2]}\n",
            "conveyor.yaml:3: checks.thresholds.load.warning: must be one number or three",
        ),
        (
            "checks:\n  hosts:\n    - {name: 'db 1', address: 10.0.0.5}\n",
            "conveyor.yaml:3: checks.hosts[0].name: must be a host name",
        ),
        (
            "checks:\n  hosts:\n    - {name: db1, address: '10.0.0.5;x'}\n",
            "conveyor.yaml:3: checks.hosts[0].address: must be an IP address or a host name",
        ),
        (
            "checks:\n  hosts:\n    - {name: db1, address: a}\n    - {name: db1, address: b}\n",
            "conveyor.yaml:4: checks.hosts[1].name: host 'db1' is listed twice",
        ),
        (
            "checks:\n  fleet_hosts: maybe\n",
            "conveyor.yaml:2: checks.fleet_hosts:",
        ),
        (
            "checks:\n  hosts:\n    - {name: db1, address: a, nrpe_port: 70000}\n",
            "conveyor.yaml:3: checks.hosts[0].nrpe_port: must be a port between 1 and 65535",
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    _, errors = load(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors[0]


def test_conveyor_yaml_carries_the_section() -> None:
    config = parse_conveyor("environments:\n  staging: {branch: main}\nchecks:\n  interval: 20s\n")
    assert config.checks.interval == 20
    assert parse_conveyor("environments:\n  staging: {branch: main}\n").checks == ChecksSettings()
