"""Every key of the Compose Specification has a decision, and the docs table says it."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from conveyor.spec.compose import load_compose
from conveyor.spec.support import NESTED, SERVICE, TOP_LEVEL, markdown_tables

DOCS = Path(__file__).parents[3] / "docs" / "compose-support.md"
SCHEMA: dict[str, Any] = json.loads(
    files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
)


def _service_properties() -> dict[str, Any]:
    defs = SCHEMA["$defs"]
    properties: dict[str, Any] = {}

    def collect(schema: dict[str, Any]) -> None:
        if "$ref" in schema:
            collect(defs[schema["$ref"].rsplit("/", 1)[-1]])
        for part in schema.get("allOf", ()):
            collect(part)
        properties.update(schema.get("properties", {}))

    collect(defs["service"])
    return properties


def _service_keys() -> set[str]:
    return set(_service_properties())


def test_every_top_level_key_of_the_schema_has_a_decision() -> None:
    assert set(TOP_LEVEL) == set(SCHEMA["properties"])


def test_every_service_key_of_the_schema_has_a_decision() -> None:
    assert set(SERVICE) == _service_keys()


def test_nested_keys_exist_in_the_schema() -> None:
    defs = SCHEMA["$defs"]

    def resolved(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            return resolved(defs[node["$ref"].rsplit("/", 1)[-1]])
        mapping = [alt for alt in node.get("oneOf", ()) if alt.get("type") == "object"]
        return mapping[0] if mapping else node

    for path in NESTED:
        node = resolved(_service_properties()[str(path[0])])
        for key in path[1:]:
            node = resolved(node["properties"][key])
        assert isinstance(node, dict), path


def test_the_docs_table_is_the_codes_table() -> None:
    assert markdown_tables() in DOCS.read_text(encoding="utf-8")


def test_warned_keys_are_listed_with_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "version: '3.8'\n"
        "services:\n"
        "  web:\n"
        "    image: nginx\n"
        "    tty: true\n"
        "    develop:\n"
        "      watch: [{action: sync, path: ., target: /app}]\n"
        "    healthcheck:\n"
        "      test: [CMD, 'true']\n"
        "      start_interval: 1s\n"
        "    deploy:\n"
        "      placement: {constraints: [node.role==manager]}\n"
        "    ports:\n"
        "      - {target: 80, published: '8080', mode: host, name: web}\n"
        "    expose: ['5353/udp']\n"
    )
    loaded = load_compose([tmp_path / "compose.yaml"], environ={})
    # Placement is done on a fleet: its warning is given only when the project runs on one
    # host (app.project.Project.warnings knows the inventory).
    assert [w.render().removeprefix(str(tmp_path) + "/") for w in loaded.one_host] == [
        "compose.yaml:12: services.web.deploy.placement: ignored: Conveyor places every "
        "replica on this host (on a fleet it is done: docs/fleet.md)"
    ]
    warnings = loaded.warnings
    assert [w.render().removeprefix(str(tmp_path) + "/") for w in warnings] == [
        "compose.yaml:1: version: ignored: obsolete in the Compose Specification",
        "compose.yaml:5: services.web.tty: ignored: replicas have no terminal",
        "compose.yaml:6: services.web.develop: ignored: file watching is for "
        "`docker compose watch`",
        "compose.yaml:10: services.web.healthcheck.start_interval: ignored: needs Docker "
        "Engine API 1.44; Conveyor speaks 1.41",
        "compose.yaml:14: services.web.ports[0].mode: ignored: the port is published by "
        "HAProxy, which balances over every replica (as `ingress` does)",
        "compose.yaml:14: services.web.ports[0].name: ignored: a port's name is for tools "
        "that read the file",
        "compose.yaml:15: services.web.expose[0]: UDP port '5353/udp' is not served at the "
        "service's name (HAProxy serves TCP); other services reach it only at a replica's "
        "own address",
    ]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("gpus: all", "services.web.gpus: not supported: Conveyor does not pass GPUs to replicas"),
        (
            "provider: {type: model}",
            "services.web.provider: not supported: a provider service runs a plugin, not a "
            "container",
        ),
    ],
)
def test_refused_keys_stop_the_load(tmp_path: Path, service: str, expected: str) -> None:
    (tmp_path / "compose.yaml").write_text(f"services:\n  web:\n    image: nginx\n    {service}\n")
    with pytest.raises(Exception) as caught:
        load_compose([tmp_path / "compose.yaml"], environ={})
    assert str(caught.value).endswith(f"compose.yaml:4: {expected}")
