"""The `logs:` section (conveyor.yaml, or the file CONVEYOR_LOGS_CONFIG names): what it
accepts, its defaults, and errors that name the file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.log_shipping import (
    DEFAULT_BUFFER,
    DEFAULT_LOKI_LABELS,
    ElasticsearchDestination,
    LogShipping,
    LokiDestination,
)
from conveyor.spec.context import Context
from conveyor.spec.conveyor_file import parse_conveyor
from conveyor.spec.log_shipping import index_pattern, load_logs_file, log_shipping
from conveyor.spec.yamlpos import load_yaml


def load(text: str) -> tuple[LogShipping, list[str]]:
    doc = load_yaml(text, "conveyor.yaml", version="1.2")
    ctx = Context(doc=doc, file="conveyor.yaml", base=Path("/repo"), environ={})
    spec = log_shipping(ctx, ("logs",), (doc.data or {}).get("logs"))
    return spec, [e.render() for e in ctx.errors]


def test_every_key_reaches_the_model() -> None:
    spec, errors = load(
        """\
logs:
  ship:
    - elasticsearch:
        url: https://es.example.com:9200/
        index: "logs-%Y.%m"
        api_key_env: ES_API_KEY
        timeout: 5s
        buffer: 64m
    - loki:
        name: grafana-cloud
        url: https://logs.example.net
        labels: [project, service, level]
        tenant: 42
        username: "123456"
        password_env: LOKI_TOKEN
    - elasticsearch: {url: 'http://127.0.0.1:9200', username: c, password_env: P}
