"""Fluent Bit's Elasticsearch output from conveyor.yaml's `logs.ship` and its configuration;
image references as Flux's image automation names them."""

from __future__ import annotations

import pytest

from conveyor.model.log_shipping import ElasticsearchDestination, LogShipping, LokiDestination
from conveyor.render.flux import image_repository
from conveyor.render.kube_meta import image_setter
from conveyor.render.kube_observe import EsOutput, es_output, fluent_bit_config


def _ship(url: str, index: str = "conveyor-%Y.%m.%d", user: str | None = None) -> LogShipping:
    loki = LokiDestination(name="loki", url="http://loki:3100")
    es = ElasticsearchDestination(name="es", url=url, index=index, username=user)
    return LogShipping(ship=(loki, es))


@pytest.mark.parametrize(
    ("logs", "url", "expected"),
    [
        (
            LogShipping(),
            None,
            EsOutput("elasticsearch.logging.svc", 9200, False, "conveyor", True),
        ),
        (
            _ship("https://es.example.com/search/", "app-%Y.%m.%d", "shipper"),
            None,
            EsOutput("es.example.com", 443, True, "app", True, "shipper", "/search"),
        ),
        (
            _ship("http://es:9201", "logs-%Y.%m"),  # not the daily form: a fixed name
            None,
            EsOutput("es", 9201, False, "logs", False),
        ),
        (
            _ship("http://es:9201", "fixed"),
            "https://other:9300",  # --elasticsearch over the file's URL
            EsOutput("other", 9300, True, "fixed", False),
        ),
    ],
    ids=["default", "https-user-path", "monthly", "url-over-file"],
)
def test_es_output(logs: LogShipping, url: str | None, expected: EsOutput) -> None:
    assert es_output(logs, url) == expected


def test_the_config_names_what_the_output_needs() -> None:
    text = fluent_bit_config(EsOutput("es.example.com", 443, True, "app", True, "u", "/search"))
    lines = [line.split() for line in text.splitlines() if line.startswith("    ")]
    pairs = {words[0]: " ".join(words[1:]) for words in lines}
    assert pairs["Host"] == "es.example.com" and pairs["Port"] == "443"
    assert pairs["tls"] == "On" and pairs["Path"] == "/search"
    assert pairs["Logstash_Prefix"] == "app" and pairs["HTTP_Passwd"] == "${ES_PASSWORD}"
    fixed = fluent_bit_config(EsOutput("es", 9200, False, "fixed", False))
    assert "Index" in fixed and "Logstash_Format" not in fixed and "HTTP_User" not in fixed


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("postgres", "postgres"),
        ("postgres:16", "postgres"),
        ("registry:5000/shop/web", "registry:5000/shop/web"),
        ("registry:5000/shop/web:1.2.0", "registry:5000/shop/web"),
        ("ghcr.io/a/b@sha256:" + "0" * 64, "ghcr.io/a/b"),
        ("ghcr.io/a/b:1@sha256:" + "0" * 64, "ghcr.io/a/b"),
    ],
)
def test_image_repository_drops_tag_and_digest_only(image: str, repository: str) -> None:
    assert image_repository(image) == repository


def test_image_setter_names_the_policy_in_flux_system() -> None:
    assert image_setter("web") == '{"$imagepolicy": "flux-system:web:tag"}'
