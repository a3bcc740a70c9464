"""CI/CD variables as GitLab defines them: expansion and precedence.

- `expand` replaces `$VAR` and `${VAR}` the way a job finally sees a value (unknown names become
  empty, `$$` is a literal `$`); `expand_existing` leaves unknown names as written, which is
  what GitLab does for `rules:changes` and `rules:exists` paths.
- `expand_all` resolves variables that reference each other, in dependency order, honouring
  `expand: false` (raw) variables.
- `merge_precedence` merges variable layers in GitLab's documented precedence, encoded once in
  `PRECEDENCE`.

The predefined variables (CI_COMMIT_*, CI_JOB_*, CI_ENVIRONMENT_*) are in `predefined`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from enum import StrEnum

from conveyor.model.pipeline import Variable

__all__ = [
    "PRECEDENCE",
    "Layer",
    "expand",
    "expand_all",
    "expand_existing",
    "merge_precedence",
    "references",
    "slugify",
    "split_yaml",
]

# --- expansion -------------------------------------------------------------------------------

# GitLab's runner-side syntax: `$$` escapes, names start with a letter or underscore.
_REFERENCE = re.compile(r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# GitLab's server-side `expand_existing` pattern (no `$$` escape, digits may lead).
_EXISTING = re.compile(r"\$([A-Za-z0-9_]+)|\$\{([A-Za-z0-9_]+)\}")


def expand(value: str, variables: Mapping[str, str]) -> str:
    """Replace `$VAR`/`${VAR}` with their values (unknown: empty); `$$` becomes `$`."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        return "$" if name is None else variables.get(name, "")

    return _REFERENCE.sub(replace, value)


def expand_existing(value: str, variables: Mapping[str, str]) -> str:
    """Replace only the references whose variable exists; leave the rest as written."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        return variables.get(name, found.group())

    return _EXISTING.sub(replace, value)


def references(value: str) -> set[str]:
    """Names a value refers to (`$$` is an escape, not a reference)."""
    return {m.group(1) or m.group(2) for m in _REFERENCE.finditer(value) if m.group() != "$$"}


def expand_all(variables: Mapping[str, str], raw: Collection[str] = ()) -> dict[str, str]:
    """Resolve variables that reference each other, like GitLab before a job starts.

    Each value is expanded after the variables it references. `raw` names (`expand: false`)
    keep their text, `$` included, and are inserted as-is where referenced. A variable on a
    reference cycle keeps its unexpanded value (GitLab reports the cycle and leaves values
    unexpanded); variables that merely reference a cyclic one get its unexpanded text."""
    pending = {
        name: references(value) & variables.keys()
        for name, value in variables.items()
        if name not in raw
    }
    done: dict[str, str] = {name: variables[name] for name in variables if name in raw}
    while pending:
        ready = [name for name, needs in pending.items() if needs <= done.keys()]
        if not ready:
            ready = _on_cycle(pending)
            done.update({name: variables[name] for name in ready})
        else:
            done.update({name: expand(variables[name], done) for name in ready})
        for name in ready:
            del pending[name]
    return {name: done[name] for name in variables}


def _on_cycle(pending: Mapping[str, set[str]]) -> list[str]:
    """Names among `pending` that can reach themselves through other pending names."""
    cyclic = []
    for start in pending:
        seen: set[str] = set()
        stack = [n for n in pending[start] if n in pending]
        while stack:
            name = stack.pop()
            if name == start:
                cyclic.append(start)
                break
            if name not in seen:
                seen.add(name)
                stack.extend(n for n in pending[name] if n in pending)
    return cyclic


def split_yaml(variables: Mapping[str, Variable]) -> tuple[dict[str, str], set[str]]:
    """A `.gitlab-ci.yml` variables block as plain values plus the names with `expand: false`."""
    values = {name: var.value for name, var in variables.items()}
    return values, {name for name, var in variables.items() if not var.expand}


def slugify(text: str) -> str:
    """GitLab's slug (CI_COMMIT_REF_SLUG, CI_JOB_NAME_SLUG, CI_PROJECT_PATH_SLUG): lowercase,
    every character outside a-z and 0-9 replaced by `-`, cut to 63 characters, and only then
    stripped of leading and trailing `-` (so a slug can be shorter than 63)."""
    replaced = re.sub(r"[^a-z0-9]", "-", text.lower())[:63]
    return replaced.strip("-")


# --- precedence ------------------------------------------------------------------------------


class Layer(StrEnum):
    """Where a variable comes from, listed from lowest to highest precedence.

    GitLab documents (https://docs.gitlab.com/ee/ci/variables/#cicd-variable-precedence), from
    highest: pipeline execution policy variables; scan execution policy variables; pipeline
    variables (trigger, schedule, manual run, API, and Conveyor's CLI `--var`, which all share
    one rank); project; group; instance; dotenv report variables; job variables in the YAML;
    top-level YAML variables; deployment variables; predefined variables.

    Inside the YAML ranks GitLab's pipeline code adds: `workflow:rules:variables` override
    top-level variables (they are merged into them), `parallel:matrix` values override the job's
    own variables of the same name (they are merged into the job), and the matched rule's
    `rules:variables` override both (Seed::Build merges them last)."""

    PREDEFINED = "predefined"
    DEPLOYMENT = "deployment"
    YAML_GLOBAL = "yaml_global"
    WORKFLOW_RULES = "workflow_rules"
    YAML_JOB = "yaml_job"
    MATRIX = "matrix"
    RULES = "rules"
    DOTENV = "dotenv"
    INSTANCE = "instance"
    GROUP = "group"
    PROJECT = "project"
    PIPELINE = "pipeline"
    SCAN_POLICY = "scan_policy"
    PIPELINE_POLICY = "pipeline_policy"


PRECEDENCE: tuple[Layer, ...] = tuple(Layer)  # lowest first: later layers win


def merge_precedence(layers: Mapping[Layer, Mapping[str, str]]) -> dict[str, str]:
    """Merge layers so a variable from a higher-precedence layer wins. Missing layers are fine."""
    merged: dict[str, str] = {}
    for layer in PRECEDENCE:
        merged.update(layers.get(layer, {}))
    return merged