"""
    )
    assert errors == []
    es, loki, es2 = spec.ship
    assert es == ElasticsearchDestination(
        name="elasticsearch",
        url="https://es.example.com:9200",
        index="logs-%Y.%m",
        api_key_env="ES_API_KEY",
        timeout=5.0,
        buffer=64 * 1024 * 1024,
    )
    assert loki == LokiDestination(
        name="grafana-cloud",
        url="https://logs.example.net",
        labels=("project", "service", "level"),
        tenant="42",
        username="123456",
        password_env="LOKI_TOKEN",
    )
    # A second destination of a kind gets a buffer of its own.
    assert isinstance(es2, ElasticsearchDestination) and es2.name == "elasticsearch-2"
    assert (es2.username, es2.password_env) == ("c", "P")


def test_defaults_and_an_absent_section() -> None:
    spec, errors = load("logs:\n  ship:\n    - loki: {url: 'http://127.0.0.1:3100'}\n")
    assert errors == []
    (loki,) = spec.ship
    assert isinstance(loki, LokiDestination)
    assert loki.labels == DEFAULT_LOKI_LABELS and loki.tenant is None
    assert loki.buffer == DEFAULT_BUFFER
    assert load("environments: {}\n") == (LogShipping(), [])
    assert load("logs: {}\n") == (LogShipping(), [])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "logs: [elasticsearch]\n",
            "conveyor.yaml:1: logs: must be a mapping (with 'ship'), got a list",
        ),
        (
            "logs:\n  ship:\n    - elasticsearch: {url: 'http://es', api_key: abc}\n",
            "conveyor.yaml:3: logs.ship[0].elasticsearch.api_key: secrets do not belong in "
            "git: put the value in an environment variable and name it with 'api_key_env'",
        ),
        (
            "logs:\n  ship:\n    - elasticsearch:\n        url: 'http://es'\n"
            "        username: me\n",
            "conveyor.yaml:3: logs.ship[0].elasticsearch.password_env: a login needs both "
            "'username' and 'password_env'",
        ),
        (
            "logs:\n  ship:\n    - elasticsearch:\n        url: 'http://es'\n"
            "        api_key_env: K\n        username: me\n        password_env: P\n",
            "conveyor.yaml:5: logs.ship[0].elasticsearch.api_key_env: give 'api_key_env' or "
            "'username', not both",
        ),
        (
            "logs:\n  ship:\n    - loki: {url: 'http://loki', labels: [service, container]}\n",
            "conveyor.yaml:3: logs.ship[0].loki.labels[1]: 'container' has too many values "
            "to be a Loki label (a stream per container); every line carries it in its JSON "
            "instead",
        ),
        (
            "logs:\n  ship:\n    - loki: {url: 'http://loki', labels: [servce]}\n",
            "conveyor.yaml:3: logs.ship[0].loki.labels[0]: unknown label 'servce' (known: "
            "project, environment, service, stream, level) (did you mean 'service'?)",
        ),
        (
            "logs:\n  ship:\n    - loki: {url: 'http://user:pw@loki'}\n",
            "conveyor.yaml:3: logs.ship[0].loki.url: credentials do not belong in the URL: "
            "use 'username' and 'password_env'",
        ),
        (
            "logs:\n  ship:\n    - loki: {url: 'http://a'}\n    - loki: {url: 'http://b', "
            "name: loki}\n",
            "conveyor.yaml:4: logs.ship[1].loki.name: two destinations are named 'loki': give "
            "one a different 'name' (each has its own buffer)",
        ),
        (
            "logs:\n  ship:\n    - loki: {url: 'http://a', buffer: 10k}\n",
            "conveyor.yaml:3: logs.ship[0].loki.buffer: the buffer needs at least 1m, got '10k'",
        ),
        (
            "logs:\n  ship:\n    - {loki: {url: 'http://a'}, elasticsearch: {url: 'http://b'}}\n",
            "conveyor.yaml:3: logs.ship[0]: must be one of {elasticsearch: {...}} or "
            "{loki: {...}}, got a mapping",
        ),
        (
            "logs:\n  ship:\n    - elasticsearch: {index: 'c-%Y'}\n",
            "conveyor.yaml:3: logs.ship[0].elasticsearch.url: missing 'url'",
        ),
    ],
)
def test_errors_name_the_line_and_the_field(text: str, error: str) -> None:
    spec, errors = load(text)
    assert errors == [error]
    assert all(d.name != "loki" or d.url == "http://a" for d in spec.ship)  # the bad one is out
    assert len(spec.ship) <= 1


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("conveyor-%Y.%m.%d", None),
        ("logs-conveyor-default", None),  # a data stream: `create` is what it takes
        ("conveyor-%A", "'%A' is not a date directive here"),
        ("conveyor/%Y", "'/' is not allowed"),
        ("_conveyor-%Y", "it starts with '-', '_' or '+'"),
        ("conveyor-%", "a lone '%' ends"),
    ],
)
def test_index_patterns(pattern: str, problem: str | None) -> None:
    if problem is None:
        assert index_pattern(pattern) == pattern
    else:
        with pytest.raises(ValueError, match=re.escape(problem)):
            index_pattern(pattern)


def test_conveyor_yaml_carries_the_section() -> None:
    config = parse_conveyor(
        "environments:\n  prod: {branch: main}\nlogs:\n  ship:\n"
        "    - loki: {url: 'http://127.0.0.1:3100'}\n"
    )
    assert [d.name for d in config.logs.ship] == ["loki"]
    with pytest.raises(SpecError, match=r"conveyor.yaml:3: logs: must be a mapping"):
        parse_conveyor("environments:\n  prod: {branch: main}\nlogs: 3\n")


def test_a_logs_file_for_conveyor_up(tmp_path: Path) -> None:
    path = tmp_path / "logs.yaml"
    path.write_text(
        "x-common: &es {url: 'http://127.0.0.1:9200'}\nlogs:\n  ship:\n    - elasticsearch: *es\n"
    )
    assert [d.url for d in load_logs_file(path).ship] == ["http://127.0.0.1:9200"]

    path.write_text("environments: {}\nlogs:\n  ship:\n    - loki: {url: nope}\n")
    with pytest.raises(SpecErrors) as caught:
        load_logs_file(path, "logs.yaml")
    assert str(caught.value).splitlines() == [
        "logs.yaml:1: environments: unknown key 'environments': this file holds only 'logs:'",
        "logs.yaml:4: logs.ship[0].loki.url: must be an http:// or https:// URL, got 'nope'",
    ]
    path.write_text("ship: []\n")
    with pytest.raises(SpecError, match="needs a top-level 'logs:' section"):
        load_logs_file(path)
