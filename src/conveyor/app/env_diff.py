"""`diff` for one environment of the server: the compose stack at the desired commit (with the
environment's overrides) against what runs, per service (`gitops.diff` words each difference).

The desired stack is loaded from a scratch checkout, so every path in it (build contexts,
bind mounts, env files) names the scratch directory; it is rewritten to the environment's
work tree before comparing, where the serving release was loaded from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from conveyor.app import deploy as deploy_app
from conveyor.app.project import Project
from conveyor.app.server_views import ServiceDiff
from conveyor.errors import ConveyorError
from conveyor.gitops.diff import differences
from conveyor.model.release import Release, ServiceRelease
from conveyor.model.stack import Service, Stack
from conveyor.runtime.protocol import Runtime


def relocated(stack: Stack, scratch: Path, work: Path) -> Stack:
    """`stack` as if loaded from `work` instead of `scratch` (absolute paths rewritten)."""
    old, new = json.dumps(str(scratch))[1:-1], json.dumps(str(work))[1:-1]
    return Stack.model_validate_json(stack.model_dump_json().replace(old, new))


def service_diffs(
    desired: Stack,
    scratch: Path,
    work: Path,
    running: Project | None,
    images: Mapping[str, tuple[str, str]] | None = None,
) -> list[ServiceDiff]:
    """The services that differ between `desired` (loaded from the checkout at `scratch`,
    still there) and the project serving from `work` (None: nothing deployed yet), by name.
    `images` (service -> (reference, id)): the images git's commit runs with here, when they
    were not built from it here (a promoted release runs its source environment's images)."""
    here = relocated(desired, scratch, work)
    release: Release | None = None
    counts: dict[str, int] = {}
    stale: dict[str, int] = {}
    per_host: dict[str, int] = {}  # global services on a fleet: their hosts
    runtime: Runtime | None = None
    if running is not None:
        engine = running.engine(actor="server")
        runtime = engine.runtime
        release = engine.store.current_release()
        for view in deploy_app.status(running).services:
            counts[view.name] = view.running_replicas
            stale[view.name] = sum(1 for r in view.replicas if r.running and not r.current)
            if view.mode == "global":
                per_host[view.name] = view.desired_replicas
    serving = dict(release.services) if release is not None else {}
    out: list[ServiceDiff] = []
    for name in sorted(desired.services.keys() | serving.keys() | counts.keys()):
        d, r = here.services.get(name), serving.get(name)
        # Build contexts are hashed where the desired commit's files are: the scratch tree.
        given = (images or {}).get(name)
        image: str | None
        if given is not None:
            image, differs = given[0], r is not None and given[1] != r.image_id
        else:
            image, differs = _desired_image(desired.project, desired.services.get(name), r, runtime)
        found = differences(
            _with_ports(d, r, runtime),
            r.service if r else None,
            desired_image=image,
            running_image=r.image_ref if r else None,
            image_differs=differs,
            running_replicas=counts.get(name, 0),
            stale_replicas=stale.get(name, 0),
            desired_replicas=per_host.get(name) if d is not None and _is_global(d) else None,
        )
        if found:
            out.append(
                ServiceDiff(
                    service=name,
                    desired_image=image,
                    running_image=r.image_ref if r else None,
                    desired_replicas=d.replicas if d else 0,
                    running_replicas=counts.get(name, 0),
                    differences=found,
                )
            )
    return out


def _is_global(svc: Service) -> bool:
    return svc.placement is not None and svc.placement.mode == "global"


def _desired_image(
    project: str, svc: Service | None, running: ServiceRelease | None, rt: Runtime | None
) -> tuple[str | None, bool]:
    """(the image git asks for, whether it differs from the running one), as the deploy
    engine picks images: by name unless the service is built (`pull_policy: build`, or a
    build section without an image name); a built one by the tag its build context would get
    (the context's hash is in it), which is not on this host when a build would make a new
    image."""
    if svc is None:
        return None, False
    policy = svc.pull_policy or ("build" if svc.build is not None else "missing")
    if svc.build is None or (svc.image is not None and policy != "build"):
        return svc.image, running is not None and svc.image != running.image_ref
    from conveyor.runtime.docker_engine import context_hash, image_repository

    try:
        tag = f"{image_repository(project, svc.name)}:{context_hash(svc.build)}"
    except ConveyorError:
        return None, running is not None
    found = rt.local_image(tag) if rt is not None else None
    if running is not None and found == running.image_id:
        return running.image_ref, False
    return tag, running is not None


def _with_ports(
    svc: Service | None, running: ServiceRelease | None, rt: Runtime | None
) -> Service | None:
    """`svc` with the running image's EXPOSEd ports added, as a release adds them."""
    if svc is None or running is None or rt is None:
        return svc
    try:
        return svc.with_image_ports(rt.exposed_ports(running.image_id))
    except ConveyorError:
        return svc
