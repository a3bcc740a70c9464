"""YAML loading that remembers the line of every mapping key and sequence item.

PyYAML's constructed objects forget where they came from, so we walk the composed node
graph ourselves: errors found later (schema, model, semantics) can then point at the exact
`file:line` a person has to edit. Keys are kept as their literal text, because Compose keys
are strings even when they look like numbers or booleans (`80:`, `on:`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from conveyor.errors import SpecError, SpecErrors
from conveyor.spec.yaml12 import resolve_plain

YamlKey = str | int
YamlPath = tuple[YamlKey, ...]
# Builds the value of a custom-tagged node (`!reference [job, key]` in GitLab CI) from its
# untagged content and line. A ValueError becomes a SpecError at the tag's line.
TagFactory = Callable[[Any, int], Any]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
# Scalars we hand on as constructed; anything else (timestamps, binary) stays as its text,
# since Compose treats those values as plain strings.
_PLAIN = (str, int, float, bool, type(None))
# What a key written twice in one mapping means: an error (Compose, whose reference loader
# refuses it), or the last value wins with a warning (GitLab CI, whose YAML loader keeps it).
Duplicates = Literal["error", "last"]
# Which YAML the file is written in: Compose reads YAML 1.2 (Go's yaml.v3, `spec.yaml12`),
# GitLab reads YAML 1.1 (Ruby's Psych), where `on:` and `no` are booleans.
YamlVersion = Literal["1.1", "1.2"]

# Limits that keep a hostile or broken file from hanging the loader or taking the machine's
# memory. Real files stay far below them: Compose files of popular apps nest under 10 levels
# and hold a few thousand values; GitLab refuses CI files nested deeper than 100 levels.
MAX_DEPTH = 100
MAX_VALUES = 100_000  # values once aliases are expanded: "billion laughs" stops here
MAX_BYTES = 8 * 1024 * 1024

_PLAIN_TAG = "tag:conveyor,2024:plain"  # an untagged, unquoted scalar: resolved by yaml12
_STR_TAG = "tag:yaml.org,2002:str"
_CORE_TAGS = {
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
    "tag:yaml.org,2002:bool": bool,
    "tag:yaml.org,2002:null": type(None),
}


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Limited(yaml.SafeLoader):
    """PyYAML's composer recurses once per nesting level: refuse a file nested past
    MAX_DEPTH before Python's own recursion limit turns it into a traceback."""

    _depth = 0

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # Line of each sequence item written as an alias, by (id of the list node, index):
        # the composed node is the anchored one, whose own line is where the anchor is.
        self.alias_lines: dict[tuple[int, int], int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            if isinstance(index, int) and parent is not None:
                event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in stubs
                self.alias_lines[(id(parent), index)] = int(event.start_mark.line) + 1
            return super().compose_node(parent, index)  # an alias adds no nesting here
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in stubs
                raise _TooDeep(int(event.start_mark.line) + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Yaml11Loader(_Limited):
    pass


class _Yaml12Loader(_Limited):
    """Resolves no scalar itself: every plain scalar is tagged for `yaml12.resolve_plain`."""


_Yaml12Loader.yaml_implicit_resolvers = {}
_Yaml12Loader.add_implicit_resolver(_MERGE_TAG, re.compile(r"^<<$"), ["<"])
_Yaml12Loader.add_implicit_resolver(_PLAIN_TAG, re.compile(r".*", re.DOTALL), None)
_LOADERS: dict[YamlVersion, type[_Limited]] = {"1.1": _Yaml11Loader, "1.2": _Yaml12Loader}


def dotted(path: YamlPath) -> str:
    """`("services", "web", "ports", 0)` -> `services.web.ports[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class SpecWarning:
    """Something accepted that a person probably did not mean; renders like a SpecError."""

    file: str
    line: int | None
    field: str
    message: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


@dataclass(frozen=True)
class Document:
    """A loaded YAML document: plain Python data plus the line of every key and item."""

    data: Any
    lines: Mapping[YamlPath, int]
    warnings: tuple[SpecWarning, ...] = ()
    # Paths written with a marker tag (`!reset`, `!override`: Compose's merge instructions).
    tags: Mapping[YamlPath, str] = field(default_factory=dict)
    # For a document merged from several files: the file of each path whose line is in
    # another file than the document's own (`where` falls back to None: the own file).
    files: Mapping[YamlPath, str] = field(default_factory=dict)

    def line(self, path: YamlPath) -> int:
        """Line of `path`, or of its nearest ancestor that exists in the file."""
        return self.where(path)[1]

    def where(self, path: YamlPath) -> tuple[str | None, int]:
        """(file, line) of `path` or of its nearest ancestor written in a file; the file is
        None when it is the document's own."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return self.files.get(path[:end]), found
        return None, 1

    def has(self, path: YamlPath) -> bool:
        return path in self.lines


class _Walker:
    """Turns composed nodes into data, recording lines and duplicate keys on the way."""

    def __init__(
        self,
        loader: _Limited,
        file: str,
        tags: Mapping[str, TagFactory] | None = None,
        duplicates: Duplicates = "error",
        markers: frozenset[str] = frozenset(),
    ) -> None:
        self.loader = loader
        self.markers = markers
        self.marked: dict[YamlPath, str] = {}
        self.file = file
        self.tags: Mapping[str, TagFactory] = tags or {}
        self.duplicates = duplicates
        self.lines: dict[YamlPath, int] = {}
        self.errors: list[SpecError] = []
        self.warnings: list[SpecWarning] = []
        self._active: set[int] = set()  # node ids on the current branch, to stop alias loops
        self._walked: set[int] = set()  # node ids met before: meeting one again is an alias
        self._aliases: list[YamlPath] = []  # where the aliases on the current branch are used
        self._count = 0

    def value(self, node: Node, path: YamlPath) -> Any:
        if id(node) in self._active:
            raise SpecError(self.file, _line(node), dotted(path), "recursive YAML alias")
        self._limit(node, path)
        alias = id(node) in self._walked
        if alias:
            self._aliases.append(path)
        self._walked.add(id(node))
        self._active.add(id(node))
        try:
            if node.tag in self.markers:
                self.marked[path] = node.tag
                return self._untagged(node, path)
            factory = self.tags.get(node.tag)
            if factory is not None:
                return self._tagged(node, path, factory)
            if isinstance(node, MappingNode | SequenceNode) and node.tag not in _COLLECTION_TAGS:
                # Compose override tags (`!reset`, `!override`) need file merging, which
                # Conveyor does not do: say so rather than load the value as if untagged.
                raise SpecError(
                    self.file, _line(node), dotted(path), f"unsupported YAML tag '{node.tag}'"
                )
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))
            if alias:
                self._aliases.pop()

    def _untagged(self, node: Node, path: YamlPath) -> Any:
        """A marker-tagged node's value, read as if it had no tag."""
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return self._sequence(node, path)
        plain = isinstance(node, ScalarNode) and node.style is None
        if plain and isinstance(self.loader, _Yaml12Loader):
            return resolve_plain(str(node.value))
        return str(node.value) if not plain or node.value else None

    def _limit(self, node: Node, path: YamlPath) -> None:
        """Aliases may nest and repeat what they point at: count what they expand to."""
        self._count += 1
        if self._count <= MAX_VALUES and len(path) <= MAX_DEPTH:
            return
        # Point at the outermost alias being expanded: the place a person wrote it.
        at = self._aliases[0] if self._aliases else path
        line = self.lines.get(at, _line(node))
        if self._count > MAX_VALUES:
            message = (
                f"more than {MAX_VALUES} values once YAML aliases are expanded "
                "(aliases repeating aliases: an alias bomb?)"
            )
        else:
            message = f"nested deeper than {MAX_DEPTH} levels once YAML aliases are expanded"
        raise SpecError(self.file, line, dotted(at), message)

    def _sequence(self, node: SequenceNode, path: YamlPath) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = self.loader.alias_lines.get((id(node), index), _line(item))
            items.append(self.value(item, (*path, index)))
        return items

    def _tagged(self, node: Node, path: YamlPath, factory: TagFactory) -> Any:
        if isinstance(node, MappingNode):
            content: Any = self._mapping(node, path)
        elif isinstance(node, SequenceNode):
            content = self._sequence(node, path)
        else:
            content = str(node.value)  # the text as written: the tag decides what it means
        try:
            return factory(content, _line(node))
        except ValueError as exc:
            raise SpecError(self.file, _line(node), dotted(path), str(exc)) from None

    def _scalar(self, node: Node, path: YamlPath) -> Any:
        if node.tag == _PLAIN_TAG:
            return resolve_plain(str(node.value))
        wanted = _CORE_TAGS.get(node.tag) if isinstance(self.loader, _Yaml12Loader) else None
        if wanted is not None:  # `!!int 5`: a standard tag read with the 1.2 core rules
            value = resolve_plain(str(node.value))
            if type(value) is not wanted and not (wanted is float and type(value) is int):
                message = f"'{node.value}' is not a valid {node.tag.rsplit(':', 1)[-1]}"
                raise SpecError(self.file, _line(node), dotted(path), message)
            return float(value) if wanted is float and isinstance(value, int) else value
        if node.tag == _STR_TAG:
            return str(node.value)
        try:
            constructed = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:  # an unknown tag on a scalar
            raise SpecError(
                self.file, _line(node), dotted(path), f"unsupported YAML tag '{node.tag}'"
            ) from exc
        if isinstance(constructed, _PLAIN):
            return constructed
        return str(node.value)

    def _duplicate(self, path: YamlPath, key: str, line: int, first: int) -> bool:
        """Report a key written again on `line`; whether this later value replaces the first."""
        if self.duplicates == "error":
            message = f"duplicate key '{key}' (first defined on line {first})"
            self.errors.append(SpecError(self.file, line, dotted(path), message))
            return False
        message = f"duplicate key '{key}': this value replaces the one on line {first}"
        self.warnings.append(
            SpecWarning(self.file, line, dotted(path), f"{message} (the last one wins)")
        )
        # Lines under the replaced value must not outlive it.
        depth = len(path) + 1
        for sub in [p for p in self.lines if len(p) >= depth and p[:depth] == (*path, key)]:
            del self.lines[sub]
        return True

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise SpecError(
                    self.file, _line(key_node), dotted(path), "mapping keys must be plain scalars"
                )
            key = str(key_node.value)
            line = _line(key_node)
            if key in first_line and not self._duplicate(path, key, line, first_line[key]):
                continue
            first_line[key] = line
            self.lines[(*path, key)] = line
            out[key] = self.value(value_node, (*path, key))
        # `<<: *anchor` fills in only the keys the mapping does not set itself (YAML merge).
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise SpecError(
                        self.file, _line(source), dotted(path), "'<<' must merge a mapping"
                    )
                # Walk the source into scratch lines so keys this mapping overrides keep
                # their own lines; merged keys point at the anchor where they are written.
                own_lines, self.lines = self.lines, {}
                try:
                    merged = self._mapping(source, path)
                finally:
                    scratch, self.lines = self.lines, own_lines
                taken = {key for key in merged if key not in out}
                for key in taken:
                    out[key] = merged[key]
                for sub, line in scratch.items():
                    if sub[len(path)] in taken:
                        self.lines[sub] = line
        return out


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def load_yaml(
    text: str,
    file: str,
    tags: Mapping[str, TagFactory] | None = None,
    duplicates: Duplicates = "error",
    version: YamlVersion = "1.1",
    markers: frozenset[str] = frozenset(),
) -> Document:
    """Parse one YAML document. Raises SpecError/SpecErrors with lines for any problem.

    `tags` maps custom tags to factories; any other non-standard tag stays an error.
    `duplicates` says whether a key written twice in a mapping is an error or a warning (the
    last value wins), in `Document.warnings`. `version` picks how plain scalars read (1.2:
    Compose's rules). `markers` are tags whose node loads as if untagged, its path kept in
    `Document.tags`. Files past the limits above are refused, never half-loaded.
    """
    if len(text) > MAX_BYTES:
        raise SpecError(file, None, "", f"larger than {MAX_BYTES // 1024 // 1024} MiB")
    try:
        loader = _LOADERS[version](text)
    except yaml.reader.ReaderError as exc:  # a control character: the reader checks first
        raise _reader_error(exc, text, file) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(exc, file) from None
        except _TooDeep as exc:
            raise SpecError(
                file, exc.line, "", f"invalid YAML: nested deeper than {MAX_DEPTH} levels"
            ) from None
        except yaml.YAMLError as exc:
            raise SpecError(file, None, "", f"invalid YAML: {exc}") from None
        if root is None:
            return Document(None, {})
        walker = _Walker(loader, file, tags, duplicates, markers)
        data = walker.value(root, ())
        walker.lines[()] = _line(root)
    finally:
        loader.dispose()
    # A duplicate inside an anchor is met again at every `<<` merging it: report it once.
    unique: dict[tuple[int | None, str], SpecError] = {}
    for error in walker.errors:
        unique.setdefault((error.line, error.message), error)
    errors = list(unique.values())
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(sorted(errors, key=lambda e: e.line or 0))
    warnings = {(w.line, w.message): w for w in walker.warnings}
    ordered = tuple(sorted(warnings.values(), key=lambda w: w.line or 0))
    return Document(data, walker.lines, ordered, walker.marked)


