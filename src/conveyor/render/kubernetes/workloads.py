"""Workloads: a Deployment per stateless service, a StatefulSet (with volumeClaimTemplates)
per service with named volumes, a Job per run-to-completion service. Pure.

Rollouts follow `deploy.update_config`: start-first is maxUnavailable 0 and maxSurge
`parallelism` (0: all at once, 100 %); stop-first is the reverse. `preStop` sleeps before
SIGTERM so endpoints drop the pod before the app stops, and the grace period is Compose's
`stop_grace_period` plus that pause.
"""

from __future__ import annotations

from conveyor.model.stack import Service, Stack, VolumeMount
from conveyor.render.kubernetes.availability import spread
from conveyor.render.kubernetes.config import (
    config_map_name,
    env_map_name,
    env_secret_name,
    environment,
    main_port,
    secret_name,
)
from conveyor.render.kubernetes.names import (
    COMPONENT,
    cpu_quantity,
    dns_label,
    labels,
    memory_quantity,
    network_label,
    seconds,
    selector,
    spread_selector,
)
from conveyor.render.kubernetes.objects import Collected, Manifest, manifest, meta
from conveyor.render.kubernetes.probes import probes, ready_window
from conveyor.render.kubernetes.security import container_security, pod_security

DRAIN_PAUSE = 5  # seconds preStop waits so Services stop sending before SIGTERM
DEFAULT_MIN_READY = 5  # seconds, when update_config.monitor says nothing
PROGRESS_MARGIN = 60  # seconds on top of a replica's ready window before a rollout fails


def kind_of(stack: Stack, service: Service) -> str:
    """`Job` (run to completion), `StatefulSet` (named volumes) or `Deployment`."""
    if service.name in stack.oneshots() or (
        service.restart is not None and service.restart.condition == "no"
    ):
        return "Job"
    if named_volumes(stack, service):
        return "StatefulSet"
    return "Deployment"


def canaried(stack: Stack, service: Service) -> bool:
    """Flagger canaries it (`x-conveyor.canary`): only Deployments are."""
    return service.canary is not None and kind_of(stack, service) == "Deployment"


def named_volumes(stack: Stack, service: Service) -> list[VolumeMount]:
    return [
        v
        for v in service.volumes
        if v.type == "volume"
        and v.source is not None
        and v.source in stack.volumes
        and not stack.volumes[v.source].external
    ]


def workload(
    stack: Stack,
    service: Service,
    out: Collected,
    storage: str,
    env_secret: bool = False,
) -> Manifest:
    """The service's workload manifest (warnings about it go to `out`). `env_secret`: an
    environment's overrides give it secret variables, so it reads its env Secret even when
    the compose file gives it none."""
    kind = kind_of(stack, service)
    name = dns_label(service.name)
    pod = _pod(stack, service, out, kind, env_secret)
    sel = selector(stack.project, service)
    if kind == "Job":
        restart = service.restart_policy
        attempts = restart.max_attempts if restart.condition == "on-failure" else 0
        pod["spec"]["restartPolicy"] = "Never"
        return manifest(
            "batch/v1",
            "Job",
            meta(name, {**labels(stack.project, service), COMPONENT: "job"}),
            spec={"backoffLimit": attempts or 0, "template": pod},
        )
    spec: Manifest = {
        "selector": {"matchLabels": sel},
        "template": pod,
        "minReadySeconds": _min_ready(service),
        "revisionHistoryLimit": 5,
    }
    if service.autoscale is None:
        spec["replicas"] = service.replicas
    if kind == "StatefulSet":
        spec["serviceName"] = headless_name(service)
        spec["updateStrategy"] = {"type": "RollingUpdate"}
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": dns_label(v.source or "")},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": storage}},
                },
            }
            for v in _unique_sources(named_volumes(stack, service))
        ]
        if service.replicas > 1:
            out.warn(
                ("services", service.name, "volumes"),
                "each replica gets its own copy of the named volume (a StatefulSet's claim "
                "per pod); under Compose the replicas share one",
            )
        return manifest(
            "apps/v1", "StatefulSet", meta(name, labels(stack.project, service)), spec=spec
        )
    spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": _rolling(service)}
    spec["progressDeadlineSeconds"] = (
        seconds(ready_window(service)) + spec["minReadySeconds"] + PROGRESS_MARGIN
    )
    return manifest("apps/v1", "Deployment", meta(name, labels(stack.project, service)), spec=spec)


def headless_name(service: Service) -> str:
    return f"{dns_label(service.name)}-pods"


def _unique_sources(mounts: list[VolumeMount]) -> list[VolumeMount]:
    seen: dict[str, VolumeMount] = {}
    for mount in mounts:
        seen.setdefault(mount.source or "", mount)
    return [seen[k] for k in sorted(seen)]


