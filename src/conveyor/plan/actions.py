"""What a plan is made of: steps the executor runs one at a time, journaling each first."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import SerializerFunctionWrapHandler, model_serializer

from conveyor.model.stack import Frozen

StepKind = Literal[
    "frontends",  # make HAProxy's set of frontends match `services` (start or hitless reload)
    "start",  # start a new replica of the desired release
    "await",  # wait for the replica's probe; failure fails the rollout
    "route",  # put the replica in its backend, ready
    "drain",  # stop new traffic to the replica; wait for its sessions to end (grace period)
    "unroute",  # delete the replica's server from its backend
    "stop",  # stop signal, grace period, then remove the container
    "remove",  # remove a container that is no longer running
    "sleep",  # update_config.delay between batches
    "monitor",  # watch the service's new replicas for update_config.monitor seconds
    "network",  # create a project network (or check that an external one exists)
    "address",  # (re)create a service's address: the namespace its name resolves to
    "unaddress",  # remove the service address of a service that no longer has one
    "unnetwork",  # remove a project network nothing uses any more
]


class Step(Frozen):
    kind: StepKind
    service: str = ""
    replica: str = ""
    batch: int = 0  # steps of one batch succeed or fail together for failure_action=continue
    seconds: float = 0.0
    services: tuple[str, ...] = ()  # for `frontends`
    network: str = ""  # for `network` (the Compose name) and `unnetwork` (the Docker name)
    reason: str = ""
    # On a fleet: the host a `start` runs the replica on (plan.fleet_assign); "" on one host.
    host: str = ""

    @model_serializer(mode="wrap")
    def _without_empty_host(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """One-host steps serialize (journal, `plan --json`) exactly as before fleets."""
        data: dict[str, Any] = handler(self)
        if not self.host:
            data.pop("host", None)
        return data

    def describe(self) -> str:
        """One human line, used by `conveyor plan` and the journal."""
        match self.kind:
            case "frontends":
                return f"router: frontends for {', '.join(self.services) or '(none)'}"
            case "sleep":
                return f"{self.service}: wait {self.seconds:g}s ({self.reason})"
            case "monitor":
                return f"{self.service}: monitor new replicas for {self.seconds:g}s"
            case "network" | "unnetwork":
                verb = "create" if self.kind == "network" else "remove"
                why = f" ({self.reason})" if self.reason else ""
                return f"network {self.network}: {verb}{why}"
            case "address" | "unaddress":
                verb = "start" if self.kind == "address" else "remove"
                why = f" ({self.reason})" if self.reason else ""
                return f"{self.service}: {verb} service address{why}"
            case _:
                verb = {
                    "start": "start",
                    "await": "wait until healthy",
                    "route": "add to rotation",
                    "drain": "drain",
                    "unroute": "remove from rotation",
                    "stop": "stop",
                    "remove": "remove dead",
                }[self.kind]
                why = f" ({self.reason})" if self.reason else ""
                on = f" on {self.host}" if self.host else ""
                return f"{self.service}: {verb} {self.replica}{on}{why}"


class Plan(Frozen):
    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = ()  # warnings a user should read before applying

    @property
    def empty(self) -> bool:
        return not self.steps

    def services(self) -> list[str]:
        seen: list[str] = []
        for s in self.steps:
            if s.service and s.service not in seen:
                seen.append(s.service)
        return seen
