"""Which jobs a pipeline runs, with GitLab's semantics.

`select` evaluates `workflow:rules`, expands `parallel`, decides every job instance with its
`rules` or `only`/`except`, and resolves `needs` to the jobs that remain:

- workflow:rules: the first rule whose clauses all hold decides; `when: never` or no match
  means no pipeline. The matched rule's variables apply to every job, and its `auto_cancel`
  settings override `workflow:auto_cancel`'s (GitLab's defaults: `on_new_commit:
  conservative`, `on_job_failure: none`).
- rules: the first rule whose clauses (`if`, `changes`, `exists`) all hold decides; its `when`
  (default: the job's `when`), `allow_failure`, `start_in`, `variables`, `needs` and
  `interruptible` apply; `when: never` or no match excludes the job.
- only/except: every `only` part must hold and no `except` part may; `only` without `refs`
  means `refs: [branches, tags]`, and so does a job with neither keyword, unless the pipeline
  has workflow:rules (GitLab drops that default then).
- `changes` is true when the pipeline has no diff to compare (`FileFacts.changed` None: a new
  branch, a tag, a web or scheduled run); `exists` looks at the project's files.
- Rules see the pipeline's variables, the YAML variables the job inherits, the job's own and its
  matrix values, never re-expanded; `changes`/`exists` paths expand the variables they name.

`JobRun.variables` holds what is particular to one job of this pipeline: its matrix values,
CI_NODE_INDEX/CI_NODE_TOTAL when parallel, and the matched rule's variables (which win). The
YAML variables and `PipelineSelection.workflow_variables` are not copied into it: merge them with
`variables.merge_precedence`, which knows where each layer ranks.

No I/O: the project's file list (`exists`) and diffs (`changes:compare_to`) come in as
`FileFacts`, gathered by the caller for the `file_questions` this pipeline asks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from conveyor.ci.select import expr
from conveyor.ci.select.facts import FileFacts, FileQuestions
from conveyor.ci.select.fnmatch import fnmatch
from conveyor.ci.select.matrix import (
    Instance,
    expand_names,
    expand_needs,
    instances,
    parallel_names,
)
from conveyor.ci.select.variables import (
    Layer,
    expand_all,
    expand_existing,
    merge_precedence,
    slugify,
)
from conveyor.errors import SelectionError
from conveyor.model.pipeline import (
    AutoCancelSpec,
    JobRun,
    JobSelection,
    JobSpec,
    NeedSpec,
    OnlyExcept,
    PipelineSpec,
    RuleSpec,
    Variable,
    When,
)

__all__ = ["PipelineSelection", "file_questions", "rule_holds", "select"]

DEFAULT_ONLY_REFS: tuple[str, ...] = ("branches", "tags")
# GitLab gives up matching `rules:exists` patterns after this many path comparisons and
# treats the clause as true (Rules::Rule::Clause::Exists::MAX_PATTERN_COMPARISONS).
MAX_EXISTS_COMPARISONS = 50_000
DEFAULT_AUTO_CANCEL = AutoCancelSpec(on_new_commit="conservative", on_job_failure="none")


@dataclass(frozen=True)
class PipelineSelection:
    """The outcome of rules evaluation for one pipeline."""

    workflow_ok: bool
    workflow_reason: str
    workflow_variables: dict[str, str] = field(default_factory=dict)
    jobs: list[JobRun] = field(default_factory=list)  # stage order, then file order
    decisions: list[JobSelection] = field(default_factory=list)  # one per job instance
    # workflow:auto_cancel after workflow:rules, every setting filled in (GitLab's defaults)
    auto_cancel: AutoCancelSpec = field(default_factory=lambda: DEFAULT_AUTO_CANCEL)

    @property
    def empty_reason(self) -> str | None:
        """Why GitLab would create no pipeline although workflow:rules allowed one."""
        if not self.workflow_ok:
            return self.workflow_reason
        if not self.jobs:
            return "no job is added to the pipeline by its rules, only or except"
        if all(job.stage in (".pre", ".post") for job in self.jobs):
            return "the pipeline would only have .pre or .post jobs, which GitLab does not run"
        return None


# --- the pipeline being created --------------------------------------------------------------


@dataclass(frozen=True)
class _Pipeline:
    """What only/except:refs look at, read from the predefined variables."""

    source: str
    ref: str
    tag: bool
    merge_request: bool
    project_path: str

    @property
    def branch(self) -> bool:
        return not self.tag and not self.merge_request

    @classmethod
    def of(cls, variables: Mapping[str, str]) -> _Pipeline:
        source = variables.get("CI_PIPELINE_SOURCE", "push")
        tag = variables.get("CI_COMMIT_TAG")
        return cls(
            source=source,
            ref=tag or variables.get("CI_COMMIT_REF_NAME", ""),
            tag=bool(tag),
            merge_request=source == "merge_request_event",
            project_path=variables.get("CI_PROJECT_PATH", ""),
        )


class _Files:
    """The file facts rules look at; the project's files sorted once per selection."""

    def __init__(self, facts: FileFacts) -> None:
        self.changed = facts.changed
        self._facts = facts
        self._files: list[str] | None = None

    def worktree(self) -> list[str]:
        if self._files is None:
            if self._facts.files is None:
                raise ValueError("rules:exists needs FileFacts.files: gather file_questions()")
            self._files = sorted(self._facts.files)
        return self._files

    def changed_since(self, ref: str) -> Collection[str] | None:
        """Paths changed since `ref`; None when `ref` names nothing in the repository."""
        if ref not in self._facts.diffs:
            raise ValueError(f"no diff gathered for compare_to {ref}: gather file_questions()")
        return self._facts.diffs[ref]


