"""Every file in bad/ must fail with exactly the text in its sidecar `.expect` file.

The loader is called from inside bad/ with a bare file name, so the expected text is what a
user running `conveyor` next to their compose file would read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError, SpecError, SpecErrors
from conveyor.spec import load_stack

BAD = Path(__file__).parent / "bad"
CASES = sorted(path.stem for path in BAD.glob("*.yaml"))
# A fixed environment: nothing leaks in from the machine running the tests.
ENVIRON = {"HOME": "/home/tester"}
ONE_LINE = re.compile(r"^[\w./-]+(:\d+)?: \S.*$")


def test_corpus_is_complete() -> None:
    expects = sorted(path.stem for path in BAD.glob("*.expect"))
    assert expects == CASES
    assert len(CASES) >= 35


@pytest.mark.parametrize("name", CASES)
def test_bad_file_fails_with_expected_text(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    expected = (BAD / f"{name}.expect").read_text(encoding="utf-8").rstrip("\n")

    with pytest.raises(ConveyorError) as caught:
        load_stack(Path(f"{name}.yaml"), environ=ENVIRON)

    assert str(caught.value) == expected
    lines = expected.splitlines()
    # One SpecError per problem, each on one readable `file:line: field: message` line.
    assert all(ONE_LINE.match(line) for line in lines), lines
    if len(lines) == 1:
        assert isinstance(caught.value, SpecError)
    else:
        assert isinstance(caught.value, SpecErrors)
        assert len(caught.value.errors) == len(lines)
        numbers = [error.line or 0 for error in caught.value.errors]
        assert numbers == sorted(numbers)
