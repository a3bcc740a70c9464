"""`extends:` as GitLab resolves it, after includes are merged and before `!reference`.

A job (hidden `.template` or visible) takes one parent or a list; parents are resolved first
(multi-level). The merge is GitLab's: mappings merge key by key, recursively (so `variables`
merge variable by variable); lists and scalars from the extending side replace the parent's;
with several parents, later parents override earlier ones and the job overrides them all.
GitLab allows eleven levels of inheritance; more is an error, so is a cycle or an unknown
parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.ci.load.located import LMap, LSeq, deep_merge
from conveyor.errors import SpecError, SpecErrors
from conveyor.spec.values import suggest

MAX_LEVELS = 11


def apply_extends(doc: LMap, keywords: frozenset[str]) -> LMap:
    """The document with every `extends` merged in. Raises SpecError(s) for bad parents."""
    resolver = _Resolver(doc, keywords)
    out = LMap(doc.loc)
    for key, value, loc in doc.located_items():
        if key not in keywords and isinstance(value, LMap):
            out.put(key, resolver.resolve(key), loc)
        else:
            out.put(key, value, loc)
    errors = sorted(resolver.errors, key=lambda e: (e.file, e.line or 0, e.field))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)
    return out


@dataclass
class _Resolver:
    doc: LMap
    keywords: frozenset[str]
    done: dict[str, LMap] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)  # longest extends chain below a job
    deepest: dict[str, tuple[str, ...]] = field(default_factory=dict)  # that chain
    stack: list[str] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    cycles: set[frozenset[str]] = field(default_factory=set)

    def resolve(self, name: str) -> LMap:
        if name in self.done:
            return self.done[name]
        job: LMap = self.doc[name]
        parents = self._parents(name, job)
        self.stack.append(name)
        merged: LMap | None = None
        level, parent_too_deep = 0, False
        chain: tuple[str, ...] = (name,)
        for parent in parents:
            base = self._base(name, job, parent)
            if base is None:
                continue
            merged = base if merged is None else deep_merge(merged, base)
            if self.levels[parent] + 1 > level:
                level, chain = self.levels[parent] + 1, (name, *self.deepest[parent])
            parent_too_deep = parent_too_deep or self.levels[parent] > MAX_LEVELS
        self.stack.pop()
        self.levels[name], self.deepest[name] = level, chain
        if level > MAX_LEVELS and not parent_too_deep:  # report once, where it goes over
            message = f"more than {MAX_LEVELS} levels of extends: {' -> '.join(chain)}"
            self._error(name, job, message)
        result = job if merged is None else deep_merge(merged, job)
        self.done[name] = result
        return result

    def _parents(self, name: str, job: LMap) -> list[str]:
        written = job.get("extends")
        if written is None:
            return []
        if isinstance(written, str):
            return [written]
        if isinstance(written, LSeq) and all(isinstance(p, str) for p in written):  # [] too
            return list(written)
        self._error(name, job, "must be a job name or a list of job names")
        return []

    def _base(self, name: str, job: LMap, parent: str) -> LMap | None:
        if parent in self.stack or parent == name:
            loop = [*self.stack[self.stack.index(parent) :], parent]
            if frozenset(loop) not in self.cycles:
                self.cycles.add(frozenset(loop))
                self._error(name, job, f"circular extends: {' -> '.join(loop)}")
            return None
        if parent in self.keywords:
            self._error(name, job, f"'{parent}' is a keyword, not a job")
            return None
        if parent not in self.doc:
            candidates = [k for k in self.doc if k not in self.keywords and k != name]
            self._error(name, job, f"'{parent}' is not defined{suggest(parent, candidates)}")
            return None
        if not isinstance(self.doc[parent], LMap):
            self._error(name, job, f"'{parent}' is not a job (a mapping), it cannot be extended")
            return None
        return self.resolve(parent)

    def _error(self, name: str, job: LMap, message: str) -> None:
        loc = job.key_loc("extends")
        self.errors.append(SpecError(loc.file, loc.line, f"{name}.extends", message))
