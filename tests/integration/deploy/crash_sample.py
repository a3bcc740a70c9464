"""Which crash points of the integration matrices run by default.

Each crash point costs a real rollout and its repair (~7-10 s), and the matrices have 57, so
by default each family runs its `core` points (every point of one representative operation, or
the scenarios that are one of a kind) and `rotate` more, picked by a hash of a seed: the commit
checked out, or CONVEYOR_CRASH_SEED. A commit always runs the same sample (a failure reproduces
with the same seed) and successive commits go through the rest of the matrix.
CONVEYOR_FULL_CRASH_MATRIX=1 runs every point. The points left out are skipped with the reason
and the seed, so the summary says what did not run.

The recovery logic behind every journal crash point is also run at every point, on in-memory
fakes, by tests/unit/deploy/test_crash_matrix.py (always, in milliseconds).
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet

FULL_ENV = "CONVEYOR_FULL_CRASH_MATRIX"
SEED_ENV = "CONVEYOR_CRASH_SEED"
ROOT = Path(__file__).resolve().parents[3]


def full_matrix() -> bool:
    return os.environ.get(FULL_ENV, "") not in ("", "0")


@functools.cache
def seed() -> str:
    """CONVEYOR_CRASH_SEED, else the commit checked out (else "0": not a git checkout)."""
    if given := os.environ.get(SEED_ENV):
        return given
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return head.stdout.strip() if head.returncode == 0 and head.stdout.strip() else "0"


def pick(family: str, ids: Sequence[str], core: Iterable[str], rotate: int) -> set[str]:
    """The ids of `family` that run by default: `core` and `rotate` of the others, ranked by a
    hash of (seed, family, id). Pure apart from the seed."""
    core = set(core)
    unknown = core - set(ids)
    assert not unknown, f"{family}: core points {sorted(unknown)} are not in the matrix"
    rest = sorted(
        (i for i in ids if i not in core),
        key=lambda i: hashlib.sha256(f"{seed()}:{family}:{i}".encode()).hexdigest(),
    )
    return core | set(rest[:rotate])


def sample(
    family: str, params: Sequence[ParameterSet], core: Iterable[str], rotate: int
) -> list[ParameterSet]:
    """`params` (each with an id), the points outside the default sample marked skip, unless
    CONVEYOR_FULL_CRASH_MATRIX is set."""
    ids = [str(p.id) for p in params]
    assert None not in (p.id for p in params) and len(set(ids)) == len(ids), ids
    if full_matrix():
        return list(params)
    chosen = pick(family, ids, core, rotate)
    reason = (
        f"crash-point sample (seed {seed()[:12]}): {FULL_ENV}=1 runs the whole matrix, "
        f"{SEED_ENV}=... another sample"
    )
    return [
        p
        if p.id in chosen
        else pytest.param(*p.values, marks=[*p.marks, pytest.mark.skip(reason=reason)], id=p.id)
        for p in params
    ]
