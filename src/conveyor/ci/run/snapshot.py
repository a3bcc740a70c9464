"""Choosing a job's files and moving them in and out of the blob store.

Artifacts and caches share this: `select` picks workspace paths the way GitLab Runner's archiver
does, `capture` stores them as a `Snapshot` (path → entry), `restore` writes one back.

Runner semantics kept here (commands/helpers/file_archiver.go):

- each `paths` pattern is globbed, and every match is walked: a directory brings its whole tree,
  directory entries included; symlinks are recorded as links, never followed;
- `exclude` patterns are tested against every walked path, not recursively: excluding `dir`
  keeps `dir/file`; write `dir/**` to drop a tree;
- `untracked` adds `git ls-files --others`, *without* `--exclude-standard`: GitLab documents that
  untracked ignores `.gitignore`, so ignored build output is included. Outside a git checkout
  every file counts as untracked;
- a pattern that matches nothing is a warning, not an error.

Where Conveyor is stricter than the runner (which only warns): a pattern that leaves the
workspace, by `..`, an absolute path or a symlinked directory, raises `WorkspaceError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field

from conveyor.ci.run.blobs import BlobStore
from conveyor.ci.select.globs import compile_glob, normalize, split_pattern
from conveyor.errors import GitError, WorkspaceError
from conveyor.host import git
from conveyor.model.stack import Frozen

_INSIDE = "; name files relative to the project directory (CI_PROJECT_DIR)"
_CORRUPT = ": the stored manifest is damaged; run the job that produced it again"
_LINK = ": the workspace has a symlink where the stored files go; remove it before this step"
EntryKind = Literal["file", "dir", "symlink"]


class Entry(Frozen):
    kind: EntryKind
    mode: int = 0o644  # permission bits only: setuid/setgid never travel between jobs
    size: int = 0
    digest: str | None = None  # a file's blob
    target: str | None = None  # a symlink's target, verbatim


class Snapshot(Frozen):
    entries: dict[str, Entry] = Field(default_factory=dict)  # relative posix path → entry

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries.values() if e.kind == "file")

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries.values())

    def digests(self) -> set[str]:
        return {e.digest for e in self.entries.values() if e.digest is not None}


@dataclass(frozen=True)
class PathSelection:
    paths: tuple[str, ...]  # sorted relative paths
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestoreReport:
    files: int
    bytes: int
    links: int = 0
    dirs: int = 0


# --- selecting ---------------------------------------------------------------------------------


def relative_pattern(root: Path, pattern: str, what: str = "path") -> str:
    """`pattern` relative to the workspace, normalised; raises if it leaves the workspace.

    Absolute patterns are accepted when they lie inside the workspace (`$CI_PROJECT_DIR/out`).
    """
    text = normalize(pattern)
    if not text or text == ".":
        raise WorkspaceError(f"{what} {pattern!r} is empty: name a file, directory or glob")
    if text.startswith("/"):
        for base in {str(root), str(root.resolve())}:
            if text == base:
                raise WorkspaceError(
                    f"{what} {pattern!r} names the whole workspace: name what is inside it"
                )
            if text.startswith(base + "/"):
                text = text[len(base) + 1 :]
                break
        else:
            raise WorkspaceError(f"{what} {pattern!r} is outside the workspace {root}" + _INSIDE)
    if ".." in text.split("/"):
        text = posixpath.normpath(text)
        if text == ".." or text.startswith("../"):
            raise WorkspaceError(f"{what} {pattern!r} is outside the workspace {root}" + _INSIDE)
    return text


def _inside(root_real: str, path: Path) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real + os.sep)


def _walk(root: Path, rel: str) -> Iterator[str]:
    """`rel` and, when it is a real directory, everything under it (links not followed).
    `rel == ""` walks the whole of `root` without naming `root` itself."""
    if rel:
        yield rel
    path = root / rel
    if path.is_symlink() or not path.is_dir():
        return
    stack = [rel]
    while stack:
        current = stack.pop()
        with os.scandir(root / current) as it:
            for entry in sorted(it, key=lambda e: e.name):
                child = f"{current}/{entry.name}" if current else entry.name
                yield child
                if entry.is_dir(follow_symlinks=False):
                    stack.append(child)


def glob(root: Path, pattern: str) -> list[str]:
    """Relative paths under `root` that match `pattern` (already made relative)."""
    base, rest = split_pattern(pattern)
    root_real = os.path.realpath(root)
    if not rest:
        literal = _unescape(pattern)
        path = root / literal
        if not os.path.lexists(path):
            return []
        if not _inside(root_real, path.parent):
            raise WorkspaceError(
                f"path {pattern!r} reaches outside the workspace via a symlink" + _INSIDE
            )
        return [literal]
    start = root / base
    if not start.is_dir():
        return []
    if not _inside(root_real, start):
        raise WorkspaceError(
            f"path {pattern!r} reaches outside the workspace via a symlink" + _INSIDE
        )
    regex = compile_glob(pattern)
    found = [base] if base and regex.fullmatch(base) else []
    prefix = f"{base}/" if base else ""
    found.extend(prefix + sub for sub in _walk(start, "") if regex.fullmatch(prefix + sub))
    return found


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def untracked_paths(root: Path) -> list[str]:
    """Files git does not track (ignored ones included), or every file outside a checkout."""
    try:
        listed = git.untracked_files(root)
    except GitError as e:
        raise WorkspaceError(f"cannot list untracked files in {root}: {e}") from e
    if listed is None:
        return [p for p in _walk(root, "") if not (root / p).is_dir()]
    # A nested repository is listed as `dir/`; take its contents as the runner's walk would.
    return [p.rstrip("/") for p in listed]


def select_paths(
    root: Path,
    paths: Sequence[str],
    exclude: Sequence[str] = (),
    untracked: bool = False,
) -> PathSelection:
    """The workspace paths an artifacts or cache definition names, excluded ones removed."""
    rel_excludes = [compile_glob(relative_pattern(root, e, "exclude")) for e in exclude]
    chosen: set[str] = set()
    warnings: list[str] = []

    def take(candidates: Iterable[str]) -> int:
        n = 0
        for rel in candidates:
            if any(x.fullmatch(rel) for x in rel_excludes):
                continue
            chosen.add(rel)
            n += 1
        return n

    walked: set[str] = set()  # directories already taken with their whole tree
    for pattern in paths:
        rel_pattern = relative_pattern(root, pattern)
        found = 0
        for match in glob(root, rel_pattern):
            parts = match.split("/")
            if any("/".join(parts[:i]) in walked for i in range(1, len(parts) + 1)):
                found += 1  # `**` matches every descendant too: walk each tree once
                continue
            path = root / match
            if path.is_dir() and not path.is_symlink():
                walked.add(match)
            found += take(_walk(root, match))
        if not found:
            warnings.append(f"{pattern}: no matching files")
    if untracked:
        listed = untracked_paths(root)
        found = 0
        for rel in listed:
            found += take(_walk(root, rel))
        if not found:
            warnings.append("untracked: no files")
    return PathSelection(paths=tuple(sorted(chosen)), warnings=tuple(warnings))


# --- capture and restore -----------------------------------------------------------------------


def capture(root: Path, paths: Iterable[str], blobs: BlobStore) -> tuple[Snapshot, list[str]]:
    """Store the selected paths; returns the snapshot and warnings (vanished or special files)."""
    entries: dict[str, Entry] = {}
    warnings: list[str] = []
    for rel in sorted(set(paths)):
        path = root / rel
        try:
            st = path.lstat()
        except FileNotFoundError:
            warnings.append(f"{rel}: vanished before it could be stored")
            continue
        mode = stat.S_IMODE(st.st_mode) & 0o777
        if stat.S_ISLNK(st.st_mode):
            entries[rel] = Entry(kind="symlink", mode=0o777, target=os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            entries[rel] = Entry(kind="dir", mode=mode)
        elif stat.S_ISREG(st.st_mode):
            digest = blobs.put_file(path)
            entries[rel] = Entry(kind="file", mode=mode, size=blobs.size(digest), digest=digest)
        else:
            warnings.append(f"{rel}: not a regular file, directory or symlink; skipped")
    return Snapshot(entries=entries), warnings


def _safe_rel(rel: str) -> str:
    norm = posixpath.normpath(rel)
    if rel.startswith("/") or norm in (".", "..") or norm.startswith("../") or norm != rel:
        raise WorkspaceError(f"stored path {rel!r} would land outside the workspace" + _CORRUPT)
    return rel


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def restore(snapshot: Snapshot, root: Path, blobs: BlobStore) -> RestoreReport:
    """Write the snapshot's entries into `root`, replacing what is there.

    Never writes through a symlink: files land by rename (which replaces a link rather than
    following it), and every parent directory must resolve inside the workspace, so a stored
    link `out -> /etc` followed by `out/passwd` is refused.
    """
    root.mkdir(parents=True, exist_ok=True)
    root_real = os.path.realpath(root)
    files = size = links = dirs = 0
    for rel, entry in sorted(snapshot.entries.items()):
        target = root / _safe_rel(rel)
        parent = target.parent
        if not _inside(root_real, parent):
            raise WorkspaceError(f"stored path {rel!r} would be written through a symlink" + _LINK)
        parent.mkdir(parents=True, exist_ok=True)
        if not _inside(root_real, parent):
            raise WorkspaceError(f"stored path {rel!r} would be written through a symlink" + _LINK)
        if entry.kind == "dir":
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                _remove(target)
            target.mkdir(exist_ok=True)
            target.chmod(entry.mode | 0o700)  # the owner must be able to fill it
            dirs += 1
        elif entry.kind == "symlink":
            if os.path.lexists(target):
                _remove(target)
            os.symlink(entry.target or "", target)
            links += 1
        else:
            if entry.digest is None:
                raise WorkspaceError(f"stored file {rel!r} has no content digest" + _CORRUPT)
            if target.is_dir() and not target.is_symlink():
                _remove(target)
            _write_blob(blobs, entry.digest, target, entry.mode)
            files += 1
            size += entry.size
    # Directory modes last: a read-only directory must not block writing its children.
    for rel, entry in snapshot.entries.items():
        if entry.kind == "dir":
            (root / rel).chmod(entry.mode)
    return RestoreReport(files=files, bytes=size, links=links, dirs=dirs)


def _write_blob(blobs: BlobStore, digest: str, target: Path, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".conveyor-restore-")
    try:
        with os.fdopen(fd, "wb") as out, blobs.open(digest) as src:
            while chunk := src.read(1024 * 1024):
                out.write(chunk)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


# --- manifests on disk -------------------------------------------------------------------------


def manifest_name(name: str) -> str:
    """A file name for a job id or cache key: readable when short, hashed when long; never `.`,
    `..` or a path, whatever the name holds."""
    quoted = quote(name, safe="")
    if len(quoted) <= 180:
        return f"m-{quoted}.json"
    return f"h-{hashlib.sha256(name.encode()).hexdigest()}.json"


def write_json_atomic(path: Path, payload: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def read_json(path: Path) -> object:
    with path.open(encoding="utf-8") as f:
        return json.load(f)
