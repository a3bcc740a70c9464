"""Job caches with GitLab's keys and policies, stored as snapshots in the blob store.

Keys, as GitLab computes them (lib/gitlab/ci/pipeline/seed/build/cache.rb, Ci::Build#cache):

- a literal `cache:key` (variables expanded by the caller), or `default` when none is given;
- `cache:key:files`: `<prefix>-<digest>`, where the digest is SHA-1 over the sorted, unique git
  blob ids of the named files joined by `-` (GitLab 18.4+ hashes file *contents*, so equal files
  on two branches share a cache), or `default` when none of the files exists. The prefix defaults
  to the cache's index in the job's `cache:` list (`0-…`). Names holding `*` are wildcards with
  GitLab's repository-search meaning (`*` within a directory, `**` across directories);
- then `-<n>` when the project's caches were cleared n times (GitLab's "Clear runner caches"),
  and `-protected` or `-non_protected` by the pipeline's ref (`-non_protected` whenever
  `cache:unprotect` is true), on the key and on every `fallback_keys` entry alike;
- the global `CACHE_FALLBACK_KEY` is tried last, verbatim, and refused if it ends in
  `-protected` (GitLab Runner's guard against reading a protected cache from any branch).

GitLab rejects a key that contains `/` (or `%2F`) or consists only of dots; so does `cache_keys`.
The runner never fails a job over a cache, so callers should report `CacheKeyError` and run the
job without that cache.

The blob ids are computed from the workspace's files, as git would hash them. On a clean checkout
that is exactly GitLab's value; on a dirty tree it follows what the job will actually build.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from pydantic import ValidationError

from conveyor.ci.run.blobs import BlobStore
from conveyor.ci.run.snapshot import (
    Snapshot,
    capture,
    manifest_name,
    read_json,
    restore,
    select_paths,
    write_json_atomic,
)
from conveyor.ci.select.globs import wildcard_regex
from conveyor.ci.select.outcome import when_applies
from conveyor.errors import CacheError, CacheKeyError
from conveyor.model.pipeline import CacheSpec
from conveyor.model.stack import Frozen

DEFAULT_KEY = "default"
PROTECTED = "protected"
NON_PROTECTED = "non_protected"
_RESET = "; delete it: the next job saves the cache afresh"


# --- keys (pure, except for reading the key files) ---------------------------------------------


def key_problem(key: str) -> str | None:
    """Why GitLab refuses `key` as a cache key, or None. URL-decoded first, as GitLab does."""
    decoded = unquote(key)
    if not decoded:
        return "a cache key cannot be empty"
    if "/" in decoded:
        return f"cache key {key!r} cannot contain '/' (or %2F)"
    if set(decoded) == {"."}:
        return f"cache key {key!r} cannot consist only of '.' characters"
    return None


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob: SHA-1 over `blob <size>\\0<content>`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def files_digest(blob_ids: Sequence[str]) -> str | None:
    """GitLab's digest of `cache:key:files`: None when no file was found."""
    ids = sorted(set(blob_ids))
    if not ids:
        return None
    return hashlib.sha1("-".join(ids).encode(), usedforsecurity=False).hexdigest()


