"""The same pipelines under gitlab-ci-local and Conveyor: per-job final statuses must agree.

Each fixture is `tests/ci_parity/<name>/.gitlab-ci.yml` (plus any files it includes), with an
optional `parity.yaml`:

    variables: {KEY: value}      # pipeline variables (--variable); "{tmp}" is a fresh directory
    environment: {KEY: value}    # exported in the caller's environment (each tool's process)
    manual: [job]                # manual jobs to play
    differs:                     # where gitlab-ci-local departs from GitLab (docs/ci-parity.md)
      job: {conveyor: success, gitlab-ci-local: failed}
    refused: "text"              # gitlab-ci-local cannot read the file and prints this: every
                                 # job is `absent` there and "(pipeline)" is `refused`

Both tools run the shell executor in their own temporary git copy of the fixture (branch
`main`, remote `origin` = a fake GitLab URL, nothing is fetched). gitlab-ci-local is driven as

    cd COPY && gitlab-ci-local --shell-isolation --force-shell-executor --no-color \\
        --max-job-name-padding 0 --home HOME [--variable K=V]... [--manual JOB]...

and its statuses are read from the report it prints at the end (` PASS  job`, ` WARN  job
pre_script`, ` FAIL  job`), completed by `--list-json` for the jobs that never started
(when:never → absent, manual → manual, anything else → skipped); its spelling of parallel job
names (`job: [1/3]`, `job: [a,b]`) is mapped to GitLab's (`job 1/3`, `job: [a, b]`). The
pseudo-job "(pipeline)" compares the pipeline's outcome: passed, failed or blocked (a manual
job with allow_failure: false waits). Jobs of child pipelines are named `trigger -> job`, as
Conveyor's live output names them (gitlab-ci-local prints `[trigger] -> job`, and only the job's
name on a FAIL line: the `starting` lines say which child it ran in, so a fixture's child jobs
must not share a name with another job). Conveyor runs through the in-process harness
(`conveyor.testing.ci.run_pipeline`). The gitlab-ci-local binary comes from
`scripts/gitlab-ci-local.sh` (or $GITLAB_CI_LOCAL); without it the module is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.testing.ci import Run, run_pipeline

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "ci_parity"
FAKE_ORIGIN = "git@gitlab.example.com:group/project.git"
PIPELINE = "(pipeline)"  # pseudo-job: the pipeline's outcome (passed, failed, blocked)
GCL_VERSION = "4.65.0"


def gitlab_ci_local_bin() -> Path | None:
    """$GITLAB_CI_LOCAL, else the copy `scripts/gitlab-ci-local.sh` installs, else PATH."""
    candidates = [
        os.environ.get("GITLAB_CI_LOCAL", ""),
        str(ROOT / ".cache/gitlab-ci-local/node_modules/.bin/gitlab-ci-local"),
        shutil.which("gitlab-ci-local") or "",
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    return None


GCL = gitlab_ci_local_bin()
_missing = [t for t in ("node", "rsync", "git") if shutil.which(t) is None]
pytestmark = [
    pytest.mark.skipif(
        GCL is None,
        reason="gitlab-ci-local not installed: run `bash scripts/gitlab-ci-local.sh` "
        f"(pins {GCL_VERSION} into .cache/gitlab-ci-local) or set $GITLAB_CI_LOCAL",
    ),
    pytest.mark.skipif(bool(_missing), reason=f"gitlab-ci-local needs {', '.join(_missing)}"),
]


# --- fixtures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    variables: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    manual: tuple[str, ...] = ()
    differs: dict[str, dict[str, str]] = field(default_factory=dict)
    refused: str | None = None  # what gitlab-ci-local prints when it cannot read the file

    @property
    def dir(self) -> Path:
        return FIXTURES / self.name


def load_case(path: Path) -> Case:
    meta: dict[str, Any] = {}
    if (path / "parity.yaml").exists():
        meta = yaml.safe_load((path / "parity.yaml").read_text()) or {}
    return Case(
        name=path.name,
        variables={str(k): str(v) for k, v in (meta.get("variables") or {}).items()},
        environment={str(k): str(v) for k, v in (meta.get("environment") or {}).items()},
        manual=tuple(meta.get("manual") or ()),
        differs={str(k): dict(v) for k, v in (meta.get("differs") or {}).items()},
        refused=meta.get("refused"),
    )


CASES = sorted(
    (load_case(p) for p in FIXTURES.iterdir() if (p / ".gitlab-ci.yml").exists()),
    key=lambda c: c.name,
)


def git_copy(src: Path, dest: Path) -> Path:
    """`src` as a fresh git repository on `main` whose `origin` is a fake GitLab project."""
    shutil.copytree(src, dest)

    def git(*args: str) -> None:
        subprocess.run(
            [
                "git",
                "-c",
                "user.name=parity",
                "-c",
                "user.email=parity@example.com",
                "-c",
                "commit.gpgsign=false",
                *args,
            ],
            cwd=dest,
            check=True,
            capture_output=True,
        )

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "fixture")
    git("remote", "add", "origin", FAKE_ORIGIN)
    # What a clone would have: origin/main and origin/HEAD (the default branch), no fetch needed.
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    return dest


# --- gitlab-ci-local ---------------------------------------------------------------------------

# A duration in brackets may precede the name; `[trigger] -> job` names a child's job.
REPORT_LINE = re.compile(r"^ (PASS|WARN|FAIL) +(?:\[[^\]]*\] (?!-> ))?(.+)$")
CHILD_NAME = re.compile(r"^\[(.+?)\] -> (.+)$")
CHILD_START = re.compile(r"^\t+\[(.+?)\] -> (.+?) starting ")
GCL_PARALLEL = re.compile(r"^(.*): \[(\d+/\d+)\]$")  # gitlab-ci-local's `job: [1/3]`
GCL_MATRIX = re.compile(r"^(.*): \[(.*)\]$")  # gitlab-ci-local's `job: [a,b]`


def gitlab_name(name: str) -> str:
    """GitLab's name for a gitlab-ci-local job name: `job 1/3` for parallel: N and
    `job: [a, b]` for parallel:matrix (gitlab-ci-local prints `job: [1/3]`, `job: [a,b]`)."""
    if m := GCL_PARALLEL.match(name):
        return f"{m[1]} {m[2]}"
    if m := GCL_MATRIX.match(name):
        return f"{m[1]}: [{', '.join(v.strip() for v in m[2].split(','))}]"
    return name


@dataclass
class GclRun:
    returncode: int
    stdout: str
    stderr: str
    statuses: dict[str, str]


def gcl_command(home: Path, case: Case, tmp: Path) -> list[str]:
    """The command line, run with the project copy as working directory (gitlab-ci-local
    rejects an absolute --cwd)."""
    assert GCL is not None
    cmd = [
        str(GCL),
        "--shell-isolation",
        "--force-shell-executor",
        "--no-color",
        "--max-job-name-padding",
        "0",
        "--home",
        str(home),
    ]
    for k, v in case.variables.items():
        cmd += ["--variable", f"{k}={v.replace('{tmp}', str(tmp))}"]
    for m in case.manual:
        cmd += ["--manual", m]
    return cmd


def gcl_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "NODE_EXTRA_CA_CERTS")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return {**env, "HOME": str(home), "FORCE_COLOR": "0", "NO_COLOR": "1"}


def parse_report(stdout: str) -> dict[str, str]:
    """Started jobs from gitlab-ci-local's closing reports (a child pipeline prints its own):
    PASS → success, WARN … pre_script → failed (allowed), FAIL → failed. `WARN … after_script`
    lines only say that after_script failed, which never changes a job's status; other WARN
    lines are notices about the file or the run."""
    in_child = {m[2]: m[1] for line in stdout.splitlines() if (m := CHILD_START.match(line))}

    def name_of(written: str) -> str:
        if m := CHILD_NAME.match(written):
            return f"{m[1]} -> {gitlab_name(m[2])}"
        if written in in_child:  # FAIL lines name a child's job without its trigger
            return f"{in_child[written]} -> {gitlab_name(written)}"
        return gitlab_name(written)

    out: dict[str, str] = {}
    for line in stdout.splitlines():
        m = REPORT_LINE.match(line.rstrip())
        if not m:
            continue
        kind, rest = m.groups()
        if kind == "WARN":
            name, _, which = rest.rpartition("  ")
            if which.strip() != "pre_script":
                # after_script failed, or a notice that names no job's status ("duplicated
                # mapping key detected! Values will be overwritten!", "interpolation functions
                # is currently not supported", "downstream pipeline is experimental")
                continue
            out[name_of(name.strip())] = "failed (allowed)"
        else:
            out[name_of(rest.strip())] = "success" if kind == "PASS" else "failed"
    return out


def gcl_list(project: Path, home: Path) -> list[dict[str, Any]]:
    assert GCL is not None
    cmd = [str(GCL), "--list-json", "--home", str(home)]
    p = subprocess.run(
        cmd,
        cwd=project,
        capture_output=True,
        text=True,
        env=gcl_env(home),
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    start = p.stdout.index("[")  # skip any notice printed before the JSON
    jobs: list[dict[str, Any]] = json.loads(p.stdout[start:])
    for j in jobs:
        j["name"] = gitlab_name(j["name"])
    return jobs


def not_started(
    jobs: list[dict[str, Any]], started: dict[str, str], manual: tuple[str, ...]
) -> dict[str, str]:
    """GitLab's name for what happened to each job gitlab-ci-local did not start.

    gitlab-ci-local never starts when:never jobs (GitLab leaves them out of the pipeline) nor
    manual jobs that were not played: GitLab shows those as `manual` once their turn comes, or
    `skipped` when a job they wait for failed. Any other job it did not start was skipped."""
    stages: list[str] = []
    for j in jobs:
        if j["stage"] not in stages:
            stages.append(j["stage"])  # --list-json lists jobs in stage order
    status = dict(started)

    def waits_for(j: dict[str, Any]) -> list[str]:
        if j.get("needs") is not None:
            return [n["job"] for n in j["needs"]]
        before = stages[: stages.index(j["stage"])]
        return [
            o["name"]
            for o in jobs
            if o["stage"] in before
            and o["when"] != "never"
            and (o["when"] != "manual" or o["name"] in manual)
        ]

    def blocked(j: dict[str, Any]) -> bool:
        names = set(waits_for(j))
        bases = {o["name"] for o in jobs if re.sub(r" (\d+/\d+|\[.*\])$", "", o["name"]) in names}
        return any(status.get(n) in ("failed", "skipped") for n in names | bases)

    for j in sorted(jobs, key=lambda j: stages.index(j["stage"])):
        name = j["name"]
        if name in status:
            continue
        if j["when"] == "never":
            status[name] = "absent"
        elif j["when"] == "manual" and name not in manual:
            status[name] = "skipped" if blocked(j) else "manual"
        else:
            status[name] = "skipped"
    return {k: v for k, v in status.items() if k not in started}


def run_gitlab_ci_local(case: Case, tmp: Path) -> GclRun:
    project = git_copy(case.dir, tmp / "gcl" / "project")
    home = tmp / "gcl" / "home"
    home.mkdir()
    scratch = tmp / "gcl" / "scratch"
    scratch.mkdir()
    p = subprocess.run(
        gcl_command(home, case, scratch),
        cwd=project,
        capture_output=True,
        text=True,
        env={**gcl_env(home), **case.environment},
        timeout=300,
        check=False,
    )
    started = parse_report(p.stdout)
    if p.returncode != 0 and not started:
        if case.refused is not None and case.refused in p.stdout + p.stderr:
            return GclRun(p.returncode, p.stdout, p.stderr, {PIPELINE: "refused"})
        pytest.fail(f"gitlab-ci-local did not run the pipeline:\n{p.stdout}\n{p.stderr}")
    if case.refused is not None:
        pytest.fail(f"gitlab-ci-local now reads the file ({case.refused!r} expected)")
    statuses = {**started, **not_started(gcl_list(project, home), started, case.manual)}
    statuses[PIPELINE] = "passed" if p.returncode == 0 else "failed"
    return GclRun(p.returncode, p.stdout, p.stderr, statuses)


# --- Conveyor ----------------------------------------------------------------------------------


def conveyor_statuses(run: Run) -> dict[str, str]:
    out: dict[str, str] = {}
    results = run.result.all_jobs()
    for name, status in run.statuses().items():
        res = results.get(name)
        allowed = status == "failed" and res is not None and res.allowed_failure
        out[name] = "failed (allowed)" if allowed else status
    # GitLab: a pipeline whose only failures were allowed passes (with warnings), and so does
    # one whose unplayed manual jobs may fail; one waiting on a manual job with
    # allow_failure: false is blocked (Conveyor's pipeline status `manual`).
    out[PIPELINE] = {"success": "passed", "manual": "blocked"}.get(run.result.status, "failed")
    return out


def run_conveyor(case: Case, tmp: Path) -> dict[str, str]:
    project = git_copy(case.dir, tmp / "conveyor" / "project")
    scratch = tmp / "conveyor" / "scratch"
    scratch.mkdir()
    variables = {k: v.replace("{tmp}", str(scratch)) for k, v in case.variables.items()}
    run = run_pipeline(
        project,
        executor="shell",
        variables=variables,
        play=case.manual,
        environ={**os.environ, **case.environment},
    )
    return conveyor_statuses(run)


# --- the comparison ----------------------------------------------------------------------------


def test_every_fixture_is_listed_in_the_parity_doc() -> None:
    doc = (ROOT / "docs" / "ci-parity.md").read_text()
    missing = [c.name for c in CASES if f"`{c.name}`" not in doc]
    assert not missing, f"docs/ci-parity.md does not describe: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_statuses_as_gitlab_ci_local(case: Case, tmp_path: Path) -> None:
    gcl = run_gitlab_ci_local(case, tmp_path)
    conveyor = run_conveyor(case, tmp_path)
    report = (
        f"\n  gitlab-ci-local: {gcl.statuses}\n  conveyor:        {conveyor}"
        f"\n--- gitlab-ci-local stdout ---\n{gcl.stdout[-3000:]}"
    )
    names = sorted(set(gcl.statuses) | set(conveyor))
    assert any(conveyor.get(n, "absent") != "absent" for n in names if n != PIPELINE), report
    for name in names:
        ours, theirs = conveyor.get(name, "absent"), gcl.statuses.get(name, "absent")
        if name in case.differs:
            want = case.differs[name]
            assert (ours, theirs) == (want["conveyor"], want["gitlab-ci-local"]), (
                f"{case.name}/{name}: a documented difference changed "
                f"(conveyor {ours}, gitlab-ci-local {theirs}; expected {want}){report}"
            )
        else:
            assert ours == theirs, (
                f"{case.name}/{name}: conveyor {ours}, gitlab-ci-local {theirs}{report}"
            )
