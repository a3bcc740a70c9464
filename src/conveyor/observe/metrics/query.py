"""Prometheus's HTTP API, as `conveyor metrics` asks it: instant queries and targets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from conveyor.errors import MetricsError


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float | None  # None for NaN and infinities (0/0, no data in a quantile)


@dataclass(frozen=True)
class Target:
    job: str
    labels: Mapping[str, str]
    health: str  # up, down, unknown
    url: str


class PrometheusClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> list[Sample]:
        """An instant query; a vector result as samples."""
        data = self._get("/api/v1/query", {"query": promql})
        if data.get("resultType") != "vector":
            raise MetricsError(f"Prometheus answered a {data.get('resultType')} to {promql}")
        return [Sample(dict(item["metric"]), _number(item["value"][1])) for item in data["result"]]

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[tuple[Mapping[str, str], list[tuple[float, float | None]]]]:
        """A range query: each series' labels and its (UNIX seconds, value) points."""
        params = {
            "query": promql,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
        }
        data = self._get("/api/v1/query_range", params)
        if data.get("resultType") != "matrix":
            raise MetricsError(f"Prometheus answered a {data.get('resultType')} to {promql}")
        return [
            (dict(item["metric"]), [(float(t), _number(v)) for t, v in item["values"]])
            for item in data["result"]
        ]

    def targets(self) -> list[Target]:
        """The active targets and their health."""
        data = self._get("/api/v1/targets", {"state": "active"})
        return [
            Target(
                job=str(t["labels"].get("job", "")),
                labels=dict(t["labels"]),
                health=str(t.get("health", "unknown")),
                url=str(t.get("scrapeUrl", "")),
            )
            for t in data.get("activeTargets", [])
        ]

    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        url = self.url + path
        try:
            answer = requests.get(url, params=dict(params), timeout=self.timeout)
        except requests.RequestException as e:
            raise MetricsError(
                f"Prometheus does not answer at {self.url} ({e.__class__.__name__}); is the "
                "project up with metrics on? (`conveyor status` lists it)"
            ) from e
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200 or body.get("status") != "success":
            said = body.get("error") or answer.text.strip()[:300]
            raise MetricsError(f"Prometheus refused {path} (HTTP {answer.status_code}): {said}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise MetricsError(f"Prometheus answered {path} without data")
        return data


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
