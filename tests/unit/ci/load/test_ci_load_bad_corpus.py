"""Every bad/*.yml fails with exactly the text of its sidecar `.expect` file.

The loader runs from inside bad/ with a bare file name, so the text is what a user running
Conveyor next to their `.gitlab-ci.yml` reads; included files are named the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.ci.load.context import LoadContext
from conveyor.ci.load.loader import load_pipeline
from conveyor.errors import ConveyorError, SpecError, SpecErrors

BAD = Path(__file__).parent / "bad"
CASES = sorted(path.stem for path in BAD.glob("*.yml"))
ONE_LINE = re.compile(r"^[\w./-]+(:\d+)?: \S.*$")


def test_corpus_is_complete() -> None:
    assert sorted(path.stem for path in BAD.glob("*.expect")) == CASES
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_bad_file_fails_with_expected_text(
    name: str, load_context: Callable[[Path, str], LoadContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(BAD)
    expected = (BAD / f"{name}.expect").read_text(encoding="utf-8").rstrip("\n")

    with pytest.raises(ConveyorError) as caught:
        load_pipeline(Path(f"{name}.yml"), context=load_context(BAD, name))

    assert str(caught.value) == expected
    lines = expected.splitlines()
    assert all(ONE_LINE.match(line) for line in lines), lines
    if len(lines) == 1:
        assert isinstance(caught.value, SpecError)
    else:
        assert isinstance(caught.value, SpecErrors)
        assert len(caught.value.errors) == len(lines)
        order = [(error.file, error.line or 0) for error in caught.value.errors]
        assert order == sorted(order)
