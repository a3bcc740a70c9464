"""`conveyor ci artifacts JOB` (GitLab's browse and download of a job's artifacts) and what
`ci show` says about artifacts and JUnit failures, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.ci.run.artifacts import artifact_store
from conveyor.ci.run.prepare import ci_state_dir
from tests.integration.ci.cli_helpers import Cli, git_repo, table_rows

PIPELINE = """
stages: [test, report]
shots:
  stage: test
  script:
    - mkdir -p screenshots/step
    - printf "png-$ROUND" > screenshots/01-home.png
    - printf 'deeper' > screenshots/step/02-cart.png
    - ln -s 01-home.png screenshots/latest.png
    - printf 'not kept' > scratch.txt
  artifacts:
    paths: [screenshots/]
    expire_in: 1 week
unit:
  stage: test
  script:
    - |
      cat > junit.xml <<'XML'
      <testsuite name="unit">
        <testcase classname="shop.test_cart" name="test_ok"/>
        <testcase classname="shop.test_cart" name="test_total">
          <failure message="AssertionError: assert 3 == 4&#10;where 3 = total()">trace</failure>
        </testcase>
        <testcase name="test_db"><error message="ConnectionRefusedError"/></testcase>
      </testsuite>
      XML
    - exit 1
  allow_failure: true
  artifacts:
    when: always
    reports:
      junit: junit.xml
nothing:
  stage: report
  script: ["true"]
