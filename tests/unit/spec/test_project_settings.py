"""The top-level `x-conveyor.logs` of compose.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.model.logs import LogSettings
from conveyor.spec import load_stack


def settings(tmp_path: Path, block: str) -> LogSettings:
    (tmp_path / "compose.yaml").write_text(block + "services:\n  web:\n    image: nginx\n")
    return load_stack(tmp_path / "compose.yaml", environ={"HOME": "/h"}).logs


@pytest.mark.parametrize(
    ("block", "want"),
    [
        ("", LogSettings()),
        ("x-conveyor:\n  logs: false\n", LogSettings(collect=False)),
        ("x-conveyor:\n  logs: true\n", LogSettings()),
        (
            "x-conveyor:\n  logs:\n    retention: 3d\n    max_size: 512m\n",
            LogSettings(max_age=3 * 86400, max_bytes=512 * 1024**2),
        ),
        ("x-conveyor:\n  logs:\n    retention: 12h\n", LogSettings(max_age=12 * 3600)),
        ("x-conveyor:\n  logs:\n    retention: 2w\n", LogSettings(max_age=14 * 86400)),
        ("x-conveyor:\n  logs:\n    collect: 'false'\n", LogSettings(collect=False)),
    ],
)
def test_log_settings(tmp_path: Path, block: str, want: LogSettings) -> None:
    assert settings(tmp_path, block) == want