def split_documents(text: str) -> list[str]:
    """The documents of a YAML stream (`---` separated), each as a text that `load_yaml` reads
    alone: what comes before the document is replaced by as many line breaks and spaces, so
    lines and columns in errors stay those of the whole file. A stream that stops parsing
    keeps the broken part as its last document, whose loading reports the error."""
    bounds: list[tuple[_Start, int]] = []
    start: _Start | None = None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            mark = event.start_mark
            if isinstance(event, yaml.DocumentStartEvent) and mark is not None:
                start = _Start(mark.index, mark.line, mark.column)
            elif isinstance(event, yaml.DocumentEndEvent) and start is not None:
                end = event.end_mark
                bounds.append((start, len(text) if end is None else end.index))
                start = None
    except yaml.YAMLError:
        # From the start of the broken document (or the end of the last good one) on.
        if start is None:
            start = _Start.at(text, bounds[-1][1] if bounds else 0)
        bounds.append((start, len(text)))
    return [
        "\n" * begin.line + " " * begin.column + text[begin.index : end] for begin, end in bounds
    ]


@dataclass(frozen=True)
class _Start:
    index: int
    line: int  # 0-based, as PyYAML counts
    column: int

    @classmethod
    def at(cls, text: str, index: int) -> _Start:
        return cls(index, text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1))


def _reader_error(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecError:
    """PyYAML's reader names an offset; people need the line (and the character's code)."""
    position = int(exc.position)
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
    return SpecError(
        file,
        line,
        "",
        f"invalid YAML: control character U+{code:04X} is not allowed (column {column}); "
        "write it as an escape inside double quotes",
    )


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    if exc.context and problem.startswith("but "):
        # PyYAML splits some messages in two ("expected a single document…", "but found…").
        problem = f"{exc.context}, {problem}"
    if mark is None:
        return SpecError(file, None, "", f"invalid YAML: {problem}")
    opened = exc.context_mark
    at_end = "<stream end>" in problem or "end of stream" in problem
    if at_end and exc.context and opened is not None:
        # The end of the file is not where the mistake is: point at what was left open.
        what = exc.context.removeprefix("while parsing ").removeprefix("while scanning ")
        return SpecError(
            file,
            opened.line + 1,
            "",
            f"invalid YAML: {what} opened at column {opened.column + 1} is never closed",
        )
    return SpecError(file, mark.line + 1, "", f"invalid YAML: {problem} (column {mark.column + 1})")
