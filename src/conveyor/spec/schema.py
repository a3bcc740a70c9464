"""Validation against the Compose Specification's JSON schema, with errors people can act on.

The schema is the one check-jsonschema vendors (the official compose-spec.json), so Conveyor
accepts exactly what Compose accepts. jsonschema's own messages are written for schema
authors ("... is not valid under any of the given schemas"); here each error becomes one
`file:line: field: message` line pointing at the key to fix (`spec.schema_errors`, in its
plain wording). `x-conveyor` is validated by a small schema of our own through the same
translation, so its errors read the same way.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

# jsonschema ships no type information (no py.typed, no stubs installed); everything it
# returns is handled through the small typed helpers below.
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from conveyor.errors import SpecError
from conveyor.spec.schema_errors import SchemaTranslator, spec_errors
from conveyor.spec.yamlpos import Document

# The one vendored copy we trust: installed with check-jsonschema, pinned by its version.
_COMPOSE_SCHEMA = ("check_jsonschema.builtin_schemas.vendor", "compose-spec.json")

_DURATION = {"type": ["string", "number"]}
X_CONVEYOR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        # integer or string: interpolation turns `${PORT}` into a string; values.to_int checks.
        "port": {"type": ["integer", "string"]},
        "public_port": {"type": ["integer", "string"]},
        "probe": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "interval": _DURATION,
                        "timeout": _DURATION,
                        "start_timeout": _DURATION,
                    },
                    "additionalProperties": False,
                },
            ]
        },
        "balance": {"type": "string", "enum": ["roundrobin", "leastconn"]},
        # a Flagger Canary on Kubernetes (spec.canary checks the values)
        "canary": {
            "oneOf": [
                {"type": ["boolean", "string"]},
                {
                    "type": "object",
                    "properties": {
                        "steps": {"type": "array"},
                        "step_weight": {"type": ["integer", "string"]},
                        "max_weight": {"type": ["integer", "string"]},
                        "interval": _DURATION,
                        "threshold": {"type": ["integer", "string"]},
                        "error_ratio": {"type": ["string", "number"]},
                        "latency": _DURATION,
                    },
                    "additionalProperties": False,
                },
            ]
        },
        # service level objectives (spec.slo checks the values): `99.9%`, `300ms`
        "slo": {
            "type": "object",
            "properties": {
                "availability": {"type": ["string", "number"]},
                "latency": {
                    "type": "object",
                    "properties": {
                        "threshold": _DURATION,
                        "objective": {"type": ["string", "number"]},
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        # the thresholds of the service's alerts (spec.alert_thresholds checks the values)
        "alerts": {
            "type": "object",
            "properties": {
                "error_ratio": {"type": ["string", "number"]},
                "min_rate": {"type": ["string", "number"]},
                "latency": _DURATION,
                "down_for": _DURATION,
                "error_for": _DURATION,
                "latency_for": _DURATION,
                "replicas_for": _DURATION,
            },
            "additionalProperties": False,
        },
        # how the service is backed up (spec.backups checks the values): false, or a mapping
        "backup": {
            "oneOf": [
                {"type": "boolean"},
                {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string"},
                        "volumes": {"type": "array", "items": {"type": "string"}},
                        "consistency": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            ]
        },
        # replicas between min and max on a CPU or RPS target (spec.autoscale checks values)
        "autoscale": {
            "type": "object",
            "properties": {
                "min": {"type": ["integer", "string"]},
                "max": {"type": ["integer", "string"]},
                "cpu": {"type": ["integer", "string"]},
                "rps": {"type": ["number", "string"]},
            },
            "additionalProperties": False,
        },
        # where each replica serves Prometheus metrics: a path on its main port, or both
        "metrics": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "port": {"type": ["integer", "string"]},
                    },
                    "additionalProperties": False,
                },
            ]
        },
    },
    "additionalProperties": False,
}


# The top-level `x-conveyor`: what concerns the whole project.
X_CONVEYOR_PROJECT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "logs": {
            "oneOf": [
                {"type": "boolean"},
                {
                    "type": "object",
                    "properties": {
                        "collect": {"type": ["boolean", "string"]},
                        "retention": _DURATION,
                        "max_size": {"type": ["string", "integer"]},
                    },
                    "additionalProperties": False,
                },
            ]
        },
    },
    "additionalProperties": False,
}


@functools.cache
def _compose() -> SchemaTranslator:
    package, name = _COMPOSE_SCHEMA
    schema = json.loads(files(package).joinpath(name).read_text(encoding="utf-8"))
    return SchemaTranslator(validator_for(schema)(schema))


@functools.cache
def _x_conveyor() -> SchemaTranslator:
    return SchemaTranslator(validator_for(X_CONVEYOR_SCHEMA)(X_CONVEYOR_SCHEMA))


@functools.cache
def _x_conveyor_project() -> SchemaTranslator:
    schema = X_CONVEYOR_PROJECT_SCHEMA
    return SchemaTranslator(validator_for(schema)(schema))


def validate(doc: Document, file: str) -> list[SpecError]:
    """Every schema problem in `doc`, one SpecError each, sorted by line."""
    if doc.data is None:
        return [SpecError(file, None, "", "the file is empty")]
    issues = _compose().issues(doc.data)
    if isinstance(doc.data, dict) and "x-conveyor" in doc.data:
        issues.extend(_x_conveyor_project().issues(doc.data["x-conveyor"], ("x-conveyor",)))
    services = doc.data.get("services") if isinstance(doc.data, dict) else None
    if isinstance(services, dict):
        for name, service in services.items():
            if isinstance(service, dict) and "x-conveyor" in service:
                base = ("services", name, "x-conveyor")
                issues.extend(_x_conveyor().issues(service["x-conveyor"], base))
    return spec_errors(issues, lambda at: (file, doc.line(at)))
