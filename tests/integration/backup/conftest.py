"""moto's server for the backup tests (shared code: conveyor.testing.moto), once per module;
its PID is recorded and it is stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor.testing.moto import Moto, moto_server


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server
