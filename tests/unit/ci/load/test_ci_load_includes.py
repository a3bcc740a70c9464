"""Pieces of include resolution whose edges the corpus shows poorly: YAML documents, block
interpolation, input typing, component versions and catalogs, the variables `include` sees,
and `resolve_includes` (what `trigger: include:` child pipelines are made of)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from conveyor.ci.load.components import Catalog, ComponentError, parse_catalog, resolve_component
from conveyor.ci.load.context import LoadContext, config_variables
from conveyor.ci.load.includes import project_source, resolve_includes
from conveyor.ci.load.inputs import from_text
from conveyor.ci.load.interpolation import InterpolationError, Interpolator, posix_escape
from conveyor.ci.load.loader import load_pipeline
from conveyor.ci.load.located import LMap, Loc, LSeq, load_located
from conveyor.errors import ConveyorError, SpecError
from conveyor.spec.yamlpos import load_yaml, split_documents

# --- YAML documents ---------------------------------------------------------------------------


def test_documents_keep_their_lines_and_columns() -> None:
    text = "spec:\n  inputs: {}\n---\njob:\n  script: [a, b]\n"
    header, content = split_documents(text)
    assert load_yaml(header, "f").data == {"spec": {"inputs": {}}}
    assert load_yaml(content, "f").line(("job", "script")) == 5


def test_a_broken_second_document_reports_its_own_line() -> None:
    text = "spec:\n  inputs: {}\n---\njob:\n  script: [a\n"
    broken = split_documents(text)[-1]
    with pytest.raises(SpecError) as caught:
        load_yaml(broken, "f")
    assert caught.value.line == 5


def test_a_single_document_is_one_text() -> None:
    assert split_documents("a: 1\n") == ["a: 1\n"]
    assert split_documents("# just a comment\n") == []


# --- interpolation ----------------------------------------------------------------------------


def _interpolate(
    yaml_text: str,
    inputs: dict[str, Any],
    variables: dict[str, str] | None = None,
    masked: frozenset[str] = frozenset(),
) -> Any:
    content = load_located(yaml_text, "t.yml")
    interpolator = Interpolator({"inputs": inputs, "component": {}}, variables or {}, masked)
    return interpolator.interpolate(content, Loc("t.yml", 1))


def test_a_whole_block_keeps_the_type_and_text_elsewhere_does_not() -> None:
    got = _interpolate(
        "job:\n  parallel: $[[ inputs.n ]]\n  script: ['echo $[[ inputs.n ]] $[[ inputs.on ]]']\n",
        {"n": 3, "on": True},
    )
    assert got["job"]["parallel"] == 3
    assert got["job"]["script"] == ["echo 3 true"]


def test_list_inputs_are_spliced_into_lists_and_keys_are_interpolated() -> None:
    got = _interpolate(
        "$[[ inputs.name ]]-job:\n  script: [before, '$[[ inputs.steps ]]', after]\n",
        {"name": "web", "steps": ["one", "two"]},
    )
    assert list(got) == ["web-job"]
    assert got["web-job"]["script"] == ["before", "one", "two", "after"]
    assert isinstance(got["web-job"]["script"], LSeq)


def test_text_that_is_not_a_block_stays() -> None:
    got = _interpolate("job:\n  script: ['echo $[[ ]]', 'echo $[ x ]']\n", {})
    assert got["job"]["script"] == ["echo $[[ ]]", "echo $[ x ]"]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("$[[ inputs ]]", "invalid interpolation access pattern"),
        ("$[[ inputz.a ]]", "unknown interpolation key: `inputz`"),
        (
            "$[[ inputs.a | truncate(0,1) | truncate(0,1) | truncate(0,1) | truncate(0,1) ]]",
            "too many functions in interpolation block",
        ),
        (
            "$[[ inputs.n | truncate(0,1) ]]",
            "error in `truncate` function: invalid input type: truncate can only be used with "
            "string inputs",
        ),
    ],
)
def test_gitlab_messages_for_bad_blocks(block: str, message: str) -> None:
    with pytest.raises(InterpolationError) as caught:
        _interpolate(f"job:\n  script: ['{block}']\n", {"a": "x", "n": 1})
    assert caught.value.message == message
    assert (caught.value.loc.line, caught.value.field) == (2, "job.script[0]")


def test_expand_vars_expands_known_variables_once_and_refuses_masked_ones() -> None:
    got = _interpolate(
        "job:\n  script: ['$[[ inputs.a | expand_vars ]]']\n",
        {"a": "$KNOWN-$UNKNOWN-$NESTED"},
        {"KNOWN": "k", "NESTED": "$KNOWN"},
    )
    assert got["job"]["script"] == ["k-$UNKNOWN-$KNOWN"]
    with pytest.raises(InterpolationError, match="masked variables cannot be expanded"):
        _interpolate(
            "job:\n  script: ['$[[ inputs.a | expand_vars ]]']\n",
            {"a": "$TOKEN"},
            {"TOKEN": "s3cr3t-value"},
            frozenset({"TOKEN"}),
        )


def test_split_gives_a_list() -> None:
    got = _interpolate("job:\n  tags: $[[ inputs.t | split(',') ]]\n", {"t": "a, b,,c "})
    assert got["job"]["tags"] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("", "''"),
        ("plain-1.0/x:y@z", "plain-1.0/x:y@z"),
        ("a b'c", "a\\ b\\'c"),
        ("a\nb", "a'\n'b"),
    ],
)
def test_posix_escape_is_rubys_shellescape(text: str, escaped: str) -> None:
    assert posix_escape(text) == escaped


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("number", "3", 3),
        ("number", "-2.5", -2.5),
        ("number", "three", "three"),
        ("boolean", "true", True),
        ("boolean", "yes", "yes"),
        ("array", "[a, 1]", ["a", 1]),
        ("array", "a", "a"),
        ("string", "3", "3"),
    ],
)
def test_pipeline_inputs_given_as_text_are_read_as_their_type(
    kind: str, text: str, value: Any
) -> None:
    assert from_text(kind, text) == value


# --- the variables include sees ---------------------------------------------------------------


def test_config_variables_leave_out_job_runner_and_saved_pipeline_ones() -> None:
    predefined = {
        "CI_COMMIT_BRANCH": "main",
        "CI_PROJECT_PATH": "g/p",
        "CI_PROJECT_DIR": "/builds/g/p",
        "CI_PIPELINE_SOURCE": "push",
        "CI_PIPELINE_ID": "7",
        "CI_JOB_TOKEN": "t",
        "CI_SERVER_FQDN": "gitlab.example.com",
        "CI_REGISTRY_PASSWORD": "p",
        "GITLAB_USER_LOGIN": "me",
    }
    assert config_variables(predefined) == {
        "CI_COMMIT_BRANCH": "main",
        "CI_PROJECT_PATH": "g/p",
        "CI_PIPELINE_SOURCE": "push",
        "CI_SERVER_FQDN": "gitlab.example.com",
    }


def test_include_locations_expand_variables(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "main.yml").write_text("from-branch-file:\n  script: [x]\n")
    root = tmp_path / ".gitlab-ci.yml"
    root.write_text("include:\n  - local: ci/$CI_COMMIT_BRANCH.yml\n")
    context = LoadContext(variables={"CI_COMMIT_BRANCH": "main"})
    assert list(load_pipeline(root, context=context).jobs) == ["from-branch-file"]


def test_a_file_is_merged_once_per_set_of_inputs(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text(
        "spec:\n  inputs:\n    n:\n---\njob-$[[ inputs.n ]]:\n  script: [x]\n"
    )
    root = tmp_path / ".gitlab-ci.yml"
    root.write_text(
        "include:\n"
        "  - {local: t.yml, inputs: {n: a}}\n"
        "  - {local: t.yml, inputs: {n: a}}\n"
        "  - {local: t.yml, inputs: {n: b}}\n"
    )
    pipeline = load_pipeline(root)
    assert list(pipeline.jobs) == ["job-a", "job-b"]
    assert [Path(name).name for name in pipeline.includes] == ["t.yml", "t.yml"]


# --- components -------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _component_project(repo: Path, tags: list[str]) -> dict[str, str]:
    """A project whose templates/c.yml says which tag it was committed for; tag -> sha."""
    (repo / "templates").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    shas = {}
    for tag in tags:
        (repo / "templates" / "c.yml").write_text(f"c:\n  script: [echo {tag}]\n")
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", tag)
        _git(repo, "tag", tag)
        shas[tag] = _git(repo, "rev-parse", "HEAD")
    return shas


@pytest.mark.parametrize(
    ("reference", "tag", "version"),
    [
        ("~latest", "1.10.0", "1.10.0"),  # numeric order: 1.10.0 > 1.9.3 > 2.0.0-rc1 ignored
        ("1", "1.10.0", "1.10.0"),
        ("1.9", "1.9.3", "1.9.3"),
        ("1.9.0", "1.9.0", "1.9.0"),
        ("2.0.0-rc1", "2.0.0-rc1", None),  # a pre-release only by its name
        ("v0.1", "v0.1", None),  # a tag that is no semantic version: by its name
    ],
)
def test_component_versions(tmp_path: Path, reference: str, tag: str, version: str | None) -> None:
    shas = _component_project(
        tmp_path / "g" / "p", ["v0.1", "1.9.0", "1.9.3", "1.10.0", "2.0.0-rc1"]
    )
    found = resolve_component(f"example.com/g/p/c@{reference}", [Catalog(tmp_path)])
    assert (found.commit, found.version, found.path) == (shas[tag], version, "templates/c.yml")


def test_component_by_commit_and_branch(tmp_path: Path) -> None:
    shas = _component_project(tmp_path / "g" / "p", ["1.0.0"])
    catalog = [Catalog(tmp_path)]
    assert resolve_component(f"h/g/p/c@{shas['1.0.0']}", catalog).commit == shas["1.0.0"]
    assert resolve_component("h/g/p/c@main", catalog).commit == shas["1.0.0"]


def test_named_catalogs_match_case_insensitively_and_host_folders_come_first(
    tmp_path: Path,
) -> None:
    one = _component_project(tmp_path / "one", ["1.0.0"])
    two = _component_project(tmp_path / "dir" / "gitlab.example.com" / "g" / "p", ["1.0.0"])
    _component_project(tmp_path / "dir" / "g" / "p", ["1.0.0"])
    named = [Catalog(tmp_path / "one", "Group/Proj")]
    assert resolve_component("h/group/proj/c@1.0.0", named).commit == one["1.0.0"]
    by_host = [Catalog(tmp_path / "dir")]
    assert resolve_component("gitlab.example.com/g/p/c@1.0.0", by_host).commit == two["1.0.0"]


def test_a_folder_inside_another_repository_is_no_component_project(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "g" / "p" / "templates").mkdir(parents=True)
    (tmp_path / "g" / "p" / "templates" / "c.yml").write_text("c:\n  script: [x]\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "outer")
    with pytest.raises(ComponentError, match="is not a git repository"):
        resolve_component("h/g/p/c@main", [Catalog(tmp_path)])


def test_catalog_flags(tmp_path: Path) -> None:
    assert parse_catalog(str(tmp_path)) == Catalog(tmp_path.resolve())
    assert parse_catalog(f"group/p={tmp_path}") == Catalog(tmp_path.resolve(), "group/p")
    with pytest.raises(ConveyorError, match="is not a directory"):
        parse_catalog(str(tmp_path / "missing"))
    with pytest.raises(ConveyorError, match="expected"):
        parse_catalog(f"={tmp_path}")


# --- resolve_includes: a child pipeline's configuration --------------------------------------


def test_resolve_includes_merges_entries_without_an_including_file(tmp_path: Path) -> None:
    (tmp_path / "child.yml").write_text(
        "spec:\n  inputs:\n    who:\n---\nchild-$[[ inputs.who ]]:\n  script: [x]\n"
    )
    holder = load_located(
        "trigger-job:\n"
        "  trigger:\n"
        "    include:\n"
        "      - local: child.yml\n"
        "        inputs: {who: web}\n"
        "      - artifact: generated.yml\n"
        "        job: generate\n",
        ".gitlab-ci.yml",
    )
    assert isinstance(holder, LMap)
    entries = holder["trigger-job"]["trigger"]["include"]

    def artifact(job: str, path: str) -> str:
        assert (job, path) == ("generate", "generated.yml")
        return "generated-job:\n  script: [y]\n"

    context = LoadContext(artifact=artifact)
    source = project_source(".gitlab-ci.yml", tmp_path)
    expanded = resolve_includes(
        entries, ("trigger-job", "trigger", "include"), holder, source, context
    )
    assert list(expanded.content) == ["child-web", "generated-job"]
    assert expanded.included == ("child.yml", "generate:generated.yml")
    without = LoadContext()
    with pytest.raises(SpecError) as caught:
        resolve_includes(entries, ("trigger-job", "trigger", "include"), holder, source, without)
    assert caught.value.field == "trigger-job.trigger.include[1].artifact"
    assert caught.value.line == 6


def test_a_component_project_tests_its_own_components_at_its_commit(tmp_path: Path) -> None:
    shas = _component_project(tmp_path, ["1.0.0"])
    root = tmp_path / ".gitlab-ci.yml"
    root.write_text("include:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/c@$CI_COMMIT_SHA\n")
    (tmp_path / "templates" / "c.yml").write_text("c:\n  script: [echo uncommitted]\n")
    own = {"CI_SERVER_FQDN": "h", "CI_PROJECT_PATH": "g/p", "CI_COMMIT_SHA": shas["1.0.0"]}
    pipeline = load_pipeline(root, context=LoadContext(variables=own))
    assert pipeline.jobs["c"].script == ("echo 1.0.0",)  # what is committed, as on GitLab
    root.write_text(f"include:\n  - component: h/other/p/c@{shas['1.0.0']}\n")
    with pytest.raises(SpecError, match="no component catalog holds project 'other/p'"):
        load_pipeline(root, context=LoadContext(variables=own))
