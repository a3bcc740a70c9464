"""`null` means "not set", as GitLab reads it.

GitLab builds each keyword of a job (and of `default:`, `workflow:` and the top level) from
its value, and a `null` value makes that keyword *unspecified*, exactly as if it were not
written (its config Factory: "We assume that unspecified entry is undefined"). Since
`extends` and `include` merges copy the `null` over what a parent or an included file set,
`parallel: null`, `variables: null`, `cache: null`, `needs: null`, `rules: null`… remove a
keyword inherited that way. A job keyword left unspecified still takes `default:`'s value, as
any keyword the job does not set (`inherit: default:` is how a job refuses a default).

Only whole keywords are dropped; a `null` inside a keyword's value stays for the schema to
judge, as GitLab's entries do.
"""

from __future__ import annotations

from typing import Any

from conveyor.ci.load.located import LMap

# Top-level keywords whose value is itself a mapping of keywords.
_SECTIONS = frozenset({"default", "workflow"})


def drop_nulls(doc: LMap, keywords: frozenset[str]) -> LMap:
    """The merged document without the keywords set to `null`: at the top level, in
    `default:` and `workflow:`, and in every job (hidden ones included)."""
    out = LMap(doc.loc)
    for key, value, loc in doc.located_items():
        if key in keywords:
            if value is None:
                continue
            out.put(key, _without_nulls(value) if key in _SECTIONS else value, loc)
        else:  # a job: a null job stays, for the schema to say a job is a mapping
            out.put(key, _without_nulls(value), loc)
    return out


def _without_nulls(value: Any) -> Any:
    if not isinstance(value, LMap):
        return value
    return value.without(*(key for key, item in value.items() if item is None))
