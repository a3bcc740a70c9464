"""`load_pipeline`: `.gitlab-ci.yml` to `PipelineSpec`, in GitLab's order of operations.

GitLab builds a pipeline configuration in this order, and so do we, because each step sees
the result of the previous one:

1. parse the YAML (anchors, merge keys, `!reference` tags kept as tags);
2. expand `include:` (files merged in order, the including file on top);
3. resolve `extends:`;
4. resolve `!reference` tags (and flatten nested script/rules/needs lists);
5. validate against GitLab's schema, then GitLab's semantic rules;
6. apply `default:` / `inherit:` and build the model (`.pre`/`.post` stages added).

Every step reports problems as `file:line: field: message`, the line being where the value
was written, in whichever file that is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conveyor.ci.load.build import build_pipeline
from conveyor.ci.load.extends import apply_extends
from conveyor.ci.load.includes import expand_includes
from conveyor.ci.load.located import LMap, load_located
from conveyor.ci.load.references import resolve_references
from conveyor.ci.load.schema import global_keywords, validate
from conveyor.ci.load.semantic import check
from conveyor.errors import SpecError, SpecErrors
from conveyor.model.pipeline import PipelineSpec


def load_pipeline(path: Path, projects: Mapping[str, Path] | None = None) -> PipelineSpec:
    """Load a `.gitlab-ci.yml`. `projects` maps GitLab project paths ("group/lib") to local
    git repositories, for `include: project:`. Raises SpecError or SpecErrors."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(file, None, "", f"cannot read the file: {exc.strerror}") from None
    root = load_located(text, file)
    if root is None:
        raise SpecError(file, None, "", "the file is empty")
    if not isinstance(root, LMap):
        raise SpecError(file, 1, "", "must be a mapping of jobs and keywords")
    expanded = expand_includes(root, file, path.parent, projects or {})
    return build_merged(expanded.content, str(path.resolve()), expanded.included, projects)


def build_merged(
    content: LMap, file: str, included: tuple[str, ...], projects: Mapping[str, Path] | None
) -> PipelineSpec:
    """Steps 3 to 6 for a configuration whose includes are merged (`file` names it)."""
    keywords = global_keywords()
    doc = resolve_references(apply_extends(content, keywords), keywords)
    _raise(validate(doc))
    _raise(check(doc, keywords, projects=tuple(projects or ())))
    return build_pipeline(doc, file, included, keywords)


def _raise(errors: list[SpecError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)
