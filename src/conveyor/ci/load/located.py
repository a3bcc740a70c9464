"""YAML data that remembers where every key and item was written, across files.

`.gitlab-ci.yml` is assembled from several files (includes), then jobs are merged into one
another (`extends`, `!reference`). An error found after that must still point at the line a
person has to edit, which may be in an included template. So mappings and sequences here
carry the location of each key and item, and every merge copies locations with the values.

`LMap` and `LSeq` subclass `dict` and `list`, so the JSON-schema validator and the model
builder read them like plain data; they are treated as immutable once built (merges return
new containers).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from conveyor.spec.yamlpos import Document, SpecWarning, YamlPath, load_yaml

# Where `load_located` reports what it accepts with a warning (a key written twice). A context
# variable rather than a parameter, so every file read while loading one pipeline (the root
# file and each include, however they are found) reports to the same list.
_WARNINGS: ContextVar[list[SpecWarning] | None] = ContextVar("ci_load_warnings", default=None)


@contextmanager
def collecting_warnings() -> Iterator[list[SpecWarning]]:
    """The warnings of every file `load_located` reads inside the `with` block."""
    sink: list[SpecWarning] = []
    token = _WARNINGS.set(sink)
    try:
        yield sink
    finally:
        _WARNINGS.reset(token)


@dataclass(frozen=True, order=True)
class Loc:
    """A place in a file: the display name used in errors and the 1-based line."""

    file: str
    line: int


class LMap(dict[str, Any]):
    """A mapping with the location of the mapping itself and of each of its keys."""

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        self.key_locs: dict[str, Loc] = {}

    def put(self, key: str, value: Any, loc: Loc) -> None:
        self[key] = value
        self.key_locs[key] = loc

    def key_loc(self, key: str) -> Loc:
        return self.key_locs.get(key, self.loc)

    def without(self, *keys: str) -> LMap:
        out = LMap(self.loc)
        for key, value in self.items():
            if key not in keys:
                out.put(key, value, self.key_loc(key))
        return out

    def located_items(self) -> Iterator[tuple[str, Any, Loc]]:
        for key, value in self.items():
            yield key, value, self.key_loc(key)


class LSeq(list[Any]):
    """A sequence with the location of the sequence itself and of each item."""

    def __init__(self, loc: Loc, items: Iterable[tuple[Any, Loc]] = ()) -> None:
        super().__init__()
        self.loc = loc
        self.item_locs: list[Loc] = []
        for value, item_loc in items:
            self.add(value, item_loc)

    def add(self, value: Any, loc: Loc) -> None:
        self.append(value)
        self.item_locs.append(loc)

    def item_loc(self, index: int) -> Loc:
        return self.item_locs[index] if 0 <= index < len(self.item_locs) else self.loc

    def located_items(self) -> Iterator[tuple[Any, Loc]]:
        yield from zip(self, self.item_locs, strict=True)


@dataclass(frozen=True)
class Reference:
    """A `!reference [job, key, ...]` tag, resolved once includes and extends are merged."""

    path: tuple[str, ...]
    loc: Loc

    def render(self) -> str:
        return f"!reference [{', '.join(self.path)}]"


def load_located(text: str, file: str) -> Any:
    """Parse one GitLab CI YAML file (anchors, merge keys, `!reference`) into located data.

    A key written twice in a mapping keeps its last value, as GitLab's YAML loader (Psych)
    does; each one is a warning for `collecting_warnings`."""

    def reference(content: Any, line: int) -> Reference:
        # GitLab's tag takes a sequence of keys: `!reference [.setup, script]`.
        if not isinstance(content, list) or not content:
            raise ValueError("!reference must be a list of keys, like [.setup, script]")
        if not all(isinstance(part, str) and part for part in content):
            raise ValueError("!reference keys must be non-empty strings")
        return Reference(tuple(content), Loc(file, line))

    doc = load_yaml(text, file, tags={"!reference": reference}, duplicates="last")
    sink = _WARNINGS.get()
    if sink is not None:
        sink.extend(doc.warnings)
    return from_document(doc, file)


def from_document(doc: Document, file: str) -> Any:
    """Plain data from `load_yaml` as located containers (scalars stay as they are)."""

    def convert(value: Any, path: YamlPath) -> Any:
        if isinstance(value, dict):
            out = LMap(Loc(file, doc.line(path)))
            for key, item in value.items():
                out.put(key, convert(item, (*path, key)), Loc(file, doc.line((*path, key))))
            return out
        if isinstance(value, list):
            seq = LSeq(Loc(file, doc.line(path)))
            for index, item in enumerate(value):
                seq.add(convert(item, (*path, index)), Loc(file, doc.line((*path, index))))
            return seq
        return value

    return convert(doc.data, ())


def deep_merge(base: LMap, over: LMap) -> LMap:
    """GitLab's merge for includes and `extends`: mappings merge key by key, recursively;
    anything else (lists, scalars, `!reference` tags) in `over` replaces what `base` had."""
    out = LMap(over.loc)
    for key, value, loc in base.located_items():
        out.put(key, value, loc)
    for key, value, loc in over.located_items():
        current = out.get(key)
        if isinstance(current, LMap) and isinstance(value, LMap):
            out.put(key, deep_merge(current, value), loc)
        else:
            out.put(key, value, loc)
    return out


def locate(root: Any, path: YamlPath, default: Loc) -> Loc:
    """Where `path` was written, or its nearest ancestor that exists."""
    found = root.loc if isinstance(root, LMap | LSeq) else default
    node = root
    for part in path:
        if isinstance(node, LMap) and isinstance(part, str) and part in node:
            found = node.key_loc(part)
            node = node[part]
        elif isinstance(node, LSeq) and isinstance(part, int) and 0 <= part < len(node):
            found = node.item_loc(part)
            node = node[part]
        else:
            break
    return found


def as_located(value: Any, loc: Loc) -> Any:
    """Plain mappings and lists (an interpolation's result, entries not read from a file) as
    the located data the loader reads, placed at `loc`; located data keeps its own places."""
    if isinstance(value, LMap | LSeq):
        return value
    if isinstance(value, Mapping):
        out = LMap(loc)
        for key, item in value.items():
            out.put(str(key), as_located(item, loc), loc)
        return out
    if isinstance(value, list | tuple):
        return LSeq(loc, [(as_located(item, loc), loc) for item in value])
    return value