# --- clauses ---------------------------------------------------------------------------------


class _Job:
    """One job instance being decided: its evaluation variables and lazy expanded form."""

    def __init__(self, name: str, variables: dict[str, str], files: _Files) -> None:
        self.name = name
        self.variables = variables
        self.files = files
        self._expanded: dict[str, str] | None = None

    def expanded(self) -> dict[str, str]:
        if self._expanded is None:
            self._expanded = expand_all(self.variables)
        return self._expanded

    def truthy(self, expression: str, where: str) -> bool:
        try:
            return expr.evaluate(expression, self.variables)
        except expr.ExprError as exc:
            raise SelectionError(
                f"{self.name}: {where}: invalid expression: {exc}; fix it in the pipeline file "
                "(GitLab's syntax: $VAR, ==, !=, =~, !~, &&, ||, parentheses)"
            ) from exc


def _rule_matches(rule: RuleSpec, job: _Job, where: str) -> bool:
    if rule.if_ is not None and not job.truthy(rule.if_, f"{where}:if"):
        return False
    if rule.changes is not None and not _rule_changes(rule, job, where):
        return False
    return rule.exists is None or _exists(rule.exists, job)


def _rule_changes(rule: RuleSpec, job: _Job, where: str) -> bool:
    if rule.changes_compare_to is not None:
        ref = expand_existing(rule.changes_compare_to, job.expanded())
        paths: Collection[str] | None = job.files.changed_since(ref)
        if paths is None:
            at = f"{rule.where.file}:{rule.where.line}: " if rule.where else ""
            owner = "" if where.startswith("workflow:") else f"{job.name}."
            field = f"{owner}{where.replace(':', '.')}.changes.compare_to"
            raise SelectionError(
                f"{at}{field}: rules:changes:compare_to is not a valid ref: {ref} "
                "(name a branch, tag or commit of this repository)"
            )
    else:
        paths = job.files.changed
    if paths is None:
        return True  # GitLab: no diff to compare (new branch, tag, web run...) -> true
    globs = list(dict.fromkeys(expand_existing(g, job.expanded()) for g in rule.changes or ()))
    return any(fnmatch(glob, path) for path in paths for glob in globs)


