"""Artifacts: GitLab Runner's file selection, storage in blobs, restore, expiry."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conveyor.ci.run.artifacts import ArtifactStore
from conveyor.ci.run.blobs import BlobStore
from conveyor.ci.run.snapshot import Entry, Snapshot, restore, select_paths
from conveyor.ci.select.outcome import when_applies
from conveyor.errors import ArtifactError, WorkspaceError
from conveyor.model.pipeline import ArtifactsSpec

TREE = {
    "README.md": "readme",
    "dist/app.js": "js",
    "dist/app.js.map": "map",
    "dist/sub/deep.txt": "deep",
    "reports/unit.xml": "<x/>",
    "reports/nested/e2e.xml": "<y/>",
    "src/main.py": "print()",
    ".env.ci": "A=1",
}


def make_tree(root: Path) -> Path:
    for rel, text in TREE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "ws")


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts", BlobStore(tmp_path / "blobs"))


SELECTIONS = [
    # paths, exclude, expected selection
    (["dist/"], [], {"dist", "dist/app.js", "dist/app.js.map", "dist/sub", "dist/sub/deep.txt"}),
    (["**/*.xml"], [], {"reports/unit.xml", "reports/nested/e2e.xml"}),
    (["reports/*.xml"], [], {"reports/unit.xml"}),
    (["dist"], ["dist/**/*.map"], {"dist", "dist/app.js", "dist/sub", "dist/sub/deep.txt"}),
    # exclude is not recursive: excluding the directory keeps what is inside it
    (["dist"], ["dist/sub"], {"dist", "dist/app.js", "dist/app.js.map", "dist/sub/deep.txt"}),
    (["dist"], ["dist/sub/**"], {"dist", "dist/app.js", "dist/app.js.map"}),
    (["*"], ["*/**/*", "dist", "reports", "src"], {"README.md", ".env.ci"}),  # `*` sees dot files
    (["README.md", "README.md", "./README.md"], [], {"README.md"}),
    (["{src,dist/sub}/*"], [], {"src/main.py", "dist/sub/deep.txt"}),
]


@pytest.mark.parametrize(("paths", "exclude", "expected"), SELECTIONS)
def test_selection(ws: Path, paths: list[str], exclude: list[str], expected: set[str]) -> None:
    chosen = select_paths(ws, paths, exclude)
    assert set(chosen.paths) == expected
    assert chosen.warnings == ()


def test_absolute_paths_inside_the_workspace_are_accepted(ws: Path) -> None:
    assert select_paths(ws, [f"{ws}/src/main.py"]).paths == ("src/main.py",)


def test_a_pattern_matching_nothing_is_a_warning(ws: Path) -> None:
    chosen = select_paths(ws, ["missing/", "*.nope"])
    assert chosen.paths == ()
    assert chosen.warnings == ("missing/: no matching files", "*.nope: no matching files")


@pytest.mark.parametrize("pattern", ["../outside", "dist/../../outside", "/etc/passwd", "..", "."])
def test_paths_escaping_the_workspace_are_refused(ws: Path, pattern: str) -> None:
    with pytest.raises(WorkspaceError, match=r"outside the workspace|empty|whole workspace"):
        select_paths(ws, [pattern])


def test_escape_through_a_symlinked_directory_is_refused(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (ws / "link").symlink_to(outside)
    with pytest.raises(WorkspaceError, match="via a symlink"):
        select_paths(ws, ["link/*.txt"])
    with pytest.raises(WorkspaceError, match="via a symlink"):
        select_paths(ws, ["link/secret.txt"])
    # The link itself is an ordinary entry: stored as a link, not followed.
    assert select_paths(ws, ["link"]).paths == ("link",)


def git(ws: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=ws,
        check=True,
        capture_output=True,
    )


def test_untracked_in_a_git_checkout_includes_ignored_files(ws: Path) -> None:
    git(ws, "init", "-q")
    (ws / ".gitignore").write_text("dist/\n")
    git(ws, "add", "README.md", "src/main.py", ".gitignore")
    git(ws, "commit", "-q", "-m", "init")
    (ws / "new.txt").write_text("new")
    chosen = select_paths(ws, [], exclude=["reports/nested/**"], untracked=True)
    # Tracked files stay out; .gitignore'd dist/ is included, as GitLab documents.
    assert set(chosen.paths) == {
        ".env.ci",
        "new.txt",
        "reports/unit.xml",
        "dist/app.js",
        "dist/app.js.map",
        "dist/sub/deep.txt",
    }


def test_untracked_outside_git_is_every_file(ws: Path) -> None:
    chosen = select_paths(ws, [], untracked=True)
    assert set(chosen.paths) == set(TREE)


def test_collect_writes_a_json_manifest(ws: Path, store: ArtifactStore) -> None:
    spec = ArtifactsSpec(paths=("dist/",), exclude=("**/*.map",), expire_in=3600, name="web")
    result = store.collect("42", ws, spec, now=1000.0)
    manifest = result.manifest
    assert (manifest.job_id, manifest.created_at, manifest.expire_at) == ("42", 1000.0, 4600.0)
    assert (manifest.files, manifest.size) == (2, len("js") + len("deep"))
    on_disk = json.loads(next(store.root.glob("*.json")).read_text())
    assert on_disk["job_id"] == "42"
    entry = on_disk["snapshot"]["entries"]["dist/app.js"]
    assert entry["kind"] == "file"
    assert entry["size"] == 2
    assert store.blobs.open(entry["digest"]).read() == b"js"
    assert stat.S_IMODE(entry["mode"]) == entry["mode"]


def test_restore_round_trip(ws: Path, store: ArtifactStore, tmp_path: Path) -> None:
    (ws / "dist" / "run.sh").write_text("#!/bin/sh\n")
    (ws / "dist" / "run.sh").chmod(0o755)
    (ws / "dist" / "empty").mkdir()
    (ws / "dist" / "latest").symlink_to("app.js")
    (ws / "dist" / "dangling").symlink_to("/nonexistent/target")
    store.collect("7", ws, ArtifactsSpec(paths=("dist",)))
    target = tmp_path / "next-job"
    report = store.restore("7", target)
    assert (report.files, report.links, report.dirs) == (4, 2, 3)
    assert (target / "dist/sub/deep.txt").read_text() == "deep"
    assert stat.S_IMODE((target / "dist/run.sh").stat().st_mode) == 0o755
    assert (target / "dist/empty").is_dir()
    assert os.readlink(target / "dist/latest") == "app.js"
    assert (target / "dist/latest").read_text() == "js"
    assert os.readlink(target / "dist/dangling") == "/nonexistent/target"


def test_restore_replaces_a_symlink_instead_of_writing_through_it(
    ws: Path, store: ArtifactStore, tmp_path: Path
) -> None:
    manifest = store.collect("1", ws, ArtifactsSpec(paths=("README.md",))).manifest
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    target = tmp_path / "job"
    target.mkdir()
    (target / "README.md").symlink_to(victim)
    store.restore(manifest, target)
    assert victim.read_text() == "untouched"
    assert not (target / "README.md").is_symlink()
    assert (target / "README.md").read_text() == "readme"


def test_restore_refuses_paths_that_leave_the_workspace(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest = blobs.put_bytes(b"evil")
    evil = Entry(kind="file", digest=digest, size=4)
    for entries in (
        {"../escaped": evil},
        {"/abs": evil},
        {"a/../../b": evil},
        # a stored link to outside, then a file "inside" it
        {"out": Entry(kind="symlink", target=str(tmp_path)), "out/planted": evil},
    ):
        with pytest.raises(WorkspaceError):
            restore(Snapshot(entries=entries), tmp_path / "ws", blobs)
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "planted").exists()


def test_restore_of_unknown_job(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="job 99 has no artifacts"):
        store.restore("99", tmp_path)


def test_a_retried_job_replaces_its_artifacts(ws: Path, store: ArtifactStore) -> None:
    store.collect("5", ws, ArtifactsSpec(paths=("README.md",)))
    store.collect("5", ws, ArtifactsSpec(paths=("src/",)))
    manifest = store.get("5")
    assert manifest is not None
    assert set(manifest.snapshot.entries) == {"src", "src/main.py"}


def test_expiry_counts_and_keeps_what_running_pipelines_need(
    ws: Path, store: ArtifactStore
) -> None:
    store.collect("old", ws, ArtifactsSpec(paths=("dist/app.js",), expire_in=10), now=0)
    store.collect("locked", ws, ArtifactsSpec(paths=("src/main.py",), expire_in=10), now=0)
    store.collect("fresh", ws, ArtifactsSpec(paths=("dist/app.js",), expire_in=1000), now=0)
    store.collect("forever", ws, ArtifactsSpec(paths=("README.md",)), now=0)
    report = store.expire(now=100, keep={"locked"})
    assert (report.removed, report.files, report.bytes, report.kept) == (1, 1, 2, 1)
    assert {m.job_id for m in store.manifests()} == {"locked", "fresh", "forever"}
    # The bytes of "old" are shared with "fresh": the blob sweep keeps them.
    gc = store.blobs.gc(store.live_digests(), min_age=0)
    assert gc.removed == 0
    assert store.expire(now=2000).removed == 2  # locked and fresh; "forever" never expires
    gc = store.blobs.gc(store.live_digests(), min_age=0)
    assert (gc.removed, gc.freed_bytes) == (2, len("js") + len("print()"))


def test_unreadable_manifest_is_a_clear_error(store: ArtifactStore) -> None:
    store.root.mkdir(parents=True)
    (store.root / "m-9.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable artifacts manifest"):
        store.get("9")


@pytest.mark.parametrize(
    ("when", "succeeded", "uploads"),
    [
        ("on_success", True, True),
        ("on_success", False, False),
        ("on_failure", True, False),
        ("on_failure", False, True),
        ("always", True, True),
        ("always", False, True),
    ],
)
def test_when(when: str, succeeded: bool, uploads: bool) -> None:
    assert when_applies(when, succeeded) is uploads  # type: ignore[arg-type]
