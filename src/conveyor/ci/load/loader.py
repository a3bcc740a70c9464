"""`load_pipeline`: `.gitlab-ci.yml` to `PipelineSpec`, in GitLab's order of operations.

GitLab builds a pipeline configuration in this order, and so do we, because each step sees
the result of the previous one:

1. parse the YAML (anchors, merge keys, `!reference` tags kept as tags): a `spec:` header
   document, if any, then the configuration, whose `$[[ inputs.* ]]` take the pipeline's
   inputs (`LoadContext.inputs`, else the defaults);
2. expand `include:` (files merged in order, the including file on top; each included file's
   header takes the include's `inputs`);
3. resolve `extends:`;
4. resolve `!reference` tags (and flatten nested script/rules/needs lists), then drop the
   keywords set to `null` (GitLab's "unspecified": a null removes what extends merged in);
5. validate against GitLab's schema, then GitLab's semantic rules;
6. apply `default:` / `inherit:` and build the model (`.pre`/`.post` stages added).

Every step reports problems as `file:line: field: message`, the line being where the value
was written, in whichever file that is. What GitLab accepts but a person probably did not mean
(a key written twice) is a warning in `PipelineSpec.warnings`, in the same form.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from conveyor.ci.load.build import build_pipeline
from conveyor.ci.load.context import LoadContext
from conveyor.ci.load.extends import apply_extends
from conveyor.ci.load.header import CiDocument, read_document
from conveyor.ci.load.includes import Expanded, expand_includes, interpolate_document
from conveyor.ci.load.inputs import from_text
from conveyor.ci.load.located import LMap, collecting_warnings
from conveyor.ci.load.nulls import drop_nulls
from conveyor.ci.load.references import resolve_references
from conveyor.ci.load.schema import global_keywords, validate
from conveyor.ci.load.semantic import check
from conveyor.errors import SpecError, SpecErrors
from conveyor.model.pipeline import PipelineSpec


def load_pipeline(
    path: Path,
    projects: Mapping[str, Path] | None = None,
    *,
    context: LoadContext | None = None,
) -> PipelineSpec:
    """Load a `.gitlab-ci.yml`. `context` holds what GitLab knows when it reads the file
    (variables, pushed changes, inputs, projects and component catalogs); `projects` maps
    GitLab project paths ("group/lib") to local git repositories, for `include: project:`,
    over those of `context`. Raises SpecError or SpecErrors."""
    context = context or LoadContext()
    if projects:
        context = replace(context, projects={**context.projects, **projects})
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(file, None, "", f"cannot read the file: {exc.strerror}") from None
    with collecting_warnings() as warnings:
        doc = read_document(text, file)
        if doc.content is None:
            raise SpecError(file, None, "", "the file is empty")
        if not isinstance(doc.content, LMap):
            raise SpecError(file, 1, "", "must be a mapping of jobs and keywords")
        root = _with_inputs(doc, file, context)
        expanded = expand_includes(root, file, path.parent, context)
    pipeline = pipeline_from(expanded, str(path.resolve()), tuple(context.projects))
    return pipeline.model_copy(update={"warnings": tuple(w.render() for w in warnings)})


def pipeline_from(expanded: Expanded, file: str, projects: Collection[str] = ()) -> PipelineSpec:
    """A configuration whose includes are merged (`expand_includes`, or `resolve_includes`
    for a child pipeline) to `PipelineSpec`: extends, `!reference`, nulls, GitLab's schema
    and semantic rules, then the model. `file` names the pipeline's file; `projects` are the
    GitLab projects mapped to local repositories (what a multi-project `trigger:` may name)."""
    keywords = global_keywords()
    doc = resolve_references(apply_extends(expanded.content, keywords), keywords)
    doc = drop_nulls(doc, keywords)
    _raise(validate(doc))
    _raise(check(doc, keywords, projects=projects))
    return build_pipeline(doc, file, expanded.included, keywords)


def _with_inputs(doc: CiDocument, file: str, context: LoadContext) -> LMap:
    """The main file with the pipeline's inputs put in (GitLab's pipeline inputs); inputs
    given as text (the command line) are read as their declared type."""
    specs = {} if doc.header is None else {s.name: s for s in doc.header.inputs}
    given = {
        name: from_text(specs[name].type, value)
        if isinstance(value, str) and name in specs
        else value
        for name, value in context.inputs.items()
    }
    content, problems = interpolate_document(doc, given, context)
    errors = []
    for problem in problems:
        spec = specs.get(problem.input or "")
        if spec is not None:
            field = f"spec.inputs.{spec.name}"
            errors.append(SpecError(file, spec.loc.line, field, problem.message))
        else:
            line = doc.header.loc.line if doc.header else doc.content.loc.line
            errors.append(SpecError(file, line, "inputs", problem.message))
    _raise(errors)
    return _mapping(content)


def _mapping(content: Any) -> LMap:
    assert isinstance(content, LMap)  # interpolating a mapping gives a mapping
    return content


def _raise(errors: list[SpecError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)
