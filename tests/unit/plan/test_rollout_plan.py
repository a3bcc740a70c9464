"""Data-driven planner cases: desired + observed -> expected steps (cases.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.model.endpoint import Endpoint
from conveyor.model.release import Observed, ObservedAddress, ObservedNetwork, ObservedReplica
from conveyor.model.stack import Restart, UpdateConfig
from conveyor.plan.actions import Step
from conveyor.plan.network import DesiredAddress, DesiredNetwork
from conveyor.plan.rollout import DesiredService, plan_down, plan_rollout

CASES = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text())


def short(step: Step) -> str:
    if step.kind == "frontends":
        return "frontends " + ",".join(step.services)
    if step.kind in ("sleep", "monitor"):
        return f"{step.kind} {step.service} {step.seconds:g}"
    if step.kind in ("network", "unnetwork"):
        return f"{step.kind} {step.network}"
    if step.kind in ("address", "unaddress"):
        return f"{step.kind} {step.service} ({step.reason})"
    return f"{step.kind} {step.service} {step.replica}"


def desired(spec: dict[str, Any]) -> DesiredService:
    return DesiredService(
        name=spec["name"],
        spec_hash=spec.get("hash", "h1"),
        replicas=spec.get("replicas", 1),
        update=UpdateConfig(**spec.get("update", {})),
        routed=spec.get("routed", True),
        release=spec.get("release", 1),
        oneshot=spec.get("oneshot", False),
        address=address(spec),
        restart=Restart(condition=spec.get("restart", "always")),
    )


def address(spec: dict[str, Any]) -> DesiredAddress | None:
    """`address: {net: [names]}`; `address: true` puts the service on p_default by name."""
    written = spec.get("address")
    if written is None:
        return None
    if written is True:
        written = {"p_default": [spec["name"]]}
    return DesiredAddress(service=spec["name"], networks={k: tuple(v) for k, v in written.items()})


def networks(case: dict[str, Any]) -> list[DesiredNetwork]:
    """`networks: [default, {name: x, external: true}]` of project `p`."""
    out = []
    for written in case.get("networks", []):
        n = {"name": written} if isinstance(written, str) else written
        out.append(DesiredNetwork(**{"docker_name": f"p_{n['name']}", **n}))
    return out


def observed(case: dict[str, Any]) -> Observed:
    reps = []
    for i, r in enumerate(case.get("observed", [])):
        name = r["replica"]
        reps.append(
            ObservedReplica(
                replica=name,
                service=r.get("service", name.rsplit("-", 2)[0]),
                container_id=f"c{i}",
                spec_hash=r.get("hash", "h1"),
                release=r.get("release", 1),
                endpoint=Endpoint.loopback(20000 + i),
                running=r.get("running", True),
                exit_code=r.get("exit_code"),
                router=r.get("router", "ready"),
                health=r.get("health", "none"),
                checks=r.get("checks", "up"),
                started_at=float(r.get("started", i)),
            )
        )
    # observed networks: the desired networks' hashes unless the case says `hash: …`
    hashes = {n.docker_name: n.spec_hash for n in networks(case)}
    nets = []
    for written in case.get("observed_networks", []):
        n = {"name": written} if isinstance(written, str) else written
        docker_name = f"p_{n['name']}"
        nets.append(
            ObservedNetwork(
                docker_name=docker_name,
                spec_hash=n.get("hash", hashes.get(docker_name, "other")),
            )
        )
    wanted = {d["name"]: address(d) for d in case.get("desired", []) + case.get("held", [])}
    addresses = []
    for i, written in enumerate(case.get("observed_addresses", [])):
        a = {"service": written} if isinstance(written, str) else written
        mine = wanted.get(a["service"])
        addresses.append(
            ObservedAddress(
                service=a["service"],
                container_id=f"a{i}",
                spec_hash=a.get("hash", mine.spec_hash if mine else "old"),
                running=a.get("running", True),
            )
        )
    return Observed(
        orphans=tuple((o[0], o[1]) for o in case.get("orphans", [])),
        replicas=tuple(reps),
        frontends={n: 18000 + i for i, n in enumerate(case.get("frontends", []))},
        networks=tuple(nets),
        addresses=tuple(addresses),
        router_stale=case.get("router_stale", False),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_plan(case: dict[str, Any]) -> None:
    obs = observed(case)
    if case.get("down"):
        plan = plan_down(obs, case.get("down_order", ()))
    else:
        plan = plan_rollout(
            [desired(d) for d in case["desired"]],
            obs,
            networks=networks(case),
            held=[desired(d) for d in case.get("held", [])],
        )
    assert [short(s) for s in plan.steps] == case["expect"]
    assert list(plan.notes) == case.get("notes", [])


def test_replica_names_never_collide_with_observed() -> None:
    obs = observed({"observed": [{"replica": "web-1-1", "hash": "old", "running": False}]})
    plan = plan_rollout([desired({"name": "web", "replicas": 2})], obs)
    starts = [s.replica for s in plan.steps if s.kind == "start"]
    assert starts == ["web-1-2", "web-1-3"]


def test_plan_is_pure_and_repeatable() -> None:
    case = next(c for c in CASES if c["name"] == "image-change-rolling")
    a = plan_rollout([desired(d) for d in case["desired"]], observed(case))
    b = plan_rollout([desired(d) for d in case["desired"]], observed(case))
    assert a == b
