"""The merged, validated `.gitlab-ci.yml` document as a `PipelineSpec`.

Everything here reads data the schema and the semantic checks have accepted, so the
conversions only pick GitLab's forms apart (a string or a list, a number or a mapping…).
`default:` (and the legacy top-level image, services, before_script, after_script, cache)
is applied to each job here, honouring `inherit:default`, because GitLab copies a default
into a job only when the job does not set that keyword itself: no deep merge.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from conveyor.ci.load.durations import parse_duration, parse_expire_in
from conveyor.ci.load.located import LMap, LSeq
from conveyor.model.pipeline import (
    DEFAULT_STAGES,
    ArtifactsSpec,
    AutoCancelSpec,
    CacheSpec,
    EnvironmentSpec,
    ImageSpec,
    JobSpec,
    NeedSpec,
    OnlyExcept,
    ParallelSpec,
    PipelineSpec,
    RetrySpec,
    RuleSpec,
    ServiceSpec,
    TriggerSpec,
    Variable,
    Where,
    WorkflowSpec,
)

# Keywords `default:` may set, in GitLab's Entry::Default (id_tokens has no use offline).
INHERITABLE = (
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
)
# What `default:` gives a trigger job: GitLab's bridge jobs run no script, so only this applies.
TRIGGER_INHERITABLE = ("interruptible",)
# Deprecated top-level forms GitLab moves into `default:`.
LEGACY_GLOBALS = ("image", "services", "before_script", "after_script", "cache")
DEFAULT_EXPIRE_IN = 30 * 86400.0  # GitLab's instance default for artifacts:expire_in


def visible_jobs(doc: LMap, keywords: frozenset[str]) -> dict[str, LMap]:
    """Jobs GitLab runs: top-level mappings that are not keywords nor hidden (`.name`)."""
    return {
        name: value
        for name, value in doc.items()
        if name not in keywords and not name.startswith(".") and isinstance(value, LMap)
    }


def pipeline_stages(doc: LMap) -> tuple[str, ...]:
    """`stages:` (default build, test, deploy) with `.pre` first and `.post` last, wherever
    the file lists them, as GitLab's edge-stage injector does."""
    written = doc.get("stages")
    if not isinstance(written, list):
        return DEFAULT_STAGES
    middle = [s for s in dict.fromkeys(str(s) for s in written) if s not in (".pre", ".post")]
    return (".pre", *middle, ".post")


def defaults(doc: LMap) -> LMap:
    """`default:` plus the legacy top-level keywords (a keyword set in both is an error the
    semantic checks report)."""
    out = LMap(doc.loc)
    for key in LEGACY_GLOBALS:
        if key in doc:
            out.put(key, doc[key], doc.key_loc(key))
    default = doc.get("default")
    if isinstance(default, LMap):
        for key, value, loc in default.located_items():
            out.put(key, value, loc)
    return out


def inherited_defaults(job: LMap) -> bool | tuple[str, ...]:
    setting = job.get("inherit", {}).get("default", True)
    return setting if isinstance(setting, bool) else tuple(str(s) for s in setting)


def with_defaults(job: LMap, default: LMap) -> LMap:
    """The job plus each default keyword it does not set and is allowed to inherit."""
    allowed = inherited_defaults(job)
    out = LMap(job.loc)
    for key, value, loc in job.located_items():
        out.put(key, value, loc)
    for key in TRIGGER_INHERITABLE if "trigger" in job else INHERITABLE:
        if key in default and key not in job and (allowed is True or key in (allowed or ())):
            out.put(key, default[key], default.key_loc(key))
    return out


def build_pipeline(
    doc: LMap, file: str, includes: tuple[str, ...], keywords: frozenset[str]
) -> PipelineSpec:
    default = defaults(doc)
    jobs = {
        name: build_job(name, with_defaults(job, default), doc.key_loc(name).file, doc)
        for name, job in visible_jobs(doc, keywords).items()
    }
    return PipelineSpec(
        file=file,
        stages=pipeline_stages(doc),
        variables=variables(doc.get("variables")),
        workflow=workflow(doc.get("workflow")),
        jobs=jobs,
        includes=includes,
    )


