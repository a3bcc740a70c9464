"""Compose files merged as Compose merges them, keeping where every value was written.

The rules (Compose Specification, "Merge"; `extends` uses them too):

- mappings merge key by key, the later file winning; `x-` keys are replaced, not merged;
- sequences are appended;
- `command`, `entrypoint` and `healthcheck.test` are replaced;
- list-or-mapping fields (`environment`, `labels`, `build.args`, `sysctls`, `extra_hosts`…)
  merge as mappings, whichever syntax each file used;
- `volumes`, `secrets` and `configs` of a service merge by target, `ports` by (host IP,
  published, target, protocol): an entry with the same key replaces the earlier one;
- lists of plain values (`dns`, `cap_add`, `expose`, `profiles`…) drop repeated values;
- `logging` merges only when both files name the same driver (or one names none);
- `!reset` removes what earlier files set; `!override` replaces instead of merging.

Every value travels with its `Loc` (file, line, and the locations of what it holds), so
errors found after the merge still point at the file and line a person has to edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conveyor.spec.yamlpos import Document, SpecWarning, YamlKey, YamlPath

RESET = "!reset"
OVERRIDE = "!override"
MARKERS = frozenset({RESET, OVERRIDE})


@dataclass
class Loc:
    """Where a value was written, and where each of its keys or items was."""

    file: str
    line: int
    tag: str | None = None
    kids: dict[YamlKey, Loc] = field(default_factory=dict)

    def kid(self, key: YamlKey) -> Loc:
        found = self.kids.get(key)
        return found if found is not None else Loc(self.file, self.line)


@dataclass
class Located:
    data: Any
    loc: Loc


def located(doc: Document, file: str) -> Located:
    """A loaded document with its lines as a tree; `file` names paths without their own."""
    root = Loc(doc.files.get((), file), doc.lines.get((), 1), doc.tags.get(()))
    for path in sorted(doc.lines, key=len):  # parents before their children
        if not path:
            continue
        parent = root
        for key in path[:-1]:
            parent = parent.kids.setdefault(key, Loc(parent.file, parent.line))
        parent.kids[path[-1]] = Loc(doc.files.get(path, file), doc.lines[path], doc.tags.get(path))
    return Located(doc.data, root)


def document(value: Located, file: str, warnings: Iterable[SpecWarning] = ()) -> Document:
    """Back to a Document whose own file is `file` (paths from other files say theirs)."""
    lines: dict[YamlPath, int] = {}
    files: dict[YamlPath, str] = {}

    def walk(loc: Loc, path: YamlPath) -> None:
        lines[path] = loc.line
        if loc.file != file:
            files[path] = loc.file
        for key, kid in loc.kids.items():
            walk(kid, (*path, key))

    walk(value.loc, ())
    return Document(value.data, lines, tuple(warnings), {}, files)


def merge(base: Located, over: Located) -> Located:
    """`over` merged onto `base` (neither is changed)."""
    data, loc = _merge(base.data, base.loc, over.data, over.loc, ())
    return Located(data, loc)


def merge_service(name: str, base: Located, over: Located) -> Located:
    """Service `over` merged onto service `base` (`extends`), by the same rules."""
    data, loc = _merge(base.data, base.loc, over.data, over.loc, ("services", name))
    return Located(data, loc)


def without_resets(value: Located) -> Located:
    """A file's own `!reset` keys removed: with nothing before it, they reset nothing."""
    data, loc = _strip(value.data, value.loc)
    return Located(data, loc)


# --- the generic rules -----------------------------------------------------------------------

Pair = tuple[Any, Loc]
Rule = Callable[[Any, Loc, Any, Loc, YamlPath], Pair]


