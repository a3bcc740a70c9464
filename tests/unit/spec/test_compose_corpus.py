"""A corpus of Compose projects shaped like popular self-hosted apps (corpus/<name>/), each
loaded as `conveyor` loads a directory — compose.yaml and its override, `.env`, profiles —
and compared with its `expected.txt`: the services as Conveyor understood them, the steps
of a first deploy (the pure planner, nothing observed yet) and the warnings; or the one
line of error a user would read.

`case.yaml` (optional) gives `files` (as -f would), `profiles` and `environ`. With
CONVEYOR_UPDATE_CORPUS=1 the expectations are rewritten from what the code does now;
review the diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.app.project import find_compose_files
from conveyor.errors import ConveyorError
from conveyor.model.release import Observed, Release, ServiceRelease
from conveyor.model.stack import Service
from conveyor.plan.network import assign_slots, desired_address, desired_networks
from conveyor.plan.rollout import desired_services, plan_rollout
from conveyor.spec.compose import Loaded, load_compose

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
UPDATE = os.environ.get("CONVEYOR_UPDATE_CORPUS") == "1"


def test_corpus_size() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", CASES)
def test_project(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    root = CORPUS / name
    monkeypatch.chdir(root)  # files are named as a user in that directory types them
    case: dict[str, Any] = (
        yaml.safe_load((root / "case.yaml").read_text()) if (root / "case.yaml").exists() else {}
    )
    environ = {"HOME": "/home/corpus", **(case.get("environ") or {})}
    given = [Path(f) for f in case.get("files", [])]
    try:
        files = find_compose_files(given, environ, root)
        got = render(load_compose(files, environ=environ, profiles=case.get("profiles", [])), root)
    except ConveyorError as exc:
        got = f"error: {exc}\n"
    expected_file = root / "expected.txt"
    if UPDATE:
        expected_file.write_text(got)
    expected = expected_file.read_text()
    assert got == expected
    if expected.startswith("error: "):
        assert expected.count("\n") == 1, "an error case reads as one line"


def render(loaded: Loaded, root: Path) -> str:
    stack = loaded.stack
    lines = [f"project {stack.project}", "services:"]
    for name in stack.order():
        lines += _service(stack.services[name], root)
    release = Release(
        number=1,
        project=stack.project,
        stack=stack,
        services={
            name: ServiceRelease(service=svc, image_id=f"sha256:{name}", image_ref=f"{name}:1")
            for name, svc in stack.services.items()
        },
    )
    needing = [n for n in release.order() if desired_address(stack, n) is not None]
    routed = [n for n in release.order() if stack.services[n].routed]
    plan = plan_rollout(
        desired_services(release, slots=assign_slots({}, needing)),
        Observed(),
        frontends=routed,
        networks=desired_networks(stack),
    )
    for name, net in sorted(stack.networks.items()):
        kind = "external" if net.external else "internal" if net.internal else "bridge"
        lines.append(f"network {name}: {kind}" + (f" {net.subnet}" if net.subnet else ""))
    lines.append("first deploy:")
    lines += [f"  {step.describe()}" for step in plan.steps]
    lines += [f"  note: {note}" for note in plan.notes]
    # No conveyor.yaml: one host, where placement is ignored too (app.project.Project.warnings).
    warnings = sorted((*loaded.warnings, *loaded.one_host), key=lambda w: (w.file, w.line or 0))
    if warnings:
        lines.append("warnings:")
        lines += [f"  {w.render()}" for w in warnings]
    return "\n".join(lines) + "\n"


def _service(svc: Service, root: Path) -> list[str]:
    where = (
        f"image {svc.image}"
        if svc.build is None
        else f"build {os.path.relpath(svc.build.context, root)}"
        + (f" as {svc.image}" if svc.image else "")
    )
    facts = [where]
    if svc.replicas != 1:
        facts.append(f"{svc.replicas} replicas")
    if svc.restart is not None:
        facts.append(f"restart {svc.restart.condition}")
    if svc.networking == "host":
        facts.append("host network")
        if svc.routed:
            public = svc.routing.public_port or "any free port"
            facts.append(f"routed: port {svc.routing.port} on {public}")
    elif svc.served_ports():
        http = svc.http_ports()
        served = (f"{p}/{'http' if p in http else 'tcp'}" for p in svc.served_ports())
        facts.append("serves " + " ".join(served))
    if svc.routing.probe is not None:
        facts.append(f"probe {svc.routing.probe.path}")
    if svc.healthcheck is not None:
        facts.append("healthcheck " + (" ".join(svc.healthcheck.test) or "(the image's)"))
    out = [f"  {svc.name}: " + ", ".join(facts)]
    if svc.command is not None:
        out.append(f"    command {list(svc.command)}")
    if svc.depends_on:
        after = ", ".join(
            f"{dep} ({cond.condition.removeprefix('service_')})"
            for dep, cond in sorted(svc.depends_on.items())
        )
        out.append(f"    after {after}")
    for key, value in sorted(svc.environment.items()):
        out.append(f"    env {key}={value}")
    for mount in svc.volumes:
        source = mount.source or "(anonymous)"
        if mount.type == "bind" and mount.source:
            inside = mount.source.startswith(str(root))
            source = os.path.relpath(mount.source, root) if inside else mount.source
        mode = " ro" if mount.read_only else ""
        out.append(f"    {mount.type} {source} -> {mount.target}{mode}")
    for config in svc.configs:
        out.append(f"    config {config.source} -> {config.target}")
    for secret in svc.secrets:
        out.append(f"    secret {secret.source} -> {secret.target}")
    settings = svc.container.model_dump(mode="json", exclude_defaults=True)
    if settings:
        out.append(f"    container {json.dumps(settings, sort_keys=True)}")
    if svc.networks:
        nets = (
            name + "".join(f" as {a}" for a in net.aliases)
            for name, net in sorted(svc.networks.items())
        )
        out.append("    networks " + ", ".join(nets))
    for port in svc.ports:
        if port.published is not None:
            host = f"{port.host_ip}:" if port.host_ip else ""
            out.append(f"    publish {host}{port.published} -> {port.target}/{port.protocol}")
    if svc.expose:
        out.append("    expose " + " ".join(f"{p.port}/{p.protocol}" for p in svc.expose))
    return out