def _exists(globs: Sequence[str], job: _Job) -> bool:
    """GitLab's three kinds of `exists` globs: exact paths (a trailing `/` means a directory
    prefix), `**/*.ext` suffixes, and patterns, capped at MAX_EXISTS_COMPARISONS."""
    expanded = [expand_existing(glob, job.expanded()) for glob in globs]
    if not expanded:
        return False
    paths = job.files.worktree()
    exact = [g for g in expanded if not any(c in g for c in "*?[{")]
    suffixes = [g.removeprefix("**/*") for g in expanded if _suffix_glob(g)]
    patterns = [g for g in expanded if g not in exact and not _suffix_glob(g)]
    known = set(paths)
    if any(any(p.startswith(g) for p in paths) if g.endswith("/") else g in known for g in exact):
        return True
    if suffixes and any(path.endswith(tuple(suffixes)) for path in paths):
        return True
    if len(paths) * len(patterns) > MAX_EXISTS_COMPARISONS:
        return True
    return any(fnmatch(glob, path) for glob in patterns for path in paths)


def _suffix_glob(glob: str) -> bool:
    rest = glob.removeprefix("**/*")
    return (
        rest != glob
        and rest.startswith(".")
        and "/" not in rest
        and not any(c in rest for c in "*?[{")
    )


# --- only / except ---------------------------------------------------------------------------


def _pluralize(word: str) -> str:
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    return word + "s"


def _ref_matches(pattern: str, pipeline: _Pipeline) -> bool:
    """One `only/except:refs` entry, as Gitlab::Ci::Build::Policy::Refs reads it."""
    name, at, project = pattern.partition("@")
    if at and project != pipeline.project_path:
        return False
    if (pipeline.tag and name == "tags") or (pipeline.branch and name == "branches"):
        return True
    source = pipeline.source.removesuffix("_event")
    if name in (source, _pluralize(source)):
        return True
    if not (pipeline.branch or pipeline.tag):
        return False  # names and patterns never match merge request pipelines
    compiled = expr.ruby_regex_or_none(name)
    if compiled is not None:
        return bool(pipeline.ref) and compiled.search(pipeline.ref) is not None
    return name == pipeline.ref


