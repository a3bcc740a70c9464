"""`ports:` and `expose:` entries in every syntax Compose accepts, ranges expanded."""

from __future__ import annotations

import re

import pytest

from conveyor.model.stack import PortSpec
from conveyor.spec.ports import parse_port

P = PortSpec


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (3000, [P(target=3000)]),
        ("3000", [P(target=3000)]),
        ("3000-3001", [P(target=3000), P(target=3001)]),
        ("8000:8000", [P(target=8000, published=8000)]),
        ("49100:22", [P(target=22, published=49100)]),
        ("127.0.0.1:8001:8001", [P(target=8001, published=8001, host_ip="127.0.0.1")]),
        (
            "127.0.0.1:5000-5001:6000-6001",
            [
                P(target=6000, published=5000, host_ip="127.0.0.1"),
                P(target=6001, published=5001, host_ip="127.0.0.1"),
            ],
        ),
        ("127.0.0.1::5000", [P(target=5000, host_ip="127.0.0.1")]),
        ("6060:6060/udp", [P(target=6060, published=6060, protocol="udp")]),
        ("[::1]:6001:6000", [P(target=6000, published=6001, host_ip="::1")]),
        (
            "12400-12401:8080-8081/tcp",
            [P(target=8080, published=12400), P(target=8081, published=12401)],
        ),
        (
            {"target": 80, "published": "8080", "host_ip": "127.0.0.1", "protocol": "tcp"},
            [P(target=80, published=8080, host_ip="127.0.0.1")],
        ),
        (
            {"target": 80, "published": 8080, "mode": "host", "name": "web"},
            [P(target=80, published=8080)],
        ),
        (
            {"target": "80-81", "published": "8080-8081", "app_protocol": "http"},
            [
                P(target=80, published=8080, app_protocol="http"),
                P(target=81, published=8081, app_protocol="http"),
            ],
        ),
        ({"target": 53, "protocol": "UDP"}, [P(target=53, protocol="udp")]),
    ],
)
def test_port_syntaxes(item: object, expected: list[PortSpec]) -> None:
    assert parse_port(item) == expected


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("8000-8002:80", "publishes 3 port(s) for 1 target(s)"),
        ("80:8000-8001", "publishes 1 port(s) for 2 target(s)"),
        ("9000:9000/sctp", "protocol must be 'tcp' or 'udp'"),
        ("1.2.3.4:1:2:3", "expected [[IP:]PUBLISHED:]TARGET"),
        ("[::1:80", "unclosed '['"),
        ("70000", "must be between 1 and 65535, got 70000"),
        ("0:80", "must be between 1 and 65535, got 0"),
        ("web:80", "invalid port number 'web'"),
        ("8010-8000", "ends before it starts"),
        ({"published": 80}, "needs 'target'"),
    ],
)
def test_bad_ports(item: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_port(item)
