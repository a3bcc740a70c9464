"""conveyor.yaml's `kubernetes:` section: values, defaults, and errors naming file:line."""

from __future__ import annotations

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.kube import GatewayRef, KubeOptions
from conveyor.spec.conveyor_file import parse_conveyor

ENVS = "environments:\n  prod: {branch: main}\n"
KEY = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"


def test_absent_means_the_defaults() -> None:
    assert parse_conveyor(ENVS).kubernetes == KubeOptions()


def test_every_key_is_read() -> None:
    config = parse_conveyor(
        ENVS + "kubernetes:\n  traffic: ingress\n  gateway: infra/public\n"
        f"  ingress_class: nginx\n  age_recipients: [{KEY}]\n  storage: 10Gi\n"
    )
    assert config.kubernetes == KubeOptions(
        traffic="ingress",
        gateway=GatewayRef(name="public", namespace="infra"),
        ingress_class="nginx",
        age_recipients=(KEY,),
        storage="10Gi",
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "  traffic: nodeport\n",
            "conveyor.yaml:4: kubernetes.traffic: must be gateway or ingress",
        ),
        ("  gateway: Infra/Public\n", "conveyor.yaml:4: kubernetes.gateway: must be NAME or"),
        (
            "  age_recipients: [nope]\n",
            "conveyor.yaml:4: kubernetes.age_recipients[0]: must be an age",
        ),
        ("  storage: lots\n", "conveyor.yaml:4: kubernetes.storage: must be a size"),
        ("  trafic: ingress\n", "conveyor.yaml:4: kubernetes.trafic: unknown key"),
    ],
)
def test_mistakes_name_file_line_and_field(section: str, message: str) -> None:
    with pytest.raises((SpecError, SpecErrors)) as caught:
        parse_conveyor(ENVS + "kubernetes:\n" + section)
    rendered = caught.value.render() if isinstance(caught.value, SpecError) else str(caught.value)
    assert message in rendered
