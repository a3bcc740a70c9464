"""The deployed stack's template against the rendered one, resource by resource (`conveyor aws
diff`). Pure: both templates come in as parsed JSON."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from conveyor.model.aws import ResourceDiff

# Sections besides Resources that change what a stack is; compared as one pseudo-resource each.
_SECTIONS = ("Parameters", "Outputs", "Conditions", "Mappings")


def diff_templates(deployed: Mapping[str, Any], rendered: Mapping[str, Any]) -> list[ResourceDiff]:
    """Every resource added, removed or changed (by logical id, sorted), then the sections
    that differ (`Outputs`, `Parameters`...) under their own name."""
    old: Mapping[str, Any] = deployed.get("Resources") or {}
    new: Mapping[str, Any] = rendered.get("Resources") or {}
    out: list[ResourceDiff] = []
    for logical in sorted(set(old) | set(new)):
        before, after = old.get(logical), new.get(logical)
        if before == after:
            continue
        kind = str((after or before or {}).get("Type", ""))
        if before is None:
            out.append(ResourceDiff(logical_id=logical, resource_type=kind, action="added"))
        elif after is None:
            out.append(ResourceDiff(logical_id=logical, resource_type=kind, action="removed"))
        else:
            out.append(
                ResourceDiff(
                    logical_id=logical,
                    resource_type=kind,
                    action="changed",
                    lines=_lines(logical, before, after),
                )
            )
    for section in _SECTIONS:
        before, after = deployed.get(section), rendered.get(section)
        if before != after:
            out.append(
                ResourceDiff(
                    logical_id=section,
                    resource_type="(template section)",
                    action="changed" if before and after else ("added" if after else "removed"),
                    lines=_lines(section, before or {}, after or {}),
                )
            )
    return out


def _lines(name: str, before: Any, after: Any) -> tuple[str, ...]:
    a = json.dumps(before, indent=2, sort_keys=True).splitlines()
    b = json.dumps(after, indent=2, sort_keys=True).splitlines()
    return tuple(
        difflib.unified_diff(a, b, f"deployed/{name}", f"rendered/{name}", n=2, lineterm="")
    )
