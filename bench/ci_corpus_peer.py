"""How many cases of `tests/ci_corpus` gitlab-ci-local agrees with GitLab on: whether the file
is valid, and for a valid one the set of jobs `--list-json` keeps for the ref. Conveyor's own
result on the same corpus is `pytest tests/integration/ci/test_corpus.py`. A parity figure, not
a timing.

    bash scripts/gitlab-ci-local.sh                 # once
    .venv/bin/python bench/ci_corpus_peer.py [-v]

gitlab-ci-local cannot read `include: project` or components without a GitLab server, so those
cases count as differences (they are what a team running it offline would hit).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "ci_corpus"
GCL = os.environ.get("GITLAB_CI_LOCAL") or str(
    ROOT / ".cache/gitlab-ci-local/node_modules/.bin/gitlab-ci-local"
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Corpus Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Corpus Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


def gitlab_name(name: str) -> str:
    """gitlab-ci-local spells `unit 1/3` as `unit: [1/3]` and `b: [x, y]` as `b: [x,y]`."""
    name = re.sub(r": \[(\d+/\d+)\]$", r" \1", name)
    return re.sub(r",(?! )", ", ", name)


def verdict(case: Path, work: Path) -> tuple[bool, str]:
    expect: dict[str, Any] = yaml.safe_load((case / "expect.yaml").read_text())
    shutil.copytree(case, work, ignore=shutil.ignore_patterns("expect.yaml", "projects", "catalog"))
    env = {**os.environ, **GIT_ENV}
    for command in (
        "git init -q -b main && git add -A && git commit -qm corpus",
        "git remote add origin git@gitlab.example.com:group/project.git",
        *expect.get("setup", []),
        *([f"git checkout -q {expect['ref']}"] if expect.get("ref") else []),
    ):
        subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True, check=True)
    home = work.parent / "home"
    home.mkdir()
    args = [GCL, "--list-json", "--home", str(home)]
    if expect.get("source", "push") != "push":
        args += ["--variable", f"CI_PIPELINE_SOURCE={expect['source']}"]
    run = subprocess.run(
        args,
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
    )
    invalid = expect.get("lint_error") is not None
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or [""])[-1]
        return invalid, f"refused: {last[:120]}"
    if invalid:
        return False, "accepted an invalid file"
    # Warning lines may come first; the listing is the line-starting JSON array.
    start = 0 if run.stdout.startswith("[") else run.stdout.find("\n[") + 1
    listing = run.stdout[start:]
    jobs = {gitlab_name(j["name"]) for j in json.loads(listing) if j.get("when") != "never"}
    want = set() if expect.get("no_pipeline") else set(expect.get("jobs", {}))
    return jobs == want, f"extra {sorted(jobs - want)}, missing {sorted(want - jobs)}"


def main() -> None:
    if not Path(GCL).exists():
        sys.exit(f"gitlab-ci-local not found at {GCL}: run scripts/gitlab-ci-local.sh")
    verbose = "-v" in sys.argv
    cases = sorted(p for p in CORPUS.iterdir() if (p / "expect.yaml").is_file())
    agree = 0
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            ok, why = verdict(case, Path(tmp) / "work")
        agree += ok
        if verbose or not ok:
            print(f"{'agree ' if ok else 'differ'}  {case.name}  {'' if ok else why}")
    print(f"gitlab-ci-local agrees with GitLab on {agree} of {len(cases)} corpus cases")


if __name__ == "__main__":
    main()
