"""Compose's merge rules on data (`spec.merge`), each value keeping the file and line it
came from."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.spec.merge import MARKERS, Located, document, located, merge, without_resets
from conveyor.spec.yamlpos import load_yaml


def doc(text: str, file: str) -> Located:
    return located(load_yaml(text, file, version="1.2", markers=MARKERS), file)


def merged(base: str, over: str) -> Any:
    return merge(doc(base, "a.yaml"), doc(over, "b.yaml")).data["services"]["s"]


@pytest.mark.parametrize(
    ("key", "base", "over", "result"),
    [
        ("command", "[a, b]", "[c]", ["c"]),
        ("environment", "[A=1, B=2]", "{B: '3', C: '4'}", {"A": "1", "B": "3", "C": "4"}),
        ("labels", "{a: x}", "[b=y]", {"a": "x", "b": "y"}),
        (
            "extra_hosts",
            "['db:10.0.0.1']",
            "{cache: 10.0.0.2, db: 10.0.0.9}",
            {"db": "10.0.0.9", "cache": "10.0.0.2"},
        ),
        ("dns", "[10.0.0.2]", "[10.0.0.2, 10.0.0.3]", ["10.0.0.2", "10.0.0.3"]),
        ("dns", "10.0.0.2", "[10.0.0.3]", ["10.0.0.2", "10.0.0.3"]),
        ("volumes", "['a:/data', './x:/x:ro']", "['b:/data']", ["b:/data", "./x:/x:ro"]),
        (
            "volumes",
            "['a:/data']",
            "[{type: volume, source: c, target: /data}]",
            [{"type": "volume", "source": "c", "target": "/data"}],
        ),
        (
            "secrets",
            "[token, {source: key, target: /etc/key}]",
            "[{source: token2, target: token}]",
            [{"source": "token2", "target": "token"}, {"source": "key", "target": "/etc/key"}],
        ),
        (
            "configs",
            "[site]",
            "[{source: site2, target: /site}]",
            [{"source": "site2", "target": "/site"}],
        ),
        (
            "ports",
            "['8080:80', '127.0.0.1:9090:90']",
            "['8080:80/tcp', '9090:90']",
            ["8080:80/tcp", "127.0.0.1:9090:90", "9090:90"],
        ),
        (
            "ports",
            "['8080:80']",
            "[{target: 80, published: '8080'}]",
            [{"target": 80, "published": "8080"}],
        ),
        (
            "depends_on",
            "[db]",
            "{cache: {condition: service_healthy}}",
            {"db": {"condition": "service_started"}, "cache": {"condition": "service_healthy"}},
        ),
        (
            "build",
            ".",
            "{dockerfile: Dockerfile.dev}",
            {"context": ".", "dockerfile": "Dockerfile.dev"},
        ),
        ("env_file", "a.env", "[a.env, b.env]", ["a.env", "b.env"]),
        (
            "logging",
            "{driver: json-file, options: {max-size: 1m}}",
            "{options: {max-file: '3'}}",
            {"driver": "json-file", "options": {"max-size": "1m", "max-file": "3"}},
        ),
        (
            "logging",
            "{driver: json-file, options: {max-size: 1m}}",
            "{driver: syslog}",
            {"driver": "syslog"},
        ),
        (
            "ulimits",
            "{nofile: {soft: 1, hard: 2}, nproc: 5}",
            "{nofile: {hard: 3}, nproc: 6}",
            {"nofile": {"soft": 1, "hard": 3}, "nproc": 6},
        ),
        ("x-custom", "{a: 1}", "{b: 2}", {"b": 2}),
        (
            "networks",
            "[front]",
            "{back: {aliases: [api]}}",
            {"front": None, "back": {"aliases": ["api"]}},
        ),
        ("cap_add", "[NET_ADMIN]", "[NET_ADMIN, SYS_TIME]", ["NET_ADMIN", "SYS_TIME"]),
        ("entrypoint", "[tini, --]", "[dumb-init]", ["dumb-init"]),
    ],
)
def test_merge_rule(key: str, base: str, over: str, result: Any) -> None:
    assert (
        merged(f"services:\n  s:\n    {key}: {base}\n", f"services:\n  s:\n    {key}: {over}\n")[
            key
        ]
        == result
    )


def test_healthcheck_test_is_replaced_other_keys_merge() -> None:
    got = merged(
        "services:\n  s:\n    healthcheck: {test: [CMD, a], interval: 5s}\n",
        "services:\n  s:\n    healthcheck: {test: [CMD, b]}\n",
    )
    assert got["healthcheck"] == {"test": ["CMD", "b"], "interval": "5s"}


def test_reset_and_override() -> None:
    got = merged(
        "services:\n  s:\n    ports: ['80:80']\n    environment: {A: '1', B: '2'}\n",
        "services:\n  s:\n    ports: !reset []\n    environment: !override {C: '3'}\n",
    )
    assert got == {"environment": {"C": "3"}}


def test_a_files_own_resets_reset_nothing() -> None:
    alone = without_resets(doc("services:\n  s:\n    image: x\n    ports: !reset ['80:80']\n", "a"))
    assert alone.data == {"services": {"s": {"image": "x"}}}


def test_every_value_keeps_its_file_and_line() -> None:
    base = doc("services:\n  s:\n    image: x\n    environment: [A=1]\n", "a.yaml")
    over = doc("services:\n  s:\n\n    environment:\n      B: '2'\n    user: app\n", "b.yaml")
    out = document(merge(base, over), "a.yaml")
    env = ("services", "s", "environment")
    assert out.where(("services", "s", "image")) == (None, 3)
    assert out.where((*env, "A")) == (None, 4)
    assert out.where((*env, "B")) == ("b.yaml", 5)
    assert out.where(("services", "s", "user")) == ("b.yaml", 6)
