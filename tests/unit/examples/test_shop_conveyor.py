"""The shop's conveyor.yaml loads, and its overrides fit the shop's compose file."""

from __future__ import annotations

from pathlib import Path

from conveyor.app.project import Project
from conveyor.spec.conveyor_file import FILE_NAME, parse_conveyor
from conveyor.spec.overrides import apply_overrides

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"


def test_staging_moves_the_gateway_off_productions_port() -> None:
    config = parse_conveyor((SHOP / FILE_NAME).read_text(), FILE_NAME)
    assert config.promotion_order() == ["staging", "production"]
    stack = Project.open(Path("compose.yaml"), None, {}, cwd=SHOP, profiles=()).stack()
    staging = apply_overrides(stack, config.environments["staging"])
    production = apply_overrides(stack, config.environments["production"])
    assert staging.services["gateway"].replicas == 1
    assert staging.services["gateway"].routing.public_port == 18080
    assert production.services["gateway"].routing.public_port == 8080
