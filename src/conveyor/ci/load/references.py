"""`!reference [job, key, ...]` resolution, then GitLab's flattening of nested lists.

GitLab resolves the tags after includes and `extends` are merged (its YAML tag resolver runs
on the extended document), so a reference sees the final content of the job it names, and a
tag inherited through `extends` is resolved in the extending job. A referenced section may
itself hold tags, up to ten levels deep.

A reference used as a list item yields a nested list. GitLab flattens nested lists in the
keywords documented for it (scripts, rules, needs, tags, stages) and in `cache` (a list of
caches, like `needs` and `rules`, is one of its ComposableArray entries), which also covers
YAML anchors used as items (`- *setup`, `- *common_caches`); elsewhere a nested list stays an
error. An empty (`~`) entry in `needs` (a job's or a rule's) is dropped, as GitLab's Needs
entry keeps only needs that have a type.
"""

from __future__ import annotations

from typing import Any

from conveyor.ci.load.located import LMap, LSeq, Reference
from conveyor.errors import SpecError, SpecErrors
from conveyor.spec.yamlpos import YamlPath, dotted

MAX_NESTING = 10
# Keywords whose value GitLab flattens when it holds nested lists.
_JOB_FLAT = frozenset(
    {"script", "before_script", "after_script", "rules", "needs", "tags", "cache"}
)
_TOP_FLAT = frozenset({"before_script", "after_script", "stages", "cache"})
_FLATTEN_DEPTH = 10  # GitLab's nesting limit for script arrays


def resolve_references(doc: LMap, keywords: frozenset[str]) -> LMap:
    """The document with every `!reference` replaced by what it names, lists flattened."""
    resolver = _Resolver(doc)
    resolved, _ = resolver.value(doc, (), ())
    if resolver.errors:
        # A tag reached through several others fails once per path: report it once.
        unique = {(e.file, e.line or 0, e.field, e.message): e for e in resolver.errors}
        errors = [unique[key] for key in sorted(unique)]
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    assert isinstance(resolved, LMap)  # a mapping stays a mapping
    return _flatten_document(resolved, keywords)


class _Resolver:
    """Replaces tags depth-first. Each value comes back with its nesting depth (the longest
    chain of tags it went through), so the ten-level limit does not depend on the order in
    which jobs are visited; resolved tags are cached by what they name."""

    def __init__(self, doc: LMap) -> None:
        self.doc = doc
        self.errors: list[SpecError] = []
        self.cache: dict[tuple[str, ...], tuple[Any, int]] = {}

    def value(self, value: Any, path: YamlPath, active: tuple[Reference, ...]) -> tuple[Any, int]:
        if isinstance(value, Reference):
            return self.reference(value, path, active)
        depth = 0
        if isinstance(value, LMap):
            out = LMap(value.loc)
            for key, item, loc in value.located_items():
                resolved, inner = self.value(item, (*path, key), active)
                out.put(key, resolved, loc)
                depth = max(depth, inner)
            return out, depth
        if isinstance(value, LSeq):
            seq = LSeq(value.loc)
            for index, (item, loc) in enumerate(value.located_items()):
                resolved, inner = self.value(item, (*path, index), active)
                seq.add(resolved, loc)
                depth = max(depth, inner)
            return seq, depth
        return value, 0

    def reference(
        self, ref: Reference, path: YamlPath, active: tuple[Reference, ...]
    ) -> tuple[Any, int]:
        def fail(message: str) -> tuple[Any, int]:
            self.errors.append(SpecError(ref.loc.file, ref.loc.line, dotted(path), message))
            return None, MAX_NESTING + 1  # callers above do not report the same problem

        if any(seen.path == ref.path for seen in active):
            loop = " -> ".join(f"[{', '.join(r.path)}]" for r in (*active, ref))
            return fail(f"circular !reference: {loop}")
        if ref.path not in self.cache:
            target: Any = self.doc
            for key in ref.path:
                if not isinstance(target, LMap) or key not in target:
                    return fail(f"{ref.render()} could not be found")
                target = target[key]
            resolved, inner = self.value(target, ref.path, (*active, ref))
            self.cache[ref.path] = (resolved, inner + 1)
        resolved, depth = self.cache[ref.path]
        if depth == MAX_NESTING + 1:  # report where the chain first goes over the limit
            return fail(f"{ref.render()} nests !reference tags more than {MAX_NESTING} levels")
        return resolved, depth


def _flatten_document(doc: LMap, keywords: frozenset[str]) -> LMap:
    out = LMap(doc.loc)
    for key, value, loc in doc.located_items():
        out.put(key, _flatten_top(key, value, keywords), loc)
    return out


def _flatten_top(key: str, value: Any, keywords: frozenset[str]) -> Any:
    if key in _TOP_FLAT and isinstance(value, LSeq):
        return _flat(value)
    if key == "workflow" and isinstance(value, LMap):
        return _flatten_keys(value, frozenset({"rules"}))
    if (key not in keywords or key == "default") and isinstance(value, LMap):
        return _flatten_keys(value, _JOB_FLAT)
    return value


def _flatten_keys(job: LMap, keys: frozenset[str]) -> LMap:
    out = LMap(job.loc)
    for key, value, loc in job.located_items():
        if key == "needs" and key in keys and isinstance(value, LSeq):
            out.put(key, _flat(value, drop_empty=True), loc)
        elif key == "rules" and key in keys and isinstance(value, LSeq):
            out.put(key, _flat_rules(_flat(value)), loc)
        elif key in keys and isinstance(value, LSeq):
            out.put(key, _flat(value), loc)
        elif key == "hooks" and isinstance(value, LMap):
            out.put(key, _flatten_keys(value, frozenset({"pre_get_sources_script"})), loc)
        else:
            out.put(key, value, loc)
    return out


def _flat_rules(rules: LSeq) -> LSeq:
    """Rules with each rule's own `needs` flattened, as a job's are."""
    out = LSeq(rules.loc)
    for rule, loc in rules.located_items():
        out.add(_flatten_keys(rule, frozenset({"needs"})) if isinstance(rule, LMap) else rule, loc)
    return out


def _flat(seq: LSeq, depth: int = 0, drop_empty: bool = False) -> LSeq:
    out = LSeq(seq.loc)
    for item, loc in seq.located_items():
        if isinstance(item, LSeq) and depth < _FLATTEN_DEPTH:
            for inner, inner_loc in _flat(item, depth + 1, drop_empty).located_items():
                out.add(inner, inner_loc)
        elif item is not None or not drop_empty:
            out.add(item, loc)
    return out
