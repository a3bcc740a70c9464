"""Caches: GitLab's keys (literal, key:files, suffixes, fallbacks), policies, save and restore."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from conveyor.ci.run.blobs import BlobStore
from conveyor.ci.run.cache import (
    CacheKeys,
    CacheStore,
    cache_keys,
    git_blob_id,
    key_problem,
    pulls,
    pushes,
)
from conveyor.errors import CacheError, CacheKeyError
from conveyor.model.pipeline import CacheSpec


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("default", None),
        ("$weird:but-fine_1.2", None),
        ("feature/login", "cannot contain '/'"),
        ("feature%2Flogin", "cannot contain '/'"),
        (".", "only of '.'"),
        ("..", "only of '.'"),
        ("...", "only of '.'"),
        ("%2E%2E", "only of '.'"),
        ("", "empty"),
    ],
)
def test_key_problem(key: str, problem: str | None) -> None:
    found = key_problem(key)
    assert (found is None) if problem is None else (problem in (found or ""))


KEYS = [
    # spec fields, protected ref, extra kwargs, expected key, expected fallbacks
    ({}, False, {}, "default-non_protected", ()),
    ({}, True, {}, "default-protected", ()),
    ({"key": "deps"}, True, {"separate_protected": False}, "deps", ()),
    ({"key": "deps", "unprotect": True}, True, {}, "deps-non_protected", ()),
    ({"key": "deps"}, False, {"clear_count": 3}, "deps-3-non_protected", ()),
    (
        {"key": "main-deps", "fallback_keys": ("deps-main", "deps")},
        True,
        {"clear_count": 1},
        "main-deps-1-protected",
        ("deps-main-1-protected", "deps-1-protected"),
    ),
    (
        {"key": "k"},
        False,
        {"global_fallback": "shared"},
        "k-non_protected",
        ("shared",),  # CACHE_FALLBACK_KEY is used verbatim
    ),
    # GitLab Runner refuses a CACHE_FALLBACK_KEY that would read a protected cache
    ({"key": "k"}, False, {"global_fallback": "main-protected"}, "k-non_protected", ()),
]


@pytest.mark.parametrize(("fields", "protected", "kwargs", "key", "fallbacks"), KEYS)
def test_keys(
    fields: dict[str, object],
    protected: bool,
    kwargs: dict[str, object],
    key: str,
    fallbacks: tuple[str, ...],
) -> None:
    keys = cache_keys(CacheSpec(**fields), protected_ref=protected, **kwargs)  # type: ignore[arg-type]
    assert keys == CacheKeys(key, fallbacks)


@pytest.mark.parametrize("fields", [{"key": "feature/x"}, {"fallback_keys": ("..",)}])
def test_keys_gitlab_refuses(fields: dict[str, object]) -> None:
    with pytest.raises(CacheKeyError):
        cache_keys(CacheSpec(**fields), protected_ref=False)


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def git_hash_object(path: Path) -> str:
    out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, check=True)
    return out.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "web").mkdir(parents=True)
    (ws / "Gemfile.lock").write_text("GEM\n  rake (13.0)\n")
    (ws / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    (ws / "web" / "package-lock.json").write_text('{"web": true}\n')
    return ws


def test_git_blob_id_is_gits(repo: Path) -> None:
    path = repo / "Gemfile.lock"
    assert git_blob_id(path.read_bytes()) == git_hash_object(path)


def files_key(repo: Path, index: int = 0, **fields: object) -> str:
    spec = CacheSpec(**fields)
    return cache_keys(spec, index=index, protected_ref=False, workspace=repo).key


def test_key_files_hash_the_contents(repo: Path) -> None:
    lock = git_hash_object(repo / "Gemfile.lock")
    assert files_key(repo, key_files=("Gemfile.lock",)) == f"0-{sha1(lock)}-non_protected"
    # the prefix defaults to the cache's index in the job's list
    assert files_key(repo, 1, key_files=("Gemfile.lock",)).startswith("1-")
    assert files_key(repo, 1, key_files=("Gemfile.lock",), key_prefix="gems") == (
        f"gems-{sha1(lock)}-non_protected"
    )


def test_key_files_two_files_are_sorted_ids_joined(repo: Path) -> None:
    ids = sorted(git_hash_object(repo / f) for f in ("Gemfile.lock", "package-lock.json"))
    expected = f"0-{sha1('-'.join(ids))}-non_protected"
    assert files_key(repo, key_files=("Gemfile.lock", "package-lock.json")) == expected
    assert files_key(repo, key_files=("package-lock.json", "Gemfile.lock")) == expected


def test_key_files_missing_files_give_default(repo: Path) -> None:
    assert files_key(repo, key_files=("nope.lock",)) == "0-default-non_protected"
    assert files_key(repo, key_files=("nope.lock",), key_prefix="gems") == (
        "gems-default-non_protected"
    )


def test_key_files_follow_content_not_location(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "Gemfile.lock").write_bytes((repo / "Gemfile.lock").read_bytes())
    assert files_key(repo, key_files=("Gemfile.lock",)) == files_key(
        other, key_files=("Gemfile.lock",)
    )
    (other / "Gemfile.lock").write_text("GEM\n  rake (13.1)\n")
    assert files_key(repo, key_files=("Gemfile.lock",)) != files_key(
        other, key_files=("Gemfile.lock",)
    )


def test_key_files_wildcards_use_gitlab_repository_search(repo: Path) -> None:
    root_only = files_key(repo, key_files=("*.json",))
    everywhere = files_key(repo, key_files=("**package-lock.json",))
    ids_root = [git_hash_object(repo / "package-lock.json")]
    ids_all = sorted([*ids_root, git_hash_object(repo / "web" / "package-lock.json")])
    assert root_only == f"0-{sha1('-'.join(ids_root))}-non_protected"
    assert everywhere == f"0-{sha1('-'.join(ids_all))}-non_protected"


POLICIES = [
    # policy, when, job succeeded, pulls, pushes
    ("pull-push", "on_success", True, True, True),
    ("pull-push", "on_success", False, True, False),
    ("pull", "always", True, True, False),
    ("push", "on_success", True, False, True),
    ("push", "on_failure", True, False, False),
    ("push", "on_failure", False, False, True),
    ("pull-push", "always", False, True, True),
    ("", "on_success", True, True, True),  # an empty (expanded) policy is pull-push
]


@pytest.mark.parametrize(("policy", "when", "ok", "pull", "push"), POLICIES)
def test_policies(policy: str, when: str, ok: bool, pull: bool, push: bool) -> None:
    spec = CacheSpec(policy=policy, when=when)
    assert (pulls(spec), pushes(spec, ok)) == (pull, push)


def test_unknown_policy_after_expansion_is_an_error() -> None:
    with pytest.raises(CacheError, match="unknown cache policy 'pul'"):
        pulls(CacheSpec(policy="pul"))


@pytest.fixture
def caches(tmp_path: Path) -> CacheStore:
    return CacheStore(tmp_path / "cache", BlobStore(tmp_path / "blobs"))


def job_ws(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    ws = tmp_path / name
    for rel, text in files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    ws.mkdir(exist_ok=True)
    return ws


def test_save_then_restore_in_the_next_job(caches: CacheStore, tmp_path: Path) -> None:
    spec = CacheSpec(key="deps", paths=("vendor/",))
    keys = cache_keys(spec, protected_ref=False)
    first = job_ws(tmp_path, "job1", {"vendor/lib.rb": "lib", "src/app.rb": "app"})
    assert caches.restore(spec, keys, first).outcome == "missing"
    saved = caches.save(spec, keys, first, job_succeeded=True, job_id="1", now=1.0)
    assert (saved.outcome, saved.key, saved.files, saved.bytes) == (
        "saved",
        "deps-non_protected",
        1,
        3,
    )
    second = job_ws(tmp_path, "job2", {})
    restored = caches.restore(spec, keys, second)
    assert (restored.outcome, restored.key, restored.files) == ("restored", keys.key, 1)
    assert (second / "vendor/lib.rb").read_text() == "lib"
    assert not (second / "src").exists()
    # Saving what was restored changes nothing.
    again = caches.save(spec, keys, second, job_succeeded=True, now=2.0)
    assert again.outcome == "unchanged"


def test_fallback_keys_are_read_in_order_but_never_written(
    caches: CacheStore, tmp_path: Path
) -> None:
    main = CacheSpec(key="main", paths=("out",))
    ws = job_ws(tmp_path, "main", {"out/x": "from main"})
    caches.save(main, cache_keys(main, protected_ref=False), ws, job_succeeded=True, now=0)
    branch = CacheSpec(key="feature", paths=("out",), fallback_keys=("missing", "main"))
    keys = cache_keys(branch, protected_ref=False)
    fresh = job_ws(tmp_path, "branch", {})
    restored = caches.restore(branch, keys, fresh)
    assert (restored.outcome, restored.key) == ("restored", "main-non_protected")
    (fresh / "out" / "x").write_text("from feature")
    saved = caches.save(branch, keys, fresh, job_succeeded=True, now=1)
    assert saved.key == "feature-non_protected"
    assert sorted(caches.keys()) == ["feature-non_protected", "main-non_protected"]


def test_protected_and_unprotected_caches_are_separate(caches: CacheStore, tmp_path: Path) -> None:
    spec = CacheSpec(key="deps", paths=("v",))
    ws = job_ws(tmp_path, "protected", {"v/a": "secretish"})
    caches.save(spec, cache_keys(spec, protected_ref=True), ws, job_succeeded=True, now=0)
    other = job_ws(tmp_path, "mr", {})
    outcome = caches.restore(spec, cache_keys(spec, protected_ref=False), other)
    assert outcome.outcome == "missing"


def test_policies_gate_restore_and_save(caches: CacheStore, tmp_path: Path) -> None:
    ws = job_ws(tmp_path, "ws", {"v/a": "a"})
    push = CacheSpec(key="k", paths=("v",), policy="push")
    pull = CacheSpec(key="k", paths=("v",), policy="pull")
    keys = cache_keys(push, protected_ref=False)
    assert caches.save(pull, keys, ws, job_succeeded=True, now=0).outcome == "skipped"
    assert caches.keys() == []
    assert caches.save(push, keys, ws, job_succeeded=True, now=0).outcome == "saved"
    assert caches.restore(push, keys, ws).outcome == "skipped"
    assert caches.restore(pull, keys, ws).outcome == "restored"
    failed = CacheSpec(key="k", paths=("v",))  # on_success: a failed job saves nothing
    assert caches.save(failed, keys, ws, job_succeeded=False, now=0).outcome == "skipped"


def test_untracked_cache_and_empty_selection(caches: CacheStore, tmp_path: Path) -> None:
    ws = job_ws(tmp_path, "ws", {"build/o.bin": "o"})
    spec = CacheSpec(key="u", untracked=True)
    keys = cache_keys(spec, protected_ref=False)
    assert caches.save(spec, keys, ws, job_succeeded=True, now=0).files == 1
    empty = CacheSpec(key="e", paths=("nothing/",))
    result = caches.save(
        empty, cache_keys(empty, protected_ref=False), ws, job_succeeded=True, now=0
    )
    assert (result.outcome, result.files) == ("saved", 0)
    assert result.warnings == ("nothing/: no matching files",)


def test_live_digests_cover_every_cache(caches: CacheStore, tmp_path: Path) -> None:
    ws = job_ws(tmp_path, "ws", {"a": "1", "b": "2"})
    for key, path in (("ka", "a"), ("kb", "b")):
        spec = CacheSpec(key=key, paths=(path,))
        caches.save(spec, cache_keys(spec, protected_ref=False), ws, job_succeeded=True, now=0)
    assert len(caches.live_digests()) == 2
    assert caches.delete("ka-non_protected")
    assert len(caches.live_digests()) == 1
    assert caches.blobs.gc(caches.live_digests(), min_age=0).removed == 1