def _min_ready(service: Service) -> int:
    monitor = service.update_config.monitor
    return seconds(monitor) if monitor > 0 else DEFAULT_MIN_READY


def _rolling(service: Service) -> Manifest:
    step: int | str = service.update_config.parallelism or "100%"
    if service.update_config.order == "stop-first":
        return {"maxSurge": 0, "maxUnavailable": step}
    return {"maxSurge": step, "maxUnavailable": 0}


def _pod(stack: Stack, service: Service, out: Collected, kind: str, env_secret: bool) -> Manifest:
    pod_labels = dict(selector(stack.project, service))
    for network in sorted(service.networks or ("default",)):
        pod_labels[network_label(network)] = "true"
    container = _container(stack, service, out, kind, env_secret)
    spec: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(service, out),
        "terminationGracePeriodSeconds": seconds(service.stop_grace_period) + DRAIN_PAUSE,
        "containers": [container],
    }
    volumes = _volumes(stack, service, out)
    if volumes:
        spec["volumes"] = volumes
    if kind != "Job":
        replicas = service.autoscale.max if service.autoscale else service.replicas
        if replicas > 1:
            spec["topologySpreadConstraints"] = spread(
                spread_selector(stack.project, service, canaried(stack, service))
            )
    hosts: dict[str, list[str]] = {}
    for host, address in service.container.extra_hosts:
        hosts.setdefault(address, []).append(host)
    if hosts:
        spec["hostAliases"] = [
            {"ip": ip, "hostnames": sorted(h)} for ip, h in sorted(hosts.items())
        ]
    _unsupported(service, out)
    return {"metadata": {"labels": pod_labels}, "spec": spec}


def image_of(stack: Stack, service: Service) -> str:
    return service.image or f"{stack.project}/{service.name}"


def _container(
    stack: Stack, service: Service, out: Collected, kind: str, env_secret: bool
) -> Manifest:
    path = ("services", service.name)
    if service.image is None:
        out.warn(
            (*path, "build"),
            f"no image: rendered as {image_of(stack, service)}, which a cluster can only "
            "pull once the build is pushed to a registry (set `image:`)",
        )
    container: Manifest = {"name": dns_label(service.name), "image": image_of(stack, service)}
    if service.entrypoint is not None:
        container["command"] = list(service.entrypoint)
    if service.command is not None:
        container["args"] = list(service.command)
    if service.working_dir:
        container["workingDir"] = service.working_dir
    plain, secret = environment(service)
    env_from: list[Manifest] = []
    if plain:
        env_from.append({"configMapRef": {"name": env_map_name(service)}})
    if secret or env_secret:
        env_from.append({"secretRef": {"name": env_secret_name(service)}})
    if env_from:
        container["envFrom"] = env_from
    ports = _ports(service)
    if ports:
        container["ports"] = ports
    if kind != "Job":
        container.update(probes(service))
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": DRAIN_PAUSE}}}
    resources = _resources(service, out)
    if resources:
        container["resources"] = resources
    container["securityContext"] = container_security(service, out)
    mounts = _mounts(stack, service)
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _ports(service: Service) -> list[Manifest]:
    found: dict[tuple[int, str], Manifest] = {}
    for port in (main_port(service), service.metrics.port if service.metrics else None):
        if port is not None:
            found[(port, "TCP")] = {"containerPort": port, "protocol": "TCP"}
    for p in service.ports:
        found.setdefault(
            (p.target, p.protocol.upper()),
            {
                "containerPort": p.target,
                "protocol": p.protocol.upper(),
            },
        )
    for e in service.expose:
        found.setdefault(
            (e.port, e.protocol.upper()),
            {
                "containerPort": e.port,
                "protocol": e.protocol.upper(),
            },
        )
    return [found[k] for k in sorted(found)]


def _resources(service: Service, out: Collected) -> Manifest:
    limits: Manifest = {}
    requests: Manifest = {}
    if service.limits.cpus:
        limits["cpu"] = cpu_quantity(service.limits.cpus)
    if service.limits.memory:
        limits["memory"] = memory_quantity(service.limits.memory)
    if service.reservations.cpus:
        requests["cpu"] = cpu_quantity(service.reservations.cpus)
    if service.reservations.memory:
        requests["memory"] = memory_quantity(service.reservations.memory)
    for key, value in limits.items():
        requests.setdefault(key, value)  # what Kubernetes would assume, written out
    if service.limits.pids:
        out.warn(
            ("services", service.name, "deploy", "resources", "limits", "pids"),
            "a pids limit is set per node by the kubelet, not per container: not rendered",
        )
    result: Manifest = {}
    if limits:
        result["limits"] = limits
    if requests:
        result["requests"] = requests
    return result