def build_job(name: str, job: LMap, file: str, doc: LMap) -> JobSpec:
    inherit = job.get("inherit", {})
    inherit_variables = inherit.get("variables", True)
    allow_failure, exit_codes = _allow_failure(job.get("allow_failure"))
    return JobSpec(
        name=name,
        where=Where(file=file, line=doc.key_loc(name).line),
        stage=str(job.get("stage", "test")),
        script=commands(job.get("script")),
        before_script=commands(job.get("before_script")),
        after_script=commands(job.get("after_script")),
        pre_get_sources_script=commands(job.get("hooks", {}).get("pre_get_sources_script")),
        image=image(job.get("image")),
        services=tuple(service(s) for s in job.get("services") or ()),
        variables=variables(job.get("variables")),
        rules=None if job.get("rules") is None else tuple(rule(r) for r in job["rules"]),
        only=only_except(job.get("only")),
        except_=only_except(job.get("except")),
        when=job.get("when", "on_success"),
        start_in=_duration(job.get("start_in")),
        allow_failure=allow_failure,
        allow_failure_exit_codes=exit_codes,
        needs=needs(job.get("needs")),
        dependencies=_optional_strings(job.get("dependencies")),
        parallel=parallel(job.get("parallel")),
        retry=retry(job.get("retry")),
        timeout=_duration(job.get("timeout")),
        interruptible=bool(job.get("interruptible", False)),
        resource_group=job.get("resource_group"),
        environment=environment(job.get("environment")),
        coverage=job.get("coverage"),
        artifacts=artifacts(job.get("artifacts")),
        cache=caches(job.get("cache")),
        tags=strings(job.get("tags")),
        inherit_default=inherited_defaults(job),
        inherit_variables=(
            inherit_variables
            if isinstance(inherit_variables, bool)
            else tuple(str(v) for v in inherit_variables)
        ),
        trigger=trigger(job.get("trigger")),
    )


# --- scalars and lists ------------------------------------------------------------------------


