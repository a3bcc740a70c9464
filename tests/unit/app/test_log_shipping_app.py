"""Where a project's log destinations come from, and opening them: `conveyor up` reads the
file CONVEYOR_LOGS_CONFIG names; a secret's variable that is unset stops the start with the
field that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.app.log_shipping import logs_config_for_up, open_project_shipping
from conveyor.errors import ShipError, SpecError
from conveyor.model.log_shipping import ElasticsearchDestination, LogShipping


def test_no_variable_no_shipping(tmp_path: Path) -> None:
    assert logs_config_for_up({}, tmp_path) == LogShipping()
    assert open_project_shipping(LogShipping(), tmp_path, {}) is None
    assert not (tmp_path / "logs-ship").exists()


def test_the_file_is_found_next_to_the_compose_file(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "logs.yaml").write_text(
        "logs:\n  ship:\n    - loki: {url: 'http://127.0.0.1:3100', tenant: dev}\n"
    )
    spec = logs_config_for_up({"CONVEYOR_LOGS_CONFIG": "ops/logs.yaml"}, tmp_path)
    assert [(d.kind, d.name) for d in spec.ship] == [("loki", "loki")]
    with pytest.raises(SpecError, match=r"^missing.yaml: no such file \(named by CONVEYOR_LOGS"):
        logs_config_for_up({"CONVEYOR_LOGS_CONFIG": "missing.yaml"}, tmp_path)


def test_an_unset_secret_names_its_field(tmp_path: Path) -> None:
    spec = LogShipping(
        ship=(
            ElasticsearchDestination(
                name="elasticsearch", url="http://127.0.0.1:9", api_key_env="ES_API_KEY"
            ),
        )
    )
    with pytest.raises(ShipError) as caught:
        open_project_shipping(spec, tmp_path, {})
    assert str(caught.value).startswith(
        "logs.ship[0].elasticsearch.api_key_env: the environment variable ES_API_KEY is not set"
    )
    # Nothing was left holding the buffer: a second try with the key set opens it.
    shipping = open_project_shipping(spec, tmp_path, {"ES_API_KEY": "k"})
    assert shipping is not None
    shipping.stop(timeout=1)
    assert (tmp_path / "logs-ship" / "elasticsearch").is_dir()