def _merge(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
    if lb.tag == OVERRIDE:
        return _strip(b, lb)
    rule = _RULES.get(_pattern(path))
    if rule is not None:
        return rule(a, la, b, lb, path)
    if isinstance(a, dict) and isinstance(b, dict):
        return _mappings(a, la, b, lb, path)
    if isinstance(a, list) and isinstance(b, list):
        return _append(a, la, b, lb)
    return _strip(b, lb)


def _pattern(path: YamlPath) -> YamlPath:
    """The path with resource names replaced by `*`: `services.*.ulimits.*`."""
    if len(path) < 2 or path[0] not in ("services", "volumes", "networks", "secrets", "configs"):
        return path
    out = (path[0], "*", *path[2:])
    if out[:3] == ("services", "*", "ulimits") and len(out) > 3:
        out = (*out[:3], "*", *out[4:])
    return out


def _mappings(a: dict[str, Any], la: Loc, b: dict[str, Any], lb: Loc, path: YamlPath) -> Pair:
    out = dict(a)
    kids = dict(la.kids)
    for key, value in b.items():
        kb = lb.kid(key)
        if kb.tag == RESET:
            out.pop(key, None)
            kids.pop(key, None)
        elif key not in out or key.startswith("x-"):
            out[key], kids[key] = _strip(value, kb)
        else:
            out[key], kids[key] = _merge(out[key], la.kid(key), value, kb, (*path, key))
    return out, Loc(la.file, la.line, None, kids)


def _append(a: list[Any], la: Loc, b: list[Any], lb: Loc) -> Pair:
    items = [(item, la.kid(i)) for i, item in enumerate(a)]
    items += [_strip(item, lb.kid(i)) for i, item in enumerate(b) if lb.kid(i).tag != RESET]
    return _list(items, la)


def _list(items: list[Pair], loc: Loc) -> Pair:
    return [item for item, _ in items], Loc(
        loc.file, loc.line, None, {i: kid for i, (_, kid) in enumerate(items)}
    )


def _strip(value: Any, loc: Loc) -> Pair:
    """`value` without the keys and items tagged `!reset`, and without marker tags."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        kids: dict[YamlKey, Loc] = {}
        for key, item in value.items():
            kid = loc.kid(key)
            if kid.tag != RESET:
                out[key], kids[key] = _strip(item, kid)
        return out, Loc(loc.file, loc.line, None, kids)
    if isinstance(value, list):
        kept = [_strip(item, loc.kid(i)) for i, item in enumerate(value)]
        kept = [pair for i, pair in enumerate(kept) if loc.kid(i).tag != RESET]
        return _list(kept, loc)
    return value, Loc(loc.file, loc.line, None, loc.kids)


# --- special rules ----------------------------------------------------------------------------


def _replace(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
    del a, la, path
    return _strip(b, lb)


def _as_mapping(value: Any, loc: Loc, split: Callable[[str], tuple[str, Any]]) -> Pair:
    """A list-or-mapping field as a mapping (`["K=V", "K"]` -> `{K: V, K: None}`)."""
    if isinstance(value, dict):
        return value, loc
    if not isinstance(value, list):
        return value, loc
    out: dict[str, Any] = {}
    kids: dict[YamlKey, Loc] = {}
    for index, item in enumerate(value):
        key, text = split(str(item))
        out[key] = text
        kids[key] = loc.kid(index)
    return out, Loc(loc.file, loc.line, loc.tag, kids)


def _equals(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    return key, value if sep else None


def _host(item: str) -> tuple[str, Any]:
    """`host=ip` or `host:ip` (an IPv6 address may hold more colons)."""
    if "=" in item:
        return _equals(item)
    host, _, address = item.partition(":")
    return host, address


def _mapping_rule(split: Callable[[str], tuple[str, Any]]) -> Rule:
    def rule(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
        ma, mla = _as_mapping(a, la, split)
        mb, mlb = _as_mapping(b, lb, split)
        if isinstance(ma, dict) and isinstance(mb, dict):
            return _mappings(ma, mla, mb, mlb, path)
        return _strip(b, lb)

    return rule


def _depends_on(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
    def mapping(value: Any, loc: Loc) -> Pair:
        if not isinstance(value, list):
            return value, loc
        out = {str(name): {"condition": "service_started"} for name in value}
        return out, Loc(
            loc.file, loc.line, loc.tag, {str(n): loc.kid(i) for i, n in enumerate(value)}
        )

    ma, mla = mapping(a, la)
    mb, mlb = mapping(b, lb)
    if isinstance(ma, dict) and isinstance(mb, dict):
        return _mappings(ma, mla, mb, mlb, path)
    return _strip(b, lb)


def _networks(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
    def mapping(value: Any, loc: Loc) -> Pair:
        if not isinstance(value, list):
            return value, loc
        kids: dict[YamlKey, Loc] = {str(n): loc.kid(i) for i, n in enumerate(value)}
        return dict.fromkeys(map(str, value)), Loc(loc.file, loc.line, loc.tag, kids)

    ma, mla = mapping(a, la)
    mb, mlb = mapping(b, lb)
    if isinstance(ma, dict) and isinstance(mb, dict):
        return _mappings(ma, mla, mb, mlb, path)
    return _strip(b, lb)


def _build(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
    def mapping(value: Any, loc: Loc) -> Pair:
        if isinstance(value, str):
            return {"context": value}, Loc(loc.file, loc.line, loc.tag, {"context": loc})
        return value, loc

    ma, mla = mapping(a, la)
    mb, mlb = mapping(b, lb)
    if isinstance(ma, dict) and isinstance(mb, dict):
        return _mappings(ma, mla, mb, mlb, path)
    return _strip(b, lb)


def _logging(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
    if isinstance(a, dict) and isinstance(b, dict):
        drivers = a.get("driver"), b.get("driver")
        if None in drivers or drivers[0] == drivers[1]:
            return _mappings(a, la, b, lb, path)
    return _strip(b, lb)


def _ulimit(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
    if isinstance(a, dict) and isinstance(b, dict):
        return _mappings(a, la, b, lb, path)
    return _strip(b, lb)


def _listed(value: Any, loc: Loc) -> Pair:
    """A field that takes one value or a list of them, as a list."""
    if isinstance(value, list):
        return value, loc
    return [value], Loc(loc.file, loc.line, loc.tag, {0: loc})


def _unique_rule(key: Callable[[Any], object]) -> Rule:
    """Append `b`'s items; one with the key of an earlier item replaces it in place."""

    def rule(a: Any, la: Loc, b: Any, lb: Loc, path: YamlPath) -> Pair:
        del path
        (la_items, la2), (lb_items, lb2) = _listed(a, la), _listed(b, lb)
        merged: dict[object, Pair] = {}
        for index, item in enumerate(la_items):
            merged.setdefault(key(item), (item, la2.kid(index)))
        for index, item in enumerate(lb_items):
            kid = lb2.kid(index)
            if kid.tag != RESET:
                merged[key(item)] = _strip(item, kid)
        return _list(list(merged.values()), la2)

    return rule


def _by_value(item: Any) -> object:
    return repr(item)


def _volume_target(item: Any) -> object:
    if isinstance(item, dict):
        return item.get("target")
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _file_target(default_dir: str) -> Callable[[Any], object]:
    def key(item: Any) -> object:
        if isinstance(item, dict):
            target = str(item.get("target") or item.get("source"))
        else:
            target = str(item)
        return target if target.startswith("/") else f"{default_dir}{target}"

    return key


def _env_file_path(item: Any) -> object:
    return item.get("path") if isinstance(item, dict) else item


def _port_key(item: Any) -> object:
    """(host IP, published, target, protocol), whatever syntax the port was written in."""
    if isinstance(item, dict):
        return (
            str(item.get("host_ip") or ""),
            str(item.get("published") or ""),
            str(item.get("target")),
            str(item.get("protocol") or "tcp"),
        )
    text, _, protocol = str(item).partition("/")
    ip = ""
    if text.startswith("["):  # [IPv6]:published:target
        end = text.find("]")
        ip, text = text[1:end], text[end + 1 :].removeprefix(":")
    parts = text.split(":")
    if len(parts) == 3:
        ip, parts = parts[0], parts[1:]
    published = parts[0] if len(parts) == 2 else ""
    return ip, published, parts[-1], protocol or "tcp"


_SERVICE_MAPPINGS = ("environment", "labels", "annotations", "sysctls")
_SERVICE_SETS = (
    "cap_add",
    "cap_drop",
    "devices",
    "device_cgroup_rules",
    "dns",
    "dns_opt",
    "dns_search",
    "expose",
    "external_links",
    "group_add",
    "label_file",
    "links",
    "profiles",
    "security_opt",
    "tmpfs",
    "volumes_from",
)
_RULES: dict[YamlPath, Rule] = {
    ("services", "*", "command"): _replace,
    ("services", "*", "entrypoint"): _replace,
    ("services", "*", "healthcheck", "test"): _replace,
    **{("services", "*", key): _mapping_rule(_equals) for key in _SERVICE_MAPPINGS},
    ("services", "*", "extra_hosts"): _mapping_rule(_host),
    ("services", "*", "build", "args"): _mapping_rule(_equals),
    ("services", "*", "build", "labels"): _mapping_rule(_equals),
    ("services", "*", "build", "extra_hosts"): _mapping_rule(_host),
    ("services", "*", "deploy", "labels"): _mapping_rule(_equals),
    **{(kind, "*", "labels"): _mapping_rule(_equals) for kind in ("volumes", "networks")},
    **{(kind, "*", "labels"): _mapping_rule(_equals) for kind in ("secrets", "configs")},
    ("services", "*", "depends_on"): _depends_on,
    ("services", "*", "networks"): _networks,
    ("services", "*", "build"): _build,
    ("services", "*", "logging"): _logging,
    ("services", "*", "ulimits", "*"): _ulimit,
    ("services", "*", "env_file"): _unique_rule(_env_file_path),
    ("services", "*", "volumes"): _unique_rule(_volume_target),
    ("services", "*", "secrets"): _unique_rule(_file_target("/run/secrets/")),
    ("services", "*", "configs"): _unique_rule(_file_target("/")),
    ("services", "*", "ports"): _unique_rule(_port_key),
    **{("services", "*", key): _unique_rule(_by_value) for key in _SERVICE_SETS},
}