def text(value: Any) -> str:
    """A YAML scalar as GitLab turns it into a string: true -> "true", 3 -> "3"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def strings(value: Any) -> tuple[str, ...]:
    """A string or a (flattened) list of strings as a tuple."""
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(text(item) for item in _flatten(value))
    return (text(value),)


def commands(value: Any) -> tuple[str, ...]:
    return strings(value)


def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _optional_strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else strings(value)


def _duration(value: Any) -> float | None:
    return None if value is None else parse_duration(str(value))


def _allow_failure(value: Any) -> tuple[bool | None, tuple[int, ...]]:
    if isinstance(value, dict):  # {exit_codes: N | [N, ...]}: fail only on other codes
        codes = _ints(value.get("exit_codes"))
        # `{exit_codes: []}` still says "not allowed to fail" (GitLab: a hash is never true).
        return (None if codes else False), codes
    return value, ()


def _ints(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(int(v) for v in value) if isinstance(value, list) else (int(value),)


# --- keywords -----------------------------------------------------------------------------------


def variables(value: Any) -> dict[str, Variable]:
    out: dict[str, Variable] = {}
    for name, raw in (value or {}).items():
        if isinstance(raw, dict):
            out[name] = Variable(
                value=text(raw.get("value", "")),
                expand=bool(raw.get("expand", True)),
                description=raw.get("description"),
                options=strings(raw.get("options")),
            )
        else:
            out[name] = Variable(value=text(raw))
    return out


def _plain_variables(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, raw in (value or {}).items():
        out[name] = text(raw.get("value", "")) if isinstance(raw, dict) else text(raw)
    return out


def image(value: Any) -> ImageSpec | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ImageSpec(name=value)
    return ImageSpec(
        name=value["name"],
        entrypoint=_entrypoint(value.get("entrypoint")),
        pull_policy=strings(value.get("pull_policy")),
    )


def service(value: Any) -> ServiceSpec:
    if isinstance(value, str):
        return ServiceSpec(name=value)
    command = value.get("command")
    alias = value.get("alias")
    return ServiceSpec(
        name=value["name"],
        # GitLab splits `alias: "db,postgres"` into several aliases.
        alias=tuple(a.strip() for a in alias.split(",") if a.strip()) if alias else (),
        entrypoint=_entrypoint(value.get("entrypoint")),
        command=None if command is None else strings(command),
        variables=_plain_variables(value.get("variables")),
        pull_policy=strings(value.get("pull_policy")),
    )


def _entrypoint(value: Any) -> tuple[str, ...] | None:
    """None keeps the image's entrypoint: so does `[]`, as GitLab Runner only overrides it
    with a non-empty list (`[""]` is the way to clear it)."""
    return strings(value) or None


def rule(value: Any) -> RuleSpec:
    changes, compare_to = value.get("changes"), None
    if isinstance(changes, dict):
        changes, compare_to = changes.get("paths", []), changes.get("compare_to")
    exists = value.get("exists")
    if isinstance(exists, dict):
        exists = exists.get("paths", [])
    return RuleSpec(
        if_=value.get("if"),
        changes=None if changes is None else strings(changes),
        changes_compare_to=compare_to,
        exists=None if exists is None else strings(exists),
        when=value.get("when"),
        start_in=_duration(value.get("start_in")),
        allow_failure=value.get("allow_failure"),
        variables=_plain_variables(value.get("variables")),
        needs=needs(value.get("needs")),
        interruptible=value.get("interruptible"),
        auto_cancel=None if value.get("auto_cancel") is None else auto_cancel(value["auto_cancel"]),
        where=Where(file=value.loc.file, line=value.loc.line) if isinstance(value, LMap) else None,
    )


def auto_cancel(value: Any) -> AutoCancelSpec:
    return AutoCancelSpec(
        on_new_commit=value.get("on_new_commit"), on_job_failure=value.get("on_job_failure")
    )


def workflow(value: Any) -> WorkflowSpec:
    if not isinstance(value, dict):
        return WorkflowSpec()
    rules = value.get("rules")
    return WorkflowSpec(
        name=value.get("name"),
        rules=None if rules is None else tuple(rule(r) for r in rules),
        auto_cancel=auto_cancel(value.get("auto_cancel") or {}),
    )


def trigger(value: Any) -> TriggerSpec | None:
    """`trigger: group/project`, `trigger: {project, branch, inputs}` or `trigger: {include}`
    (a file name, or up to three entries), with `strategy` and `forward`."""
    if value is None:
        return None
    if isinstance(value, str):
        return TriggerSpec(project=value)
    include = value.get("include")
    entries = [{"local": include}] if isinstance(include, str) else list(include or ())
    forward = value.get("forward") or {}
    return TriggerSpec(
        include=tuple(dict(entry) for entry in entries),
        project=value.get("project"),
        branch=value.get("branch"),
        strategy=value.get("strategy"),
        forward_yaml_variables=bool(forward.get("yaml_variables", True)),
        forward_pipeline_variables=bool(forward.get("pipeline_variables", False)),
        inputs=dict(value.get("inputs") or {}),
    )


def only_except(value: Any) -> OnlyExcept | None:
    if value is None:
        return None
    if isinstance(value, list):
        return OnlyExcept(refs=strings(value))
    return OnlyExcept(
        refs=strings(value.get("refs")),
        variables=strings(value.get("variables")),
        changes=strings(value.get("changes")),
        kubernetes=value.get("kubernetes"),
    )


def needs(value: Any) -> tuple[NeedSpec, ...] | None:
    """`needs:`; absent is None (wait for earlier stages), `[]` an empty tuple (start now)."""
    if value is None:
        return None
    out: list[NeedSpec] = []
    for item in value:
        if isinstance(item, str):
            out.append(NeedSpec(job=item))
            continue
        selections = item.get("parallel", {}).get("matrix", [])
        out.append(
            NeedSpec(
                job=item["job"],
                artifacts=bool(item.get("artifacts", True)),
                optional=bool(item.get("optional", False)),
                parallel_matrix=tuple(
                    combo for entry in selections for combo in matrix_combinations(entry)
                ),
            )
        )
    return tuple(out)


def matrix_combinations(entry: Any) -> list[dict[str, str]]:
    """One `parallel:matrix` entry as its combinations, in GitLab's order (last varies
    fastest): {A: [1, 2], B: x} -> [{A: 1, B: x}, {A: 2, B: x}]."""
    names = list(entry)
    values = [strings(entry[name]) for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def parallel(value: Any) -> ParallelSpec | None:
    if value is None:
        return None
    if isinstance(value, int):
        return ParallelSpec(count=value)
    return ParallelSpec(
        matrix=tuple({name: strings(v) for name, v in entry.items()} for entry in value["matrix"])
    )


def retry(value: Any) -> RetrySpec:
    if value is None:
        return RetrySpec()
    if isinstance(value, int):
        return RetrySpec(max=value)
    return RetrySpec(
        max=int(value.get("max", 0)),
        when=strings(value["when"]) if "when" in value else ("always",),
        exit_codes=_ints(value.get("exit_codes")),
    )


def environment(value: Any) -> EnvironmentSpec | None:
    if value is None:
        return None
    if isinstance(value, str):
        return EnvironmentSpec(name=value)
    return EnvironmentSpec(
        name=value["name"],
        url=value.get("url"),
        action=value.get("action", "start"),
        on_stop=value.get("on_stop"),
        auto_stop_in=value.get("auto_stop_in"),
        deployment_tier=value.get("deployment_tier"),
    )


def artifacts(value: Any) -> ArtifactsSpec | None:
    if value is None:
        return None
    reports = dict(value.get("reports") or {})
    other: dict[str, tuple[str, ...]] = {}
    for kind, paths in reports.items():
        if kind in ("junit", "dotenv"):
            continue
        # coverage_report is {coverage_format, path}: the file is what gets collected.
        other[kind] = strings(paths.get("path")) if isinstance(paths, dict) else strings(paths)
    expire_in = value.get("expire_in")
    return ArtifactsSpec(
        paths=strings(value.get("paths")),
        exclude=strings(value.get("exclude")),
        untracked=bool(value.get("untracked", False)),
        when=value.get("when", "on_success"),
        expire_in=DEFAULT_EXPIRE_IN if expire_in is None else parse_expire_in(str(expire_in)),
        name=value.get("name"),
        expose_as=value.get("expose_as"),
        reports_junit=strings(reports.get("junit")),
        reports_dotenv=strings(reports.get("dotenv")),
        reports_other=other,
    )


def caches(value: Any) -> tuple[CacheSpec, ...]:
    if value is None:
        return ()
    return tuple(cache(c) for c in value) if isinstance(value, LSeq | list) else (cache(value),)


def cache(value: Any) -> CacheSpec:
    key = value.get("key", "default")
    files: tuple[str, ...] = ()
    prefix = None
    if isinstance(key, dict):
        files, prefix, key = strings(key.get("files")), key.get("prefix"), "default"
    return CacheSpec(
        key=text(key),
        key_files=files,
        key_prefix=prefix,
        paths=strings(value.get("paths")),
        untracked=bool(value.get("untracked", False)),
        policy=str(value.get("policy", "pull-push")),
        when=value.get("when", "on_success"),
        fallback_keys=strings(value.get("fallback_keys")),
        unprotect=bool(value.get("unprotect", False)),
    )