def _volumes(stack: Stack, service: Service, out: Collected) -> list[Manifest]:
    volumes: dict[str, Manifest] = {}
    claimed = {v.source for v in named_volumes(stack, service)}
    for index, mount in enumerate(service.volumes):
        name = _volume_name(stack, service, index, mount)
        if mount.type == "bind":
            out.warn(
                ("services", service.name, "volumes", index),
                f"a bind mount at {mount.target} has no Kubernetes equivalent (a pod does "
                "not see the host's files): not rendered; use a config, or a named volume",
            )
        elif mount.type == "tmpfs":
            volumes[name] = {"name": name, "emptyDir": {"medium": "Memory"}}
        elif mount.source is None:
            volumes[name] = {"name": name, "emptyDir": {}}
        elif mount.source in stack.volumes and stack.volumes[mount.source].external:
            claim = dns_label(stack.volumes[mount.source].name)
            volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": claim}}
        elif mount.source not in claimed:
            volumes[name] = {"name": name, "emptyDir": {}}
    for index in range(len(service.container.tmpfs)):
        name = f"tmpfs-{index}"
        volumes[name] = {"name": name, "emptyDir": {"medium": "Memory"}}
    for secret in service.secrets:
        name = secret_name(secret.source)
        volumes[name] = {"name": name, "secret": {"secretName": name}}
    for config in service.configs:
        name = config_map_name(config.source)
        volumes[name] = {"name": name, "configMap": {"name": name}}
    return [volumes[k] for k in sorted(volumes)]


def _volume_name(stack: Stack, service: Service, index: int, mount: VolumeMount) -> str:
    if mount.type == "volume" and mount.source in stack.volumes:
        return dns_label(mount.source or "")
    return f"volume-{index}"


def _mounts(stack: Stack, service: Service) -> list[Manifest]:
    mounts: list[Manifest] = []
    for index, mount in enumerate(service.volumes):
        if mount.type == "bind":
            continue
        entry: Manifest = {
            "name": _volume_name(stack, service, index, mount),
            "mountPath": mount.target,
        }
        if mount.read_only:
            entry["readOnly"] = True
        mounts.append(entry)
    for index, target in enumerate(sorted(service.container.tmpfs)):
        mounts.append({"name": f"tmpfs-{index}", "mountPath": target})
    for secret in service.secrets:
        mounts.append(
            {
                "name": secret_name(secret.source),
                "mountPath": secret.target,
                "subPath": dns_label(secret.source),
                "readOnly": True,
            }
        )
    for config in service.configs:
        mounts.append(
            {
                "name": config_map_name(config.source),
                "mountPath": config.target,
                "subPath": dns_label(config.source),
                "readOnly": True,
            }
        )
    return sorted(mounts, key=lambda m: (m["mountPath"], m["name"]))


def _unsupported(service: Service, out: Collected) -> None:
    """Compose settings with no Kubernetes equivalent: said, with where they are written."""
    path = ("services", service.name)
    c = service.container
    if service.networking == "host":
        out.warn(
            (*path, "network_mode"),
            "network_mode host: every pod has its own network in Kubernetes (hostNetwork is "
            "not rendered); other services reach it by its Service name",
        )
    if service.stop_signal != "SIGTERM":
        out.warn(
            (*path, "stop_signal"),
            f"Kubernetes stops containers with SIGTERM, not {service.stop_signal}: set the "
            "image's STOPSIGNAL",
        )
    unsupported = {
        "devices": bool(c.devices),
        "sysctls": bool(c.sysctls),
        "ulimits": bool(c.ulimits),
        "dns": bool(c.dns or c.dns_search or c.dns_opt),
        "pid": c.pid == "host",
        "ipc": c.ipc == "host",
        "userns_mode": c.userns_mode is not None,
        "shm_size": c.shm_size is not None,
    }
    for key, present in sorted(unsupported.items()):
        if present:
            out.warn((*path, key), "has no equivalent in a pod spec: not rendered")
    ordered = sorted(
        dep for dep, cond in service.depends_on.items() if cond.condition == "service_healthy"
    )
    jobs = sorted(
        dep
        for dep, cond in service.depends_on.items()
        if cond.condition == "service_completed_successfully"
    )
    if jobs:
        out.warn(
            (*path, "depends_on"),
            f"Kubernetes does not wait for the Job {', '.join(jobs)} to complete before "
            "starting this service: run it first (a Flux Kustomization with dependsOn, or "
            "an init container)",
        )
    if ordered:
        out.warn(
            (*path, "depends_on"),
            f"Kubernetes starts pods in any order: waiting for {', '.join(ordered)} to be "
            "healthy is not rendered (the app must retry until they answer)",
        )
