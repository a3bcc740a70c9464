"""The canary's checks compute what they claim, under Prometheus's own engine: the
MetricTemplates' queries (with Flagger's variables filled in as Flagger fills them) run in
`promtool test rules` over series shaped as kube_observe's monitors label them, with a primary
whose pods must not count."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conveyor.host.validate import check
from conveyor.render import flagger, kube_observe
from conveyor.render import prometheus_rules as rules
from conveyor.render.kube_meta import KubeEnvironment
from conveyor.spec import load_stack

PROJECT = Path(__file__).parent / "flux_project"
VARIABLES = {"{{ namespace }}": "store-staging", "{{ target }}": "web", "{{ interval }}": "1m"}
LABELS = 'job="replicas",project="store-staging",environment="staging",service="web"'
CANARY = "web-5f7c9d-x2k4q"
PRIMARY = "web-primary-6b8d4f-p9z7w"


def _filled(query: str) -> str:
    for variable, value in VARIABLES.items():
        query = query.replace(variable, value)
    return query


def _series(pod: str, metric: str, extra: str, values: str) -> dict[str, str]:
    return {"series": f'{metric}{{{LABELS},pod="{pod}"{extra}}}', "values": values}


def test_the_canary_checks_read_the_canary_pods_only(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: scripts/install-host.sh installs Debian's prometheus")
    env = KubeEnvironment("store", "staging", load_stack(PROJECT / "compose.yaml", environ={}))
    templates = {
        o["metadata"]["name"]: o["spec"]["query"]
        for o in flagger.canaries(env)
        if o["kind"] == "MetricTemplate"
    }
    count = "http_request_duration_seconds_count"
    bucket = "http_request_duration_seconds_bucket"
    series = [
        # the canary: 3 requests/s answered 200, 1/s answered 500 (a quarter), every one
        # within 0.5 s, none within 0.1 s
        _series(CANARY, count, ',code="200"', "0+180x10"),
        _series(CANARY, count, ',code="500"', "0+60x10"),
        _series(CANARY, bucket, ',le="0.1"', "0x10"),
        _series(CANARY, bucket, ',le="0.5"', "0+240x10"),
        _series(CANARY, bucket, ',le="+Inf"', "0+240x10"),
        # the primary: only errors, every one slow; counted, both checks would differ
        _series(PRIMARY, count, ',code="500"', "0+600x10"),
        _series(PRIMARY, bucket, ',le="0.1"', "0x10"),
        _series(PRIMARY, bucket, ',le="0.5"', "0x10"),
        _series(PRIMARY, bucket, ',le="+Inf"', "0+600x10"),
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": _filled(templates["web-error-ratio"]),
                        "eval_time": "5m",
                        "exp_samples": [{"labels": "{}", "value": 0.25}],
                    },
                    {
                        # the p99 inside the (0.1, 0.5] bucket, linearly: 0.1 + 0.4 * 0.99
                        "expr": _filled(templates["web-latency"]),
                        "eval_time": "5m",
                        "exp_samples": [{"labels": "{}", "value": 0.496}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "canary.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=10_000))
    verdict = check(rules.TEST_RUNNER, path, cwd=tmp_path, program=promtool)
    assert verdict.ok, verdict.output


def test_the_monitors_give_the_labels_the_rules_and_checks_select_on() -> None:
    env = KubeEnvironment("store", "staging", load_stack(PROJECT / "compose.yaml", environ={}))
    for monitor in kube_observe.monitors(env):
        spec = monitor["spec"]
        endpoint = (spec.get("endpoints") or spec["podMetricsEndpoints"])[0]
        given = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
        assert set(rules.SERVICE) | {"job"} <= set(given)
        assert f'job="{given["job"]}"' == rules.HISTOGRAMS[0][1]
        assert given["project"] == env.namespace == monitor["metadata"]["namespace"]
        assert given["service"] == monitor["metadata"]["name"]
