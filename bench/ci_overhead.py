"""`conveyor ci run` vs gitlab-ci-local on the same pipelines, shell and docker executors.

Each run gets a fresh temporary git copy of its pipeline (branch main, a fake `origin`), then
the two tools are called as a user would, alternating so machine noise hits both alike:

    .venv/bin/conveyor ci run --no-registry -q --executor shell|docker -j C
    gitlab-ci-local --shell-isolation --concurrency C --home H --no-color            (shell)
    gitlab-ci-local --pull-policy if-not-present --helper-image IMAGE --network host
                    --concurrency C --home H --no-color                             (docker)

Figures (medians of --reps runs):
  * whole-pipeline wall time, per pipeline, ratio Conveyor / gitlab-ci-local;
  * per-job overhead: wall time of N trivial `echo` jobs (run one at a time) / N, minus the
    script's own time (`bash -c 'echo …'`), and the marginal cost per job
    ((wall(N) - wall(1)) / (N - 1)), which leaves out the tools' start-up;
  * a docker job's start: the job's duration in Conveyor's record for a pipeline with one job
    `true`, against `docker run --rm --network host IMAGE true`.

    bash scripts/gitlab-ci-local.sh      # installs the pinned gitlab-ci-local once
    .venv/bin/python bench/ci_overhead.py [--reps 3] [--jobs 10] [--no-docker]

Targets: ratios <= 1.0 for both executors; docker job start <= 1.2 x `docker run`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import ROOT

IMAGE = "python:3.11-slim-bookworm"
ORIGIN = "git@gitlab.example.com:group/project.git"
CONVEYOR = ROOT / ".venv" / "bin" / "conveyor"
PARITY = ROOT / "tests" / "ci_parity"
# Parity fixtures whose statuses agree in both tools and need no pipeline variables; they run
# on the shell executor only (gitlab-ci-local's docker executor copies artifacts and caches with
# rsync inside its helper image, which the local python image does not have).
SHELL_FIXTURES = ("needs_dag", "artifacts_passing", "dotenv_reports", "parallel_matrix")


def gcl_bin() -> Path | None:
    found = os.environ.get("GITLAB_CI_LOCAL") or str(
        ROOT / ".cache/gitlab-ci-local/node_modules/.bin/gitlab-ci-local"
    )
    return Path(found) if Path(found).is_file() else None


def echo_pipeline(n: int, image: str | None) -> str:
    head = f"default:\n  image: {image}\n" if image else ""
    return head + "".join(f"job-{i}:\n  script: [echo job {i}]\n" for i in range(1, n + 1))


def true_pipeline(image: str) -> str:
    return f"default:\n  image: {image}\nstart:\n  script: ['true']\n"


def git_copy(make: Callable[[Path], None], parent: Path) -> Path:
    dest = Path(tempfile.mkdtemp(prefix="p-", dir=parent))
    make(dest)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
        ["remote", "add", "origin", ORIGIN],
        ["update-ref", "refs/remotes/origin/main", "HEAD"],
        ["symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main"],
    ):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def from_text(text: str) -> Callable[[Path], None]:
    def make(dest: Path) -> None:
        (dest / ".gitlab-ci.yml").write_text(text)

    return make


def from_fixture(name: str) -> Callable[[Path], None]:
    def make(dest: Path) -> None:
        shutil.copytree(PARITY / name, dest, dirs_exist_ok=True)

    return make


@dataclass
class Timed:
    wall: float
    ok: bool
    project: Path
    out: str


class Tools:
    def __init__(self, gcl: Path | None, concurrency: int, work: Path) -> None:
        self.gcl = gcl
        self.concurrency = concurrency
        self.work = work
        self.home = work / "gcl-home"
        self.home.mkdir()

    def conveyor(self, project: Path, executor: str, concurrency: int | None = None) -> Timed:
        j = str(concurrency or self.concurrency)
        cmd = [str(CONVEYOR), "ci", "run", "--no-registry", "-q", "--executor", executor, "-j", j]
        return self._timed(cmd, project)

    def gitlab_ci_local(
        self, project: Path, executor: str, concurrency: int | None = None
    ) -> Timed:
        assert self.gcl is not None
        cmd = [str(self.gcl), "--no-color", "--home", str(self.home)]
        cmd += ["--concurrency", str(concurrency or self.concurrency)]
        if executor == "shell":
            cmd += ["--shell-isolation"]
        else:
            cmd += ["--pull-policy", "if-not-present", "--helper-image", IMAGE]
            cmd += ["--network", "host"]
        return self._timed(cmd, project)

    def _timed(self, cmd: list[str], project: Path) -> Timed:
        env = {**os.environ, "HOME": str(self.home), "NO_COLOR": "1"}
        t0 = time.perf_counter()
        p = subprocess.run(
            cmd, cwd=project, capture_output=True, text=True, env=env, timeout=900, check=False
        )
        wall = time.perf_counter() - t0
        return Timed(wall, p.returncode == 0, project, p.stdout + p.stderr)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def measure(
    tools: Tools,
    make: Callable[[Path], None],
    executor: str,
    reps: int,
    concurrency: int | None = None,
) -> tuple[list[float], list[float], str]:
    """Wall times (Conveyor, gitlab-ci-local), alternating which goes first, and whether each
    tool's pipelines passed ("pass/fail": some fixtures fail on purpose, or in one tool only)."""
    ours: list[float] = []
    theirs: list[float] = []
    passed: dict[str, set[bool]] = {"c": set(), "g": set()}
    for r in range(reps):
        order = ("c", "g") if r % 2 == 0 else ("g", "c")
        for who in order:
            if who == "g" and tools.gcl is None:
                continue
            project = git_copy(make, tools.work)
            if who == "c":
                t = tools.conveyor(project, executor, concurrency)
                ours.append(t.wall)
            else:
                t = tools.gitlab_ci_local(project, executor, concurrency)
                theirs.append(t.wall)
            passed[who].add(t.ok)
            shutil.rmtree(project, ignore_errors=True)

    def word(s: set[bool]) -> str:
        return "/".join(sorted("pass" if ok else "fail" for ok in s)) or "-"

    return ours, theirs, f"{word(passed['c'])} {word(passed['g'])}"


