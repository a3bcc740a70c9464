"""securityContext: non-root, no privilege escalation, every capability dropped, seccomp
RuntimeDefault, a read-only root filesystem when the service says `read_only`. Where the
Compose file explicitly asks for the opposite (user root, privileged, cap_add, seccomp
unconfined) the manifest does what the file says, so the app still runs, and a warning points
at the key. Pure."""

from __future__ import annotations

from conveyor.model.stack import Service
from conveyor.render.kubernetes.objects import Collected, Manifest

_ROOT = ("root", "0")


def _ids(user: str) -> tuple[int | None, int | None, bool]:
    """(uid, gid, numeric) of a Compose `user` (`1000`, `1000:1000`, `app`, `app:staff`)."""
    name, _, group = user.partition(":")
    uid = int(name) if name.isdigit() else None
    gid = int(group) if group.isdigit() else None
    return uid, gid, uid is not None and (not group or gid is not None)


def pod_security(service: Service, out: Collected) -> Manifest:
    path = ("services", service.name)
    context: Manifest = {"seccompProfile": {"type": "RuntimeDefault"}}
    user = service.user
    if user is not None and user.partition(":")[0] in _ROOT:
        out.warn(
            (*path, "user"),
            "runs as root: the pod is rendered with runAsUser 0 and runAsNonRoot false "
            "(Kubernetes's restricted profile refuses it); use a numeric non-root uid",
        )
        context.update({"runAsNonRoot": False, "runAsUser": 0})
    else:
        context["runAsNonRoot"] = True
    if user is not None and user.partition(":")[0] not in _ROOT:
        uid, gid, numeric = _ids(user)
        if uid is not None:
            context["runAsUser"] = uid
        if gid is not None:
            context["runAsGroup"] = gid
        if not numeric:
            out.warn(
                (*path, "user"),
                f"'{user}' is a name: the kubelet can only check runAsNonRoot against a "
                "numeric uid (write user: UID[:GID])",
            )
    if any(opt.replace(":", "=") == "seccomp=unconfined" for opt in service.container.security_opt):
        out.warn(
            (*path, "security_opt"),
            "seccomp unconfined: rendered as seccompProfile Unconfined",
        )
        context["seccompProfile"] = {"type": "Unconfined"}
    if service.container.group_add:
        groups = [int(g) for g in service.container.group_add if g.isdigit()]
        if groups:
            context["supplementalGroups"] = groups
        if len(groups) != len(service.container.group_add):
            out.warn((*path, "group_add"), "group names are not rendered: use numeric gids")
    return context


def container_security(service: Service, out: Collected) -> Manifest:
    path = ("services", service.name)
    settings = service.container
    context: Manifest = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": settings.read_only,
        "capabilities": {"drop": ["ALL"]},
    }
    if settings.privileged:
        out.warn(
            (*path, "privileged"),
            "privileged: rendered as privileged with privilege escalation allowed; no "
            "restricted or baseline Pod Security level admits it",
        )
        context.update({"privileged": True, "allowPrivilegeEscalation": True})
    added = sorted({cap.upper().removeprefix("CAP_") for cap in settings.cap_add})
    if added:
        out.warn(
            (*path, "cap_add"),
            f"adds capabilities {', '.join(added)} back after dropping ALL",
        )
        context["capabilities"] = {"drop": ["ALL"], "add": added}
    return context