def _workspace_files(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


def key_file_blob_ids(root: Path, files: Sequence[str]) -> list[str]:
    """Blob ids of the `cache:key:files` that exist in the workspace (wildcards expanded)."""
    wanted: list[str] = []
    patterns = [f.strip().removeprefix("./") for f in files if f.strip()]
    literal = [p for p in patterns if "*" not in p]
    wildcards = [wildcard_regex(p) for p in patterns if "*" in p]
    wanted.extend(literal)
    if wildcards:
        wanted.extend(f for f in _workspace_files(root) if any(w.fullmatch(f) for w in wildcards))
    ids: list[str] = []
    for rel in dict.fromkeys(wanted):
        path = root / rel
        if path.is_symlink():
            ids.append(git_blob_id(os.fsencode(os.readlink(path))))
        elif path.is_file():
            ids.append(git_blob_id(path.read_bytes()))
    return ids


def base_key(spec: CacheSpec, index: int, blob_ids: Sequence[str] = ()) -> str:
    """The key before GitLab's suffixes: literal, or `<prefix>-<files digest>`."""
    if not spec.key_files:
        return spec.key or DEFAULT_KEY
    prefix = spec.key_prefix if spec.key_prefix else str(index)
    return "-".join(p for p in (prefix, files_digest(blob_ids) or DEFAULT_KEY) if p)


@dataclass(frozen=True)
class CacheKeys:
    key: str  # where the cache is saved, and tried first
    fallbacks: tuple[str, ...] = ()  # tried in order when `key` has no cache

    @property
    def candidates(self) -> tuple[str, ...]:
        return (self.key, *self.fallbacks)


def cache_keys(
    spec: CacheSpec,
    *,
    index: int = 0,
    protected_ref: bool,
    workspace: Path | None = None,
    clear_count: int | None = None,
    global_fallback: str | None = None,
    separate_protected: bool = True,
) -> CacheKeys:
    """The keys one `cache:` entry (the `index`-th of its job) reads and writes.

    `workspace` is needed for `key:files`; `clear_count` is how often the caches were cleared;
    `global_fallback` is the expanded `CACHE_FALLBACK_KEY` variable.
    """
    ids = key_file_blob_ids(workspace, spec.key_files) if spec.key_files and workspace else []
    keys = [base_key(spec, index, ids), *spec.fallback_keys]
    for key in keys:
        if problem := key_problem(key):
            raise CacheKeyError(problem)
    suffixes: list[str] = []
    if clear_count is not None:
        suffixes.append(str(clear_count))
    if separate_protected:
        suffixes.append(PROTECTED if protected_ref and not spec.unprotect else NON_PROTECTED)
    suffixed = ["-".join([k, *suffixes]) for k in keys]
    fallbacks = suffixed[1:]
    if global_fallback and not global_fallback.endswith(f"-{PROTECTED}"):
        fallbacks.append(global_fallback)
    return CacheKeys(key=suffixed[0], fallbacks=tuple(dict.fromkeys(fallbacks)))


# --- policies --------------------------------------------------------------------------------


POLICIES = ("pull-push", "pull", "push")


def policy_of(spec: CacheSpec) -> str:
    """The policy, once the caller has expanded a `$VARIABLE` policy. Empty means pull-push,
    as in GitLab Runner; anything else unknown fails the job there, so it raises here."""
    policy = spec.policy.strip() or "pull-push"
    if policy not in POLICIES:
        raise CacheError(f"unknown cache policy {spec.policy!r} (pull-push, pull or push)")
    return policy


def pulls(spec: CacheSpec) -> bool:
    """`pull` and `pull-push` restore before the job; `push` starts from nothing."""
    return policy_of(spec) in ("pull", "pull-push")


def pushes(spec: CacheSpec, job_succeeded: bool) -> bool:
    """`push` and `pull-push` save after the job, if `cache:when` matches its outcome."""
    return policy_of(spec) in ("push", "pull-push") and when_applies(spec.when, job_succeeded)


# --- the store -------------------------------------------------------------------------------


class CacheManifest(Frozen):
    key: str
    saved_at: float
    job_id: str | None = None
    snapshot: Snapshot = Snapshot()


Outcome = Literal["restored", "missing", "skipped", "saved", "unchanged"]


@dataclass(frozen=True)
class CacheResult:
    outcome: Outcome
    key: str | None = None  # the key restored from or saved to
    files: int = 0
    bytes: int = 0
    warnings: tuple[str, ...] = ()


class CacheStore:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root
        self.blobs = blobs

    def _path(self, key: str) -> Path:
        return self.root / manifest_name(key)

    def get(self, key: str) -> CacheManifest | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return CacheManifest.model_validate(read_json(path))
        except (OSError, ValueError, ValidationError) as e:
            raise CacheError(f"{path}: unreadable cache manifest: {e}{_RESET}") from e

    def restore(self, spec: CacheSpec, keys: CacheKeys, workspace: Path) -> CacheResult:
        """Before the job: unpack the first of `keys.candidates` that has a cache."""
        if not pulls(spec):
            return CacheResult("skipped")
        for key in keys.candidates:
            manifest = self.get(key)
            if manifest is None:
                continue
            report = restore(manifest.snapshot, workspace, self.blobs)
            return CacheResult("restored", key, report.files, report.bytes)
        return CacheResult("missing")

    def save(
        self,
        spec: CacheSpec,
        keys: CacheKeys,
        workspace: Path,
        *,
        job_succeeded: bool,
        job_id: str | None = None,
        now: float,
    ) -> CacheResult:
        """After the job: snapshot `paths` (and untracked files) under `keys.key`.

        Like the runner, an empty selection still saves (an empty cache), and fallback keys
        are never written.
        """
        if not pushes(spec, job_succeeded):
            return CacheResult("skipped")
        chosen = select_paths(workspace, spec.paths, (), spec.untracked)
        snapshot, capture_warnings = capture(workspace, chosen.paths, self.blobs)
        warnings = chosen.warnings + tuple(capture_warnings)
        previous = self.get(keys.key)
        if previous is not None and previous.snapshot == snapshot:
            return CacheResult("unchanged", keys.key, snapshot.files, snapshot.size, warnings)
        manifest = CacheManifest(key=keys.key, saved_at=now, job_id=job_id, snapshot=snapshot)
        write_json_atomic(self._path(keys.key), manifest.model_dump_json(indent=1))
        return CacheResult("saved", keys.key, snapshot.files, snapshot.size, warnings)

    def keys(self) -> list[str]:
        return [m.key for m in self._manifests()]

    def delete(self, key: str) -> bool:
        path = self._path(key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def live_digests(self) -> set[str]:
        live: set[str] = set()
        for manifest in self._manifests():
            live |= manifest.snapshot.digests()
        return live

    def _manifests(self) -> Iterator[CacheManifest]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*.json")):
            try:
                yield CacheManifest.model_validate(read_json(path))
            except (OSError, ValueError, ValidationError) as e:
                raise CacheError(f"{path}: unreadable cache manifest: {e}{_RESET}") from e