def _policy_parts(
    policy: OnlyExcept, default_refs: tuple[str, ...], pipeline: _Pipeline, job: _Job, key: str
) -> list[tuple[str, bool]]:
    """Each part of an only/except policy with whether it holds, in GitLab's order."""
    parts: list[tuple[str, bool]] = []
    refs = policy.refs or default_refs
    if refs:
        parts.append((f"refs [{', '.join(refs)}]", any(_ref_matches(r, pipeline) for r in refs)))
    if policy.kubernetes is not None:
        # Conveyor has no GitLab Kubernetes integration, so `kubernetes: active` never holds.
        parts.append((f"kubernetes {policy.kubernetes} (no integration here)", False))
    if policy.variables:
        held = any(job.truthy(e, f"{key}:variables") for e in policy.variables)
        parts.append((f"variables [{'; '.join(policy.variables)}]", held))
    if policy.changes:
        changed = job.files.changed
        held = changed is None or any(fnmatch(g, p) for p in changed for g in policy.changes)
        parts.append((f"changes [{', '.join(policy.changes)}]", held))
    return parts


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verdict:
    kept: bool
    reason: str
    when: When = "on_success"
    start_in: float | None = None
    allow_failure: bool = False
    allow_failure_exit_codes: tuple[int, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    needs: tuple[NeedSpec, ...] | None = None
    interruptible: bool = False
    auto_cancel: AutoCancelSpec | None = None  # a workflow rule's


def _describe(rule: RuleSpec) -> str:
    parts = []
    if rule.if_ is not None:
        parts.append(f"if {rule.if_}")
    if rule.changes is not None:
        against = f" compare_to {rule.changes_compare_to}" if rule.changes_compare_to else ""
        parts.append(f"changes [{', '.join(rule.changes)}]{against}")
    if rule.exists is not None:
        parts.append(f"exists [{', '.join(rule.exists)}]")
    return " and ".join(parts) or "no condition"


def _first_rule(rules: Sequence[RuleSpec], job: _Job, prefix: str) -> tuple[int, RuleSpec] | None:
    for index, rule in enumerate(rules):
        if _rule_matches(rule, job, f"{prefix}[{index}]"):
            return index, rule
    return None


def _default_allow_failure(spec: JobSpec) -> bool:
    """GitLab's job-level default: manual jobs may fail unless the job says otherwise
    (`allow_failure: {exit_codes}` counts as saying false)."""
    if spec.allow_failure is not None:
        return spec.allow_failure
    return not spec.allow_failure_exit_codes and spec.when == "manual"


def _by_rules(spec: JobSpec, rules: Sequence[RuleSpec], job: _Job) -> _Verdict:
    # An empty `rules: []` is rejected by GitLab's config validation ("can't be blank");
    # should one get here, Build::Rules with an empty list matches nothing: excluded.
    found = _first_rule(rules, job, "rules")
    if found is None:
        return _Verdict(False, "rules: no rule matched")
    index, rule = found
    when: When = rule.when or spec.when  # GitLab: the rule's when, else the job's
    reason = f"rules[{index}] ({_describe(rule)}): when {when}"
    if when == "never":
        return _Verdict(False, reason)
    if rule.allow_failure is None:
        allow_failure, exit_codes = _default_allow_failure(spec), spec.allow_failure_exit_codes
    else:
        # GitLab drops the job's `allow_failure:exit_codes` when the rule sets allow_failure.
        allow_failure, exit_codes = rule.allow_failure, rule.allow_failure_exit_codes
    return _Verdict(
        kept=True,
        reason=reason,
        when=when,
        start_in=rule.start_in,
        allow_failure=allow_failure,
        allow_failure_exit_codes=exit_codes,
        variables=dict(rule.variables),
        needs=rule.needs if rule.needs is not None else spec.needs,
        interruptible=rule.interruptible if rule.interruptible is not None else spec.interruptible,
    )


def _by_policies(spec: JobSpec, job: _Job, pipeline: _Pipeline, workflow_rules: bool) -> _Verdict:
    only = spec.only
    if only is None and not workflow_rules:
        only = OnlyExcept(refs=DEFAULT_ONLY_REFS)  # GitLab's default `only`
    kept_reason = "no rules or only (workflow:rules removes the default only)"
    if only is not None:
        parts = _policy_parts(only, DEFAULT_ONLY_REFS, pipeline, job, "only")
        failed = [what for what, held in parts if not held]
        label = "only" if spec.only is not None else "default only"
        if failed:
            return _Verdict(False, f"{label}: {failed[0]} did not match {_ref_text(pipeline)}")
        kept_reason = f"{label}: " + " and ".join(what for what, _ in parts)
    if spec.except_ is not None:
        parts = _policy_parts(spec.except_, (), pipeline, job, "except")
        matched = [what for what, held in parts if held]
        if matched:
            return _Verdict(False, f"except: {matched[0]} matched {_ref_text(pipeline)}")
        kept_reason += "; except did not match"
    return _Verdict(
        kept=True,
        reason=kept_reason,
        when=spec.when,
        start_in=spec.start_in,
        allow_failure=_default_allow_failure(spec),
        allow_failure_exit_codes=spec.allow_failure_exit_codes,
        needs=spec.needs,
        interruptible=spec.interruptible,
    )


def _ref_text(pipeline: _Pipeline) -> str:
    kind = "tag" if pipeline.tag else "merge request" if pipeline.merge_request else "branch"
    return f"({kind} {pipeline.ref}, source {pipeline.source})"


# --- variables seen by rules -----------------------------------------------------------------


def _inherited(values: Mapping[str, str], inherit: bool | tuple[str, ...]) -> dict[str, str]:
    if inherit is True:
        return dict(values)
    if inherit is False:
        return {}
    return {name: value for name, value in values.items() if name in inherit}


def _raw(variables: Mapping[str, Variable]) -> dict[str, str]:
    return {name: var.value for name, var in variables.items()}


def _job_predefined(instance: Instance, stage: str) -> dict[str, str]:
    """The per-job predefined variables GitLab already knows when it evaluates rules."""
    out = {
        "CI_JOB_NAME": instance.name,
        "CI_JOB_NAME_SLUG": slugify(instance.name),
        "CI_JOB_STAGE": stage,
        "CI_NODE_TOTAL": str(instance.node_total or 1),
    }
    if instance.node_index is not None:
        out["CI_NODE_INDEX"] = str(instance.node_index)
    return out


# --- select ----------------------------------------------------------------------------------


def select(
    spec: PipelineSpec,
    variables: Mapping[str, str],
    facts: FileFacts,
    *,
    pipeline_variables: Mapping[str, str] | None = None,
) -> PipelineSelection:
    """Decide which jobs this pipeline runs.

    `variables` are the predefined ones (lowest precedence); `pipeline_variables` are
    project, trigger or command-line variables, which override the YAML. `facts` answer the
    `file_questions` of the same arguments: the project's files and diffs, and the pushed
    changes (None when there is nothing to compare)."""
    extra = dict(pipeline_variables or {})
    io = _Files(facts)
    workflow = _workflow(spec, _Job("workflow", _base_variables(spec, variables, extra), io))
    if not workflow.kept:
        return PipelineSelection(False, workflow.reason)
    verdicts = _decide_all(spec, variables, extra, workflow.variables, io)
    runs = _resolve(spec, verdicts)
    decisions = [
        JobSelection(job=i.name, decision="kept" if v.kept else "excluded", reason=v.reason)
        for i, v in verdicts
    ]
    auto_cancel = _auto_cancel(spec.workflow.auto_cancel, workflow.auto_cancel)
    return PipelineSelection(
        True, workflow.reason, dict(workflow.variables), runs, decisions, auto_cancel
    )


def _auto_cancel(written: AutoCancelSpec, by_rule: AutoCancelSpec | None) -> AutoCancelSpec:
    """Each setting from the matched workflow rule, else `workflow:auto_cancel`, else
    GitLab's default."""
    rule = by_rule or AutoCancelSpec()
    return AutoCancelSpec(
        on_new_commit=(
            rule.on_new_commit or written.on_new_commit or DEFAULT_AUTO_CANCEL.on_new_commit
        ),
        on_job_failure=(
            rule.on_job_failure or written.on_job_failure or DEFAULT_AUTO_CANCEL.on_job_failure
        ),
    )


def file_questions(
    spec: PipelineSpec,
    variables: Mapping[str, str],
    *,
    pipeline_variables: Mapping[str, str] | None = None,
) -> FileQuestions:
    """What `select` may ask about files, so that the caller gathers `FileFacts` first:
    whether a rule has `exists`, and every ref a `changes:compare_to` can name. A ref that
    refers to variables is expanded for each job instance under every workflow rule's
    variables (which rule matches is only known while selecting): a superset."""
    extra = dict(pipeline_variables or {})
    workflow_rules = spec.workflow.rules or ()
    outcomes = [{}, *(dict(rule.variables) for rule in workflow_rules)]
    files = False
    refs: set[str] = set()

    def ask(rules: Sequence[RuleSpec], seen: Iterable[Mapping[str, str]]) -> None:
        nonlocal files
        files = files or any(rule.exists is not None for rule in rules)
        written = [r.changes_compare_to for r in rules if r.changes_compare_to is not None]
        refs.update(ref for ref in written if "$" not in ref)
        if any("$" in ref for ref in written):
            for known in seen:
                expanded = expand_all(known)
                refs.update(expand_existing(ref, expanded) for ref in written if "$" in ref)

    ask(workflow_rules, [_base_variables(spec, variables, extra)])
    for job_spec in spec.jobs.values():
        if job_spec.rules is not None:
            ask(
                job_spec.rules,
                (
                    _seen_by_job(spec, job_spec, instance, variables, extra, outcome)
                    for instance in instances(job_spec)
                    for outcome in outcomes
                ),
            )
    return FileQuestions(files=files, compare_to=frozenset(refs))


def _base_variables(
    spec: PipelineSpec, predefined: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    """What workflow:rules see: predefined, top-level YAML and pipeline variables."""
    return merge_precedence(
        {
            Layer.PREDEFINED: predefined,
            Layer.YAML_GLOBAL: _raw(spec.variables),
            Layer.PIPELINE: extra,
        }
    )


def _seen_by_job(
    spec: PipelineSpec,
    job_spec: JobSpec,
    instance: Instance,
    predefined: Mapping[str, str],
    extra: Mapping[str, str],
    workflow_vars: Mapping[str, str],
) -> dict[str, str]:
    """What a job instance's rules see (never re-expanded)."""
    return merge_precedence(
        {
            Layer.PREDEFINED: {**predefined, **_job_predefined(instance, job_spec.stage)},
            Layer.YAML_GLOBAL: _inherited(_raw(spec.variables), job_spec.inherit_variables),
            Layer.WORKFLOW_RULES: _inherited(workflow_vars, job_spec.inherit_variables),
            Layer.YAML_JOB: _raw(job_spec.variables),
            Layer.MATRIX: instance.variables,
            Layer.PIPELINE: extra,
        }
    )


def _workflow(spec: PipelineSpec, job: _Job) -> _Verdict:
    rules = spec.workflow.rules
    if rules is None:
        return _Verdict(True, "no workflow:rules")
    found = _first_rule(rules, job, "workflow:rules")
    if found is None:
        return _Verdict(False, "workflow:rules: no rule matched")
    index, rule = found
    when = rule.when or "always"
    reason = f"workflow:rules[{index}] ({_describe(rule)}): when {when}"
    return _Verdict(
        when != "never", reason, variables=dict(rule.variables), auto_cancel=rule.auto_cancel
    )


def _ordered(spec: PipelineSpec) -> list[JobSpec]:
    stage_index = {stage: i for i, stage in enumerate(spec.stages)}
    for job in spec.jobs.values():
        if job.stage not in stage_index:
            available = ", ".join(spec.stages)
            raise SelectionError(
                f"{job.name} job: chosen stage {job.stage} does not exist; available stages "
                f"are {available}: add it to `stages:` or choose one of these"
            )
    return sorted(spec.jobs.values(), key=lambda job: stage_index[job.stage])


def _decide_all(
    spec: PipelineSpec,
    predefined: Mapping[str, str],
    extra: Mapping[str, str],
    workflow_vars: Mapping[str, str],
    io: _Files,
) -> list[tuple[Instance, _Verdict]]:
    pipeline = _Pipeline.of({**predefined, **extra})
    out: list[tuple[Instance, _Verdict]] = []
    for job_spec in _ordered(spec):
        for instance in instances(job_spec):
            seen = _seen_by_job(spec, job_spec, instance, predefined, extra, workflow_vars)
            job = _Job(instance.name, seen, io)
            if job_spec.rules is not None:
                verdict = _by_rules(job_spec, job_spec.rules, job)
            else:
                verdict = _by_policies(job_spec, job, pipeline, spec.workflow.rules is not None)
            out.append((instance, verdict))
    return out


def _resolve(spec: PipelineSpec, verdicts: list[tuple[Instance, _Verdict]]) -> list[JobRun]:
    """JobRuns for the kept instances, with needs and dependencies on instance names."""
    parallel = parallel_names(spec.jobs.values())
    stage_index = {stage: i for i, stage in enumerate(spec.stages)}
    stage_of = {i.name: stage_index[spec.jobs[i.spec].stage] for i, _ in verdicts}
    kept = {i.name for i, v in verdicts if v.kept}
    for instance, _ in verdicts:  # GitLab checks job-level needs before any rule runs
        _defined_needs(instance.name, spec.jobs[instance.spec].needs, parallel, stage_of)
    runs = []
    for instance, verdict in verdicts:
        if not verdict.kept:
            continue
        needs = _defined_needs(instance.name, verdict.needs, parallel, stage_of)
        runs.append(_job_run(spec.jobs[instance.spec], instance, verdict, needs, kept, parallel))
    return runs


def _defined_needs(
    name: str,
    needs: Sequence[NeedSpec] | None,
    parallel: Mapping[str, Sequence[str]],
    stage_of: Mapping[str, int],
) -> tuple[NeedSpec, ...] | None:
    """Needs expanded to instance names; undefined optional needs dropped (GitLab's
    YamlProcessor), undefined or later-stage required ones refused with GitLab's words."""
    if needs is None:
        return None
    out = []
    for need in expand_needs(needs, parallel):
        if need.job not in stage_of:
            if need.optional:
                continue
            raise SelectionError(
                f"{name} job: undefined need: {need.job}; define that job, or mark the need "
                "`optional: true`"
            )
        if stage_of[need.job] > stage_of[name]:
            raise SelectionError(
                f"{name} job: need {need.job} is not defined in current or prior stages; "
                "move one of the two jobs to another stage"
            )
        out.append(need)
    return tuple(out)


def _job_run(
    spec: JobSpec,
    instance: Instance,
    verdict: _Verdict,
    needs: tuple[NeedSpec, ...] | None,
    kept: Collection[str],
    parallel: Mapping[str, Sequence[str]],
) -> JobRun:
    variables = dict(instance.variables)
    if instance.node_index is not None:
        variables["CI_NODE_INDEX"] = str(instance.node_index)
        variables["CI_NODE_TOTAL"] = str(instance.node_total)
    variables.update(verdict.variables)
    return JobRun(
        name=instance.name,
        spec=spec.name,
        stage=spec.stage,
        when=verdict.when,
        start_in=verdict.start_in,
        allow_failure=verdict.allow_failure,
        allow_failure_exit_codes=verdict.allow_failure_exit_codes,
        variables=variables,
        needs=None if needs is None else _present_needs(instance.name, needs, kept),
        dependencies=_dependencies(spec.dependencies, kept, parallel),
        interruptible=verdict.interruptible,
        node_index=instance.node_index,
        node_total=instance.node_total,
    )


def _present_needs(
    name: str, needs: Iterable[NeedSpec], kept: Collection[str]
) -> tuple[NeedSpec, ...]:
    out = []
    for need in needs:
        if need.job in kept:
            out.append(need)
        elif not need.optional:
            raise SelectionError(
                f"'{name}' job needs '{need.job}' job, but '{need.job}' does not exist in the "
                "pipeline. This might be because of the only, except, or rules keywords. To "
                "need a job that sometimes does not exist in the pipeline, use needs:optional."
            )
    return tuple(out)


def _dependencies(
    names: Sequence[str] | None, kept: Collection[str], parallel: Mapping[str, Sequence[str]]
) -> tuple[str, ...] | None:
    if names is None:
        return None
    return tuple(name for name in expand_names(names, parallel) if name in kept)


# --- one rule on its own (include:rules) ---------------------------------------------------------


def rule_holds(rule: RuleSpec, variables: Mapping[str, str], facts: FileFacts) -> bool:
    """Whether every clause of `rule` (`if`, `changes`, `exists`) holds with these variables
    and file facts: how `include:rules` are decided, with the same clauses as jobs' rules.
    A bad `if` raises ExprError; a `compare_to` that names no commit, SelectionError."""
    job = _Job("include", dict(variables), _Files(facts))
    if rule.if_ is not None and not expr.evaluate(rule.if_, job.variables):
        return False
    return _rule_matches(rule.model_copy(update={"if_": None}), job, "rules")