def script_time(reps: int = 20) -> float:
    xs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(["bash", "-c", "echo job 1"], capture_output=True, check=True)
        xs.append(time.perf_counter() - t0)
    return median(xs)


def docker_start(tools: Tools, reps: int) -> tuple[list[float], list[float], list[float]]:
    """Alternately: `docker run --rm --network host IMAGE true` wall time, and a Conveyor
    pipeline with one docker job `true` (the job's duration in Conveyor's record, and the whole
    `conveyor ci run` wall time), so that machine noise hits both alike."""
    cmd = ["docker", "run", "--rm", "--network", "host", IMAGE, "true"]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the daemon's caches
    plain: list[float] = []
    jobs: list[float] = []
    walls: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        plain.append(time.perf_counter() - t0)
        project = git_copy(from_text(true_pipeline(IMAGE)), tools.work)
        t = tools.conveyor(project, "docker")
        walls.append(t.wall)
        show = subprocess.run(
            [str(CONVEYOR), "ci", "show", "1", "--json"],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        )
        jobs.append(float(json.loads(show.stdout)["jobs"][0]["duration"]))
        shutil.rmtree(project, ignore_errors=True)
    return plain, jobs, walls


def row(label: str, ours: float, theirs: float, note: str = "") -> str:
    ratio = ours / theirs if theirs > 0 else float("nan")
    return f"{label:<38} {ours:>9.3f}s {theirs:>9.3f}s {ratio:>7.2f}  {note}"


def docker_works() -> bool:
    ok = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False)
    return ok.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=3, help="runs per tool and pipeline")
    ap.add_argument("--jobs", type=int, default=10, help="N trivial jobs for per-job overhead")
    ap.add_argument("--concurrency", type=int, default=2, help="jobs at once (both tools)")
    ap.add_argument(
        "--docker-runs", type=int, default=9, help="`docker run` / one-job pipeline pairs"
    )
    ap.add_argument("--no-docker", action="store_true", help="shell executor only")
    args = ap.parse_args()

    gcl = gcl_bin()
    if gcl is None:
        print("gitlab-ci-local not installed (bash scripts/gitlab-ci-local.sh): Conveyor only")
    docker = not args.no_docker and docker_works()
    if not args.no_docker and not docker:
        print(f"docker or {IMAGE} not available: shell executor only")
    executors = ["shell", "docker"] if docker else ["shell"]

    work = Path(tempfile.mkdtemp(prefix="cvb-"))
    tools = Tools(gcl, args.concurrency, work)
    own = script_time()
    lines: list[str] = []
    head = f"{'':<38} {'conveyor':>10} {'gcl':>10} {'ratio':>7}  pipelines passed (conveyor gcl)"
    try:
        for ex in executors:
            image = IMAGE if ex == "docker" else None
            pipelines: list[tuple[str, Callable[[Path], None]]] = [
                (f"{args.jobs} echo jobs", from_text(echo_pipeline(args.jobs, image)))
            ]
            if ex == "shell":
                pipelines += [(f"fixture {n}", from_fixture(n)) for n in SHELL_FIXTURES]
            lines.append(f"[{ex}] whole pipeline, -j {args.concurrency} (median wall)")
            for label, make in pipelines:
                print(f"... {ex}: {label}", flush=True)
                c, g, passed = measure(tools, make, ex, args.reps)
                lines.append(row(f"  {label}", median(c), median(g), passed))
            print(f"... {ex}: per-job overhead", flush=True)
            cn, gn, _ = measure(tools, from_text(echo_pipeline(args.jobs, image)), ex, args.reps, 1)
            c1, g1, _ = measure(tools, from_text(echo_pipeline(1, image)), ex, args.reps, 1)
            n = args.jobs
            lines.append(f"[{ex}] per job, -j 1, script's own time {own * 1e3:.1f} ms")
            lines.append(
                row(f"  wall({n})/{n} - script", median(cn) / n - own, median(gn) / n - own)
            )
            lines.append(
                row(
                    f"  (wall({n}) - wall(1)) / {n - 1}",
                    (median(cn) - median(c1)) / (n - 1),
                    (median(gn) - median(g1)) / (n - 1),
                )
            )
            lines.append(row("  wall(1), start-up included", median(c1), median(g1)))
        if docker:
            print("... docker: job start vs docker run", flush=True)
            plain, jobs, walls = docker_start(tools, args.docker_runs)
            ratio = median(jobs) / median(plain)
            lines.append(
                f"[docker] one job `true` vs `docker run --rm --network host {IMAGE} true`"
            )
            lines.append(f"  docker run (median of {args.docker_runs}):      {median(plain):.3f}s")
            lines.append(
                f"  conveyor job duration (record, median): {median(jobs):.3f}s "
                f"→ {ratio:.2f} x docker run (target <= 1.2)"
            )
            lines.append(f"  conveyor ci run wall (median):          {median(walls):.3f}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"gitlab-ci-local: {gcl or 'absent'}; reps {args.reps}; ratio = conveyor / gcl")
    print(head)
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
