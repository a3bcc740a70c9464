"""conveyor.yaml's fleet -> model.Fleet (docs/provision.md).

Either the hosts written inline:

    hosts:
      web1:
        address: 10.0.0.5        # what SSH connects to (required)
        user: deploy             # default root
        port: 22
        key: keys/deploy         # a private key file, relative to conveyor.yaml
        roles: [app, edge]       # app, edge, monitor; default [app]
        labels: {zone: a}        # placement constraints match these

or an Ansible inventory file (`inventory: ansible/hosts.ini`), which Ansible itself reads:
`ansible-inventory -i PATH --list` (run by host.ansible) gives JSON that `fleet_from_inventory`
turns into the same Fleet: roles from the groups named app/edge/monitor (children included),
labels from a `conveyor_labels` host variable, address/user/port/key from ansible_host,
ansible_user, ansible_port, ansible_ssh_private_key_file. `inventory:` alone gives a Fleet with
`inventory_file` set and no hosts yet: this layer starts no processes, so app/ reads the file.

Or the hosts of the project's AWS stack (`hosts_from: aws`, docs/aws.md): the running
instances of its Auto Scaling group, reached as `aws.hosts` says (address, ssh_user,
ssh_key). That gives a Fleet with `hosts_from` set and no hosts: app/ asks AWS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import SpecError
from conveyor.model.checks import ChecksSettings
from conveyor.model.fleet import HOST_ROLES, HOSTS_FROM, Fleet, FleetHost, HostRole
from conveyor.model.frozen import Frozen
from conveyor.spec.checks import checks as parse_checks
from conveyor.spec.context import Context, raise_errors
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.values import describe, one_of, suggest, to_int, to_str
from conveyor.spec.yamlpos import YamlPath, load_yaml

HOST_KEYS = ("address", "user", "port", "key", "roles", "labels")
LABELS_VAR = "conveyor_labels"  # the host variable an Ansible inventory gives labels in

# Ansible's inventory names and SSH user names: no spaces, no shell or YAML specials.
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]*")  # IPv4, IPv6 or a DNS name
_USER = re.compile(r"[a-z_][a-z0-9_-]*[$]?")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def fleet(ctx: Context, root: Mapping[str, Any]) -> Fleet:
    """The fleet of a conveyor.yaml whose top-level mapping is `root` (problems recorded)."""
    hosts, inventory = root.get("hosts"), root.get("inventory")
    if root.get("hosts_from") is not None:
        return _hosts_from(ctx, root)
    if hosts is not None and inventory is not None:
        ctx.error(("inventory",), "write the hosts under 'hosts' or name an inventory, not both")
        return Fleet()
    if inventory is not None:
        if not isinstance(inventory, str) or not inventory.strip():
            ctx.error(
                ("inventory",), f"must be an inventory file's path, got {describe(inventory)}"
            )
            return Fleet()
        return Fleet(inventory_file=str(ctx.resolve(inventory)))
    if hosts is None:
        return Fleet()
    raw = mapping(ctx, ("hosts",), hosts, "a mapping of host name -> address, roles, ...")
    if raw is None:
        return Fleet()
    built = [_host(ctx, str(name), written) for name, written in raw.items()]
    _check_addresses(ctx, [h for h in built if h is not None])
    return Fleet(hosts=tuple(h for h in built if h is not None))


def _hosts_from(ctx: Context, root: Mapping[str, Any]) -> Fleet:
    """`hosts_from: aws`: the fleet is learned, so no host may be written as well."""
    for other in ("hosts", "inventory"):
        if root.get(other) is not None:
            ctx.error(
                ("hosts_from",),
                f"the hosts come from AWS: remove '{other}' (or 'hosts_from' to use it)",
            )
            return Fleet()
    try:
        source = one_of(root["hosts_from"], HOSTS_FROM)
    except ValueError as e:
        ctx.error(("hosts_from",), str(e))
        return Fleet()
    return Fleet(
        hosts_from=next(s for s in HOSTS_FROM if s == source),
        line=ctx.where(("hosts_from",))[1],
    )


def parse_fleet(text: str, file: str = "conveyor.yaml", base: Path | None = None) -> Fleet:
    doc = load_yaml(text, file, version="1.2")
    ctx = Context(doc=doc, file=file, base=base or Path("."), environ={})
    if doc.data is None:
        return Fleet()
    root = mapping(ctx, (), doc.data)
    result = Fleet() if root is None else fleet(ctx, root)
    raise_errors(ctx.errors)
    return result


def _host(ctx: Context, name: str, written: Any) -> FleetHost | None:
    path: YamlPath = ("hosts", name)
    if not _HOST_NAME.fullmatch(name):
        ctx.error(
            path, "a host's name is letters, digits, '.', '_' and '-', from a letter or digit"
        )
        return None
    raw = mapping(ctx, path, written, "a mapping with at least 'address'")
    if raw is None:
        return None
    known_keys(ctx, path, raw, HOST_KEYS)
    errors = len(ctx.errors)
    address = raw.get("address")
    if address is None:
        ctx.error(path, "'address' is required: the IP address or DNS name SSH connects to")
    elif not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        ctx.error(
            (*path, "address"), f"must be an IP address or a DNS name, got {describe(address)}"
        )
    user = ctx.optional(raw, "user", path, _user, "root")
    port = ctx.optional(raw, "port", path, _port, 22)
    key = ctx.optional(raw, "key", path, _key, None)
    default_roles: tuple[HostRole, ...] = ("app",)
    roles = ctx.optional(raw, "roles", path, _roles, default_roles)
    labels = _labels(ctx, (*path, "labels"), raw.get("labels"))
    if len(ctx.errors) > errors:
        return None
    return FleetHost(
        name=name,
        address=str(address),
        user=user,
        port=port,
        key=None if key is None else str(ctx.resolve(key)),
        roles=roles,
        labels=labels,
        line=ctx.where(path)[1],
    )


def _check_addresses(ctx: Context, hosts: list[FleetHost]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for host in hosts:
        other = seen.setdefault((host.address, host.port), host.name)
        if other != host.name:
            ctx.error(
                ("hosts", host.name, "address"),
                f"{host.address}:{host.port} is also host '{other}': one host, one name",
            )


def _user(value: Any) -> str:
    if isinstance(value, str) and _USER.fullmatch(value):
        return value
    raise ValueError(f"must be a user name such as deploy, got {describe(value)}")


def _port(value: Any) -> int:
    port = to_int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"must be a port from 1 to 65535, got {port}")
    return port


def _key(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"must be a private key file's path, got {describe(value)}")


def _roles(value: Any) -> tuple[HostRole, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"must be a list of {', '.join(HOST_ROLES)}, got {describe(value)}")
    roles: list[HostRole] = []
    for item in items:
        role = _role(item)
        if role is None:
            hint = suggest(str(item), HOST_ROLES) if isinstance(item, str) else ""
            raise ValueError(
                f"unknown role {describe(item)} (known: {', '.join(HOST_ROLES)}){hint}"
            )
        if role in roles:
            raise ValueError(f"role '{role}' is listed twice")
        roles.append(role)
    return tuple(roles)


def _role(value: Any) -> HostRole | None:
    return next((r for r in HOST_ROLES if r == value), None)


def _labels(ctx: Context, path: YamlPath, written: Any) -> dict[str, str]:
    if written is None:
        return {}
    raw = mapping(ctx, path, written, "a mapping of label -> value")
    if raw is None:
        return {}
    labels: dict[str, str] = {}
    for key, value in raw.items():
        problem = _label_problem(str(key), value)
        if problem:
            ctx.error((*path, key), problem)
        else:
            labels[str(key)] = to_str(value)
    return labels


def _label_problem(key: str, value: Any) -> str | None:
    if not _LABEL.fullmatch(key):
        return "a label's name is letters, digits, '.', '_', '/' and '-'"
    if value is None or isinstance(value, dict | list):
        return f"a label's value must be a string or a number, got {describe(value)}"
    return None


# --- an Ansible inventory, as `ansible-inventory --list` prints it ----------------------------


def fleet_from_inventory(listing: Mapping[str, Any], file: str) -> Fleet:
    """The Fleet `ansible-inventory -i FILE --list` describes (`listing` is its JSON).
    Hosts in the order the groups list them, from `all` down. Raises SpecError(s) naming
    FILE and the host variable at fault (an inventory's lines are Ansible's to know)."""
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    order = list(dict.fromkeys([*_members(listing, "all", set()), *hostvars]))
    roles = {role: set(_members(listing, role, set())) for role in HOST_ROLES}
    errors: list[SpecError] = []
    hosts: list[FleetHost] = []
    for name in order:
        host = _inventory_host(name, hostvars.get(name, {}), roles, file, errors)
        if host is not None:
            hosts.append(host)
    raise_errors(errors)
    return Fleet(hosts=tuple(hosts), inventory_file=file)


def _members(listing: Mapping[str, Any], group: str, seen: set[str]) -> list[str]:
    """Every host of `group` and of its children, in listed order."""
    if group in seen:
        return []
    seen.add(group)
    entry = listing.get(group, {})
    hosts = [str(h) for h in entry.get("hosts", [])]
    for child in entry.get("children", []):
        hosts += _members(listing, str(child), seen)
    return hosts


def _inventory_host(
    name: str,
    variables: Mapping[str, Any],
    roles: Mapping[HostRole, set[str]],
    file: str,
    errors: list[SpecError],
) -> FleetHost | None:
    def problem(field: str, message: str) -> None:
        errors.append(SpecError(file, None, f"{name}.{field}", message))

    before = len(errors)
    address = str(variables.get("ansible_host", name))
    if not _ADDRESS.fullmatch(address):
        problem("ansible_host", f"must be an IP address or a DNS name, got {describe(address)}")
    user = str(variables.get("ansible_user", "root"))
    port = 22
    try:
        port = _port(variables.get("ansible_port", 22))
    except ValueError as e:
        problem("ansible_port", str(e))
    key = variables.get("ansible_ssh_private_key_file")
    labels: dict[str, str] = {}
    written = variables.get(LABELS_VAR, {})
    if not isinstance(written, dict):
        problem(LABELS_VAR, f"must be a mapping of label -> value, got {describe(written)}")
    else:
        for label, value in written.items():
            message = _label_problem(str(label), value)
            if message:
                problem(f"{LABELS_VAR}.{label}", message)
            else:
                labels[str(label)] = to_str(value)
    if len(errors) > before:
        return None
    # A host in none of the role groups runs replicas, as a host written inline does.
    member_of = tuple(r for r in HOST_ROLES if name in roles[r]) or ("app",)
    return FleetHost(
        name=name,
        address=address,
        user=user,
        port=port,
        key=None if key is None else str(key),
        roles=member_of,
        labels=labels,
    )


class FleetFile(Frozen):
    """What `conveyor provision` reads from conveyor.yaml: the fleet and the checks NRPE runs."""

    fleet: Fleet = Fleet()
    checks: ChecksSettings = ChecksSettings()


def load_fleet_file(path: Path, name: str | None = None) -> FleetFile:
    """`hosts:`/`inventory:`/`hosts_from:` and `checks:` of the conveyor.yaml at `path`
    (defaults when the file is absent); other sections are not checked, so a project without
    environments can be provisioned. Raises SpecError or SpecErrors naming `name` (default:
    `path`)."""
    file = str(path) if name is None else name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FleetFile()
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(file, None, "", f"cannot read the file: {e}") from None
    doc = load_yaml(text, file, version="1.2")
    if doc.data is None:
        return FleetFile()
    ctx = Context(doc=doc, file=file, base=path.parent, environ={})
    root = mapping(ctx, (), doc.data)
    result = FleetFile()
    if root is not None:
        result = FleetFile(
            fleet=fleet(ctx, root), checks=parse_checks(ctx, ("checks",), root.get("checks"))
        )
    raise_errors(ctx.errors)
    return result