"""


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    repo = git_repo(tmp_path / "shop", {".gitlab-ci.yml": PIPELINE, ".gitignore": ".conveyor/\n"})
    code, out, err = run(cli, repo, "1")
    assert code == 0, out + err
    return repo


def run(cli: Cli, repo: Path, round_: str) -> tuple[int, str, str]:
    ci = str(repo / ".gitlab-ci.yml")
    return cli(
        "ci",
        "run",
        "--executor",
        "shell",
        "--no-registry",
        "-q",
        "-v",
        f"ROUND={round_}",
        "--file",
        ci,
    )


def manifest_path(repo: Path, job_id: int) -> Path:
    [path] = (ci_state_dir(repo) / "artifacts").glob(f"m-{job_id}.json")
    return path


def test_lists_and_extracts_into_the_default_directory(project: Path, cli: Cli) -> None:
    ci = str(project / ".gitlab-ci.yml")
    code, out, err = cli("ci", "artifacts", "shots", "--file", ci)
    assert code == 0, err
    assert out.splitlines()[0].startswith("artifacts of shots (job 1, pipeline 1), expire ")
    assert table_rows(out) == [
        ["screenshots/01-home.png", "5 B"],
        ["screenshots/latest.png -> 01-home.png", "link"],
        ["screenshots/step/02-cart.png", "6 B"],
    ]
    where = ci_state_dir(project) / "downloads" / "1-shots"
    assert f"2 files, 11 B extracted into {where}" in err.replace("\n", "")
    assert (where / "screenshots/01-home.png").read_text() == "png-1"
    assert (where / "screenshots/step/02-cart.png").read_text() == "deeper"
    assert (where / "screenshots/latest.png").readlink() == Path("01-home.png")
    assert not (where / "scratch.txt").exists()
    # a second download is exact: what was added there since is gone
    (where / "mine.txt").write_text("x")
    assert cli("ci", "artifacts", "1", "--file", ci)[0] == 0
    assert not (where / "mine.txt").exists()


def test_out_list_json_and_pipeline(project: Path, cli: Cli, tmp_path: Path) -> None:
    ci = str(project / ".gitlab-ci.yml")
    assert run(cli, project, "2")[0] == 0
    out_dir = tmp_path / "out"
    code, _, err = cli("ci", "artifacts", "shots", "--out", str(out_dir), "--file", ci)
    assert code == 0, err
    assert (out_dir / "screenshots/01-home.png").read_text() == "png-2"  # the latest run
    code, _, err = cli("ci", "artifacts", "shots", "-p", "1", "-o", str(out_dir), "--file", ci)
    assert code == 0, err
    assert (out_dir / "screenshots/01-home.png").read_text() == "png-1"
    # --list extracts nothing; --json is the documented shape
    code, out, err = cli("ci", "artifacts", "shots", "--list", "--json", "--file", ci)
    assert code == 0, err
    data = json.loads(out)
    assert (data["version"], data["name"], data["pipeline"], data["out"]) == (1, "shots", 2, None)
    assert (data["files"], data["bytes"]) == (2, 11)
    assert [(e["path"], e["kind"]) for e in data["entries"]] == [
        ("screenshots", "dir"),
        ("screenshots/01-home.png", "file"),
        ("screenshots/latest.png", "symlink"),
        ("screenshots/step", "dir"),
        ("screenshots/step/02-cart.png", "file"),
    ]
    assert data["expire_at"] - data["created_at"] == pytest.approx(7 * 24 * 3600)
    assert not (ci_state_dir(project) / "downloads" / f"{data['job_id']}-shots").exists()


def test_unknown_jobs_and_jobs_without_artifacts_are_clear_errors(project: Path, cli: Cli) -> None:
    ci = str(project / ".gitlab-ci.yml")
    code, _, err = cli("ci", "artifacts", "nope", "--pipeline", "1", "--file", ci)
    assert (code, err.strip()) == (
        1,
        "error: no job 'nope' in pipeline 1 (its jobs: nothing, shots, unit)",
    )
    code, _, err = cli("ci", "artifacts", "nope", "--file", ci)
    assert code == 1 and "no job 'nope' has run here" in err
    code, _, err = cli("ci", "artifacts", "shots", "--pipeline", "9", "--file", ci)
    assert (code, err.strip()) == (1, "error: no pipeline 9")
    code, _, err = cli("ci", "artifacts", "nothing", "--file", ci)
    assert (code, err.strip()) == (
        1,
        "error: job 'nothing' (#3, pipeline 1) kept no artifacts (success)",
    )


def test_expired_artifacts_cannot_be_downloaded(project: Path, cli: Cli) -> None:
    ci = str(project / ".gitlab-ci.yml")
    path = manifest_path(project, 1)
    manifest = json.loads(path.read_text())
    manifest["expire_at"] = 1.0  # 1970: long past
    path.write_text(json.dumps(manifest))
    code, _, err = cli("ci", "artifacts", "shots", "--file", ci)
    assert code == 1 and "error: the artifacts of job 'shots' (#1, pipeline 1) expired at" in err
    show = json.loads(cli("ci", "show", "1", "--json", "--file", ci)[1])
    shots = next(j for j in show["jobs"] if j["name"] == "shots")
    assert shots["artifacts"]["expired"] is True and shots["artifacts"]["entries"] == []
    # the next pipeline sweeps them away
    assert run(cli, project, "2")[0] == 0
    assert not path.exists()
    code, _, err = cli("ci", "artifacts", "shots", "-p", "1", "--file", ci)
    assert (code, err.strip()) == (
        1,
        "error: the artifacts of job 'shots' (#1, pipeline 1) expired and were removed: "
        "run the job again",
    )
    code, out, _ = cli("ci", "show", "1", "--file", ci)
    assert ["shots", "test", "success", *table_rows(out)[0][3:6], "expired"] == table_rows(out)[0]


def test_extraction_never_leaves_its_directory(project: Path, cli: Cli, tmp_path: Path) -> None:
    """A manifest is data on disk: one edited to climb out of the directory, or to write
    through a symlink it just made, is refused before anything lands outside."""
    ci = str(project / ".gitlab-ci.yml")
    path = manifest_path(project, 1)
    original = json.loads(path.read_text())
    entry = original["snapshot"]["entries"]["screenshots/01-home.png"]
    outside = tmp_path / "outside"
    outside.mkdir()
    out_dir = tmp_path / "out"

    climbing = json.loads(json.dumps(original))
    climbing["snapshot"]["entries"]["../outside/escaped.png"] = entry
    path.write_text(json.dumps(climbing))
    code, _, err = cli("ci", "artifacts", "shots", "-o", str(out_dir), "--file", ci)
    assert code == 1 and "would land outside" in err, err

    through_link = json.loads(json.dumps(original))
    entries = through_link["snapshot"]["entries"]
    entries["a-link"] = {"kind": "symlink", "mode": 511, "size": 0, "target": str(outside)}
    entries["a-link/pwned.png"] = entry
    path.write_text(json.dumps(through_link))
    code, _, err = cli("ci", "artifacts", "shots", "-o", str(out_dir), "--file", ci)
    assert code == 1 and "through a symlink" in err, err
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "outside" / "escaped.png").exists()


def test_show_names_artifacts_and_junit_failures(project: Path, cli: Cli) -> None:
    ci = str(project / ".gitlab-ci.yml")
    code, out, err = cli("ci", "show", "1", "--file", ci)
    assert code == 0, err
    rows = {r[0]: r for r in table_rows(out)}
    assert rows["shots"][-1] == "2 files, 11 B"
    assert rows["unit"][-2] == "1/3" and rows["unit"][-1].startswith("1 files, ")
    assert rows["nothing"][-1] == ""
    lines = out.splitlines()
    assert "artifacts of shots: screenshots/  (conveyor ci artifacts 1)" in lines
    assert "artifacts of unit: junit.xml  (conveyor ci artifacts 2)" in lines
    at = lines.index("JUnit failures in unit:")
    assert lines[at + 1 : at + 3] == [
        "  failed shop.test_cart.test_total: AssertionError: assert 3 == 4",
        "  error  test_db: ConnectionRefusedError",
    ]
    data = json.loads(cli("ci", "show", "1", "--json", "--file", ci)[1])
    unit = next(j for j in data["jobs"] if j["name"] == "unit")
    assert unit["test_failures"] == [
        {
            "status": "failed",
            "name": "test_total",
            "classname": "shop.test_cart",
            "suite": "unit",
            "file": "junit.xml",
            "message": "AssertionError: assert 3 == 4\nwhere 3 = total()",
        },
        {
            "status": "error",
            "name": "test_db",
            "classname": None,
            "suite": "unit",
            "file": "junit.xml",
            "message": "ConnectionRefusedError",
        },
    ]
    shots = next(j for j in data["jobs"] if j["name"] == "shots")
    assert shots["artifacts"]["entries"] == ["screenshots/"]
    assert (shots["artifacts"]["files"], shots["artifacts"]["expired"]) == (2, False)
    assert shots["test_failures"] == []
    # the store keeps what `show` reads: the artifact store agrees with the table
    assert artifact_store(ci_state_dir(project)).get("1") is not None
