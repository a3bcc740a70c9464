"""The pin file (`.conveyor/pins/<env>.json`): what the server writes reads back the same, and
a file a person broke is refused at its line and field."""

from __future__ import annotations

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.pins import Pin, pin_path
from conveyor.spec.pin_file import parse_pin, render_pin

FILE = pin_path("staging")
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_the_path_is_per_environment() -> None:
    assert FILE == ".conveyor/pins/staging.json"


def test_a_written_pin_reads_back() -> None:
    pin = Pin(commit=SHA, release=3, by="deployer-1", at=1733480000.5)
    text = render_pin(pin)
    assert text.endswith("}\n") and text.count("\n") == 6  # a key a line
    assert parse_pin(text, FILE) == pin


def test_a_hand_written_pin_needs_only_the_commit() -> None:
    assert parse_pin('{"commit": "0123abc"}', FILE) == Pin(commit="0123abc")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", f"{FILE}:1: must be a JSON object, got a list"),
        ('{\n  "release": 2\n}', f"{FILE}:1: 'commit' is required"),
        ('{\n  "commit": "main"\n}', f"{FILE}:2: commit: must be a commit id"),
        (f'{{\n  "commit": "{SHA}",\n  "release": 0\n}}', f"{FILE}:3: release: must be a release"),
        (f'{{\n  "commit": "{SHA}",\n  "at": "now"\n}}', f"{FILE}:3: at: must be seconds"),
        (f'{{\n  "commit": "{SHA}",\n  "by": 7\n}}', f"{FILE}:3: by: must be a string"),
        (f'{{\n  "commit": "{SHA}",\n  "relase": 2\n}}', "(did you mean 'release'?)"),
        ('{"commit": ', f"{FILE}:1"),
    ],
)
def test_a_broken_pin_is_refused_at_its_line(text: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_pin(text, FILE)
    assert message in str(e.value)


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(SpecErrors) as e:
        parse_pin('{\n  "commit": 5,\n  "release": -1\n}', FILE)
    lines = str(e.value).splitlines()
    assert [line.split(":")[1] for line in lines] == ["2", "3"]
