"""What differs between a service as git describes it and as it runs (pure): one short phrase
per difference, for `conveyor diff` and `GET .../diff`.

The caller compares like with like: the desired service is loaded from a checkout of the
desired commit with the environment's overrides, its paths read as if it sat in the
environment's own work tree, and its image's EXPOSEd ports added as a release adds them.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.stack import Service

# Said by the image phrase, or by the replicas phrase; `name` never differs.
_NOT_SPEC = frozenset({"name", "image", "build", "pull_policy", "replicas"})


def spec_fields(desired: Service, running: Service) -> list[str]:
    """The compose fields (`environment`, `command`…) whose values differ, sorted."""
    a: dict[str, Any] = desired.model_dump(mode="json", exclude=set(_NOT_SPEC))
    b: dict[str, Any] = running.model_dump(mode="json", exclude=set(_NOT_SPEC))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def differences(
    desired: Service | None,
    running: Service | None,
    *,
    desired_image: str | None,
    running_image: str | None,
    image_differs: bool,
    running_replicas: int,
    stale_replicas: int = 0,
    desired_replicas: int | None = None,
) -> list[str]:
    """Every difference of one service, as `conveyor diff` prints them ("image a → b",
    "replicas 1 → 2", "spec: environment"). `running` is the service in the serving release
    (None: not released here); `running_replicas` counts its containers running now;
    `stale_replicas` those running another spec than the serving release's;
    `desired_replicas`: the count the engine wants when it is not the file's (a global
    service on a fleet: its hosts)."""
    if desired is None:
        return ["not in git: runs here only"]
    found: list[str] = []
    if running is None:
        found.append("not released here yet")
    else:
        if image_differs:
            found.append(f"image {running_image} → {desired_image}")
        fields = spec_fields(desired, running)
        if fields:
            found.append(f"spec: {', '.join(fields)}")
    wanted = desired.replicas if desired_replicas is None else desired_replicas
    if running_replicas != wanted:
        found.append(f"replicas {running_replicas} → {wanted}")
    if stale_replicas:
        found.append(f"{stale_replicas} replica(s) run an older spec than the serving release")
    return found
