"""Compose profiles: services that run only when one of their profiles is active.

A service without `profiles` always runs; one with profiles runs when `--profile` or
`COMPOSE_PROFILES` (comma-separated) names one of them, or `*` is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ALL = "*"


def active_profiles(given: Iterable[str], environ: Mapping[str, str]) -> frozenset[str]:
    """`--profile` values when there are any, else COMPOSE_PROFILES, as Compose reads them."""
    chosen = [p.strip() for p in given if p.strip()]
    if not chosen:
        chosen = [p.strip() for p in environ.get("COMPOSE_PROFILES", "").split(",") if p.strip()]
    return frozenset(chosen)


def service_profiles(raw: Any) -> tuple[str, ...]:
    profiles = raw.get("profiles") if isinstance(raw, dict) else None
    return tuple(str(p) for p in profiles) if isinstance(profiles, list) else ()


def disabled_services(
    services: Mapping[str, Any], active: frozenset[str]
) -> dict[str, tuple[str, ...]]:
    """The services no active profile enables, with their profiles."""
    out: dict[str, tuple[str, ...]] = {}
    for name, raw in services.items():
        profiles = service_profiles(raw)
        if profiles and ALL not in active and not active.intersection(profiles):
            out[name] = profiles
    return out
