"""`$[[ inputs.name | function | ... ]]` blocks, replaced the way GitLab replaces them.

GitLab interpolates a file's configuration after parsing it, in every string, keys included:

- a string that is exactly one block becomes the value itself, with its type (a number, a
  boolean, a list, a mapping); a list item that becomes a list is spliced into its list;
- anywhere else a block is replaced by the value's text (`true`, `3`, `["a", "b"]`);
- `inputs.NAME` reads an input, `component.FIELD` a component's `name`, `sha`, `version` or
  `reference` when the header's `spec:component` lists it;
- at most three functions, applied in order: `expand_vars` (the variables known when the
  configuration is read; masked ones are refused; no nested expansion), `truncate(OFFSET,
  LENGTH)`, `posix_escape` (also spelled `posix_quote`: quoted for a POSIX shell), `split('SEP')`
  (a list of the non-empty, stripped parts).

Errors are GitLab's messages ("unknown interpolation key: `nmae`") at the file, line and field
of the string holding the block.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.ci.load.inputs import ruby_text
from conveyor.ci.load.located import LMap, Loc, LSeq, as_located
from conveyor.ci.select.variables import expand_existing
from conveyor.spec.yamlpos import YamlPath, dotted

_BLOCK = re.compile(r"\$\[\[\s*(\S.*?\S)\s*\]\]")
MAX_FUNCTIONS = 3
MAX_ACCESS_OBJECTS = 5
MAX_ACCESS_BYTES = 1024


class InterpolationError(ValueError):
    """A block GitLab would refuse: `message` is GitLab's, `loc`/`path` where it is."""

    def __init__(self, message: str, loc: Loc, path: YamlPath) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.field = dotted(path)


class _Failure(ValueError):
    """A block's error before it is placed in the file."""


class Interpolator:
    """Replaces the blocks of one file's configuration. `context` maps `inputs` and
    `component` to their values; `variables` and `masked` serve `expand_vars`."""

    def __init__(
        self,
        context: Mapping[str, Mapping[str, Any]],
        variables: Mapping[str, str],
        masked: frozenset[str],
    ) -> None:
        self.context = context
        self.variables = variables
        self.masked = masked
        self._blocks: dict[str, Any] = {}

    def interpolate(self, content: Any, loc: Loc) -> Any:
        return self._node(content, loc, ())

    def _node(self, node: Any, loc: Loc, path: YamlPath) -> Any:
        if isinstance(node, LMap):
            out = LMap(node.loc)
            for key, value, key_loc in node.located_items():
                new_key = ruby_text(self._node(key, key_loc, path))
                out.put(new_key, self._node(value, key_loc, (*path, new_key)), key_loc)
            return out
        if isinstance(node, LSeq):
            seq = LSeq(node.loc)
            for index, (item, item_loc) in enumerate(node.located_items()):
                new = self._node(item, item_loc, (*path, index))
                if isinstance(item, str) and isinstance(new, list):
                    locs = new.item_locs if isinstance(new, LSeq) else [item_loc] * len(new)
                    for spliced, spliced_loc in zip(new, locs, strict=True):
                        seq.add(spliced, spliced_loc)
                else:
                    seq.add(new, item_loc)
            return seq
        if isinstance(node, str) and "$[[" in node:
            try:
                return as_located(self._string(node), loc)
            except _Failure as exc:
                raise InterpolationError(str(exc), loc, path) from None
        return node

    def _string(self, text: str) -> Any:
        found = list(_BLOCK.finditer(text))
        if not found:
            return text
        if len(found) == 1 and found[0].group() == text:
            return self._block(found[0])
        return _BLOCK.sub(lambda m: ruby_text(self._block(m)), text)

    def _block(self, match: re.Match[str]) -> Any:
        if match.group() not in self._blocks:
            self._blocks[match.group()] = self._evaluate(match.group(1))
        return self._blocks[match.group()]

    def _evaluate(self, data: str) -> Any:
        access, *functions = (part.strip() for part in data.split("|"))
        value = self._access(access)
        if len(functions) > MAX_FUNCTIONS:
            raise _Failure("too many functions in interpolation block")
        for expression in functions:
            value = self._function(expression)(value)
        return value

    def _access(self, access: str) -> Any:
        objects = access.split(".", MAX_ACCESS_OBJECTS - 1)
        if len(objects) <= 1:
            raise _Failure("invalid interpolation access pattern")
        if len(access.encode()) > MAX_ACCESS_BYTES:
            raise _Failure("maximum interpolation expression size exceeded")
        value: Any = self.context
        for key in objects:
            if not isinstance(value, Mapping) or key not in value:
                raise _Failure(f"unknown interpolation key: `{key}`")
            value = value[key]
        return value

    def _function(self, expression: str) -> Callable[[Any], Any]:
        for pattern, build in _FUNCTIONS:
            found = pattern.fullmatch(expression)
            if found:
                return build(self, found)
        raise _Failure(
            f"no function matching `{expression}`: check that the function name, arguments, "
            "and types are correct"
        )

    def expand_vars(self, value: str) -> str:
        visible = {k: v for k, v in self.variables.items() if k not in self.masked}
        expanded = expand_existing(value, self.variables)
        if expanded != expand_existing(value, visible):
            raise _Failure(
                "error in `expand_vars` function: variable expansion error: masked variables "
                "cannot be expanded"
            )
        return expanded


def _string_only(name: str, apply: Callable[[str], Any]) -> Callable[[Any], Any]:
    def run(value: Any) -> Any:
        if not isinstance(value, str):
            raise _Failure(
                f"error in `{name}` function: invalid input type: {name} can only be used "
                "with string inputs"
            )
        return apply(value)

    return run


def posix_escape(text: str) -> str:
    """Ruby's `Shellwords.shellescape`: a word a POSIX shell reads back as `text`."""
    if not text:
        return "''"
    escaped = re.sub(r"([^A-Za-z0-9_\-.,:+/@\n])", r"\\\1", text)
    return escaped.replace("\n", "'\n'")


def _split(separator: str) -> Callable[[str], Any]:
    def run(text: str) -> Any:
        if not separator:
            raise _Failure("error in `split` function: invalid argument: separator cannot be empty")
        return [part.strip() for part in text.split(separator) if part.strip()]

    return run


_FunctionBuilder = Callable[[Interpolator, re.Match[str]], Callable[[Any], Any]]
# GitLab's patterns; truncate's closing parenthesis is optional there too.
_FUNCTIONS: tuple[tuple[re.Pattern[str], _FunctionBuilder], ...] = (
    (
        re.compile(r"truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)?"),
        lambda _, m: _string_only("truncate", lambda s: s[int(m[1]) : int(m[1]) + int(m[2])]),
    ),
    (re.compile(r"expand_vars"), lambda i, _: _string_only("expand_vars", i.expand_vars)),
    (re.compile(r"posix_escape"), lambda _, __: _string_only("posix_escape", posix_escape)),
    (re.compile(r"posix_quote"), lambda _, __: _string_only("posix_quote", posix_escape)),
    (re.compile(r"split\('([^']*)'\)"), lambda _, m: _string_only("split", _split(m[1]))),
)
