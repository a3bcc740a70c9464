"""Port assignment: a full range is a user-facing error that names the range."""

from __future__ import annotations

import random

import pytest

from conveyor.deploy.ports import FRONTEND_RANGE, REPLICA_RANGE, pick_port
from conveyor.errors import ConveyorError, PortsExhausted


@pytest.mark.parametrize(
    ("lo_hi", "what"), [(REPLICA_RANGE, "replicas"), (FRONTEND_RANGE, "frontends")]
)
def test_an_exhausted_range_names_itself_and_what_to_do(lo_hi: tuple[int, int], what: str) -> None:
    lo, hi = lo_hi
    taken = set(range(lo, hi + 1))  # all promised: nothing is bound, nothing is tried
    with pytest.raises(PortsExhausted) as caught:
        pick_port(taken, lo_hi, random.Random(1))
    message = str(caught.value)
    assert f"for {what} in {lo}-{hi}" in message
    assert "ss -ltnp" in message
    assert isinstance(caught.value, ConveyorError)  # shown as a message, not a traceback
