"""Checks GitLab makes beyond the schema: stages, needs, dependencies, durations, limits.

They run on the merged, schema-valid document and report every problem at once, each at the
line to edit. The rules and limits are GitLab's (its Entry validations and pipeline
creation checks); messages say what to change rather than quote GitLab's wording.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from typing import Any

from conveyor.ci.load.build import (
    LEGACY_GLOBALS,
    matrix_combinations,
    pipeline_stages,
    visible_jobs,
)
from conveyor.ci.load.durations import (
    START_IN_LIMIT,
    TIMEOUT_LIMIT,
    check_limit,
    parse_duration,
    parse_expire_in,
)
from conveyor.ci.load.located import LMap, locate
from conveyor.ci.select.matrix import count_name, matrix_name
from conveyor.errors import SpecError
from conveyor.spec.values import suggest
from conveyor.spec.yamlpos import YamlPath, dotted

MAX_PARALLEL = 200  # jobs one `parallel` may create
MAX_NEEDS = 50  # GitLab's default `ci_max_needs` per job
MAX_CACHES = 4  # caches per job
_POLICY = re.compile(r"pull-push|pull|push|\$\w{1,255}")
_EDGE_STAGES = (".pre", ".post")
# The keywords of a trigger job (GitLab's Entry::Bridge): it runs no script, so no image,
# script, artifacts or cache; `when` may not be `delayed`.
TRIGGER_KEYS = frozenset(
    {
        "trigger", "stage", "extends", "rules", "only", "except", "variables", "inherit",
        "allow_failure", "when", "needs", "resource_group", "environment", "interruptible",
        "parallel",
    }
)  # fmt: skip


def check(doc: LMap, keywords: frozenset[str], projects: Collection[str] = ()) -> list[SpecError]:
    """Every problem GitLab's semantic rules find; `projects` are the GitLab projects mapped
    to local repositories (what a multi-project `trigger:` may name)."""
    checker = _Checker(doc, keywords, projects)
    checker.run()
    unique = {(e.file, e.line or 0, e.field, e.message): e for e in checker.errors}
    return [unique[key] for key in sorted(unique)]


class _Checker:
    def __init__(self, doc: LMap, keywords: frozenset[str], projects: Collection[str]) -> None:
        self.doc = doc
        self.projects = {p.casefold(): p for p in projects}
        self.jobs = visible_jobs(doc, keywords)
        self.stages = pipeline_stages(doc)
        self.errors: list[SpecError] = []
        # GitLab validates needs and dependencies after expanding `parallel`, so one instance
        # ("build: [linux, amd64]", "test 2/3") can be named as well as the whole job.
        self.instances = {
            instance: name for name, job in self.jobs.items() for instance in _instances(name, job)
        }

    def job_named(self, target: str) -> LMap | None:
        """The job a `needs`/`dependencies` entry names: a job, or one of its instances."""
        name = self.instances.get(target, target)
        return self.jobs.get(name)

    def known_names(self) -> list[str]:
        return [*self.jobs, *(i for i in self.instances if i not in self.jobs)]

    def error(self, path: YamlPath, message: str, at: YamlPath | None = None) -> None:
        loc = locate(self.doc, path if at is None else at, self.doc.loc)
        self.errors.append(SpecError(loc.file, loc.line, dotted(path), message))

    def run(self) -> None:
        self.globals()
        if not self.jobs:
            self.error((), "the pipeline has no visible jobs (GitLab needs at least one)")
            return
        for name, job in self.jobs.items():
            self.job(name, job)
        self.edge_stages_only()
        self.needs_cycles()

    # --- top level ----------------------------------------------------------------------------

    def globals(self) -> None:
        if "spec" in self.doc:
            self.error(("spec",), "spec: headers (include inputs) are not supported yet")
        default = self.doc.get("default")
        for key in LEGACY_GLOBALS:
            if key in self.doc and isinstance(default, LMap) and key in default:
                message = "is set both at the top level and in default: (keep it in default:)"
                self.error((key,), message)
        if isinstance(default, LMap):
            self.section(("default",), default)
        self.section((), {key: self.doc[key] for key in LEGACY_GLOBALS if key in self.doc})
        for name, raw in (self.doc.get("variables") or {}).items():
            options = raw.get("options") if isinstance(raw, dict) else None
            if options is not None and raw.get("value") not in options:
                listed = ", ".join(str(o) for o in options)
                message = f"'{raw.get('value')}' must be one of its options ({listed})"
                self.error(("variables", name, "value"), message)
        workflow = self.doc.get("workflow")
        if isinstance(workflow, dict):
            self.rules(("workflow", "rules"), workflow.get("rules"))

    def section(self, path: YamlPath, section: Any) -> None:
        """Keywords `default:` and jobs share: durations, caches, artifacts."""
        if "timeout" in section:
            self.duration((*path, "timeout"), section["timeout"], TIMEOUT_LIMIT, "one month")
        artifacts = section.get("artifacts")
        if isinstance(artifacts, dict) and "expire_in" in artifacts:
            try:
                parse_expire_in(str(artifacts["expire_in"]))
            except ValueError as exc:
                self.error((*path, "artifacts", "expire_in"), str(exc))
        if "cache" in section:
            self.caches((*path, "cache"), section["cache"])

    def edge_stages_only(self) -> None:
        if all(str(job.get("stage", "test")) in _EDGE_STAGES for job in self.jobs.values()):
            self.error((), "a pipeline needs at least one job outside the .pre and .post stages")

    # --- one job ------------------------------------------------------------------------------

    def job(self, name: str, job: LMap) -> None:
        path: YamlPath = (name,)
        if "trigger" in job:
            self.trigger(name, job)
        elif "run" in job:
            self.error((name, "run"), "run (CI/CD steps) is not supported")
        elif "script" not in job:
            self.error(path, "a job needs a script")
        self.stage(name, job)
        self.when(path, job)
        self.section(path, job)
        if isinstance(job.get("coverage"), str):
            try:
                re.compile(job["coverage"][1:-1])
            except re.error as exc:
                self.error((name, "coverage"), f"is not a valid regular expression: {exc}")
        if "rules" in job:
            self.rules((name, "rules"), job["rules"])
            for key in ("only", "except"):
                if key in job:
                    self.error((name, key), "cannot be used together with rules")
        self.parallel(name, job.get("parallel"))
        self.needs(name, job)
        self.dependencies(name, job)
        self.environment(name, job.get("environment"))

    def trigger(self, name: str, job: LMap) -> None:
        """A trigger job: only the keywords GitLab's bridge jobs take, and a downstream
        pipeline this machine can create."""
        for key in job:
            if key not in TRIGGER_KEYS:
                self.error((name, key), "is not allowed in a trigger job (it runs no script)")
        if job.get("when") == "delayed":
            message = "a trigger job cannot be delayed (on_success, on_failure, always, manual)"
            self.error((name, "when"), message)
        value = job["trigger"]
        project = value if isinstance(value, str) else value.get("project")
        at: YamlPath = (name, "trigger") if isinstance(value, str) else (name, "trigger", "project")
        if project is None and "include" not in value:
            message = "needs include (a child pipeline) or project (another project's pipeline)"
            self.error((name, "trigger"), message)
        elif (
            isinstance(project, str)
            and "$" not in project  # a $VARIABLE is only known when the job runs
            and project.strip("/").casefold() not in self.projects
        ):
            known = ", ".join(sorted(self.projects.values())) or "none"
            self.error(
                at,
                f"project '{project}' is not available offline: map it to a local git "
                f"repository with --include-project {project}=PATH (known: {known})",
            )

    def stage(self, name: str, job: LMap) -> None:
        stage = job.get("stage", "test")
        if not isinstance(stage, str):
            self.error((name, "stage"), "must be a single stage name")
            return
        if stage not in self.stages:
            listed = ", ".join(self.stages)
            hint = suggest(stage, self.stages)
            self.error((name, "stage"), f"'{stage}' is not a stage{hint}; stages are {listed}")

    def when(self, path: YamlPath, item: Any) -> None:
        """`start_in` goes with `when: delayed` and nothing else (jobs and rules)."""
        if item.get("when") == "delayed" and "start_in" not in item:
            self.error((*path, "start_in"), "is required when 'when' is delayed", (*path, "when"))
        if "start_in" in item:
            if item.get("when") != "delayed":
                self.error((*path, "start_in"), "is only allowed with when: delayed")
            else:
                self.duration((*path, "start_in"), item["start_in"], START_IN_LIMIT, "one week")

    def duration(self, path: YamlPath, value: Any, limit: float, what: str) -> None:
        try:
            check_limit(parse_duration(str(value)), limit, what)
        except ValueError as exc:
            self.error(path, str(exc))

    def rules(self, path: YamlPath, rules: Any) -> None:
        for index, rule in enumerate(rules or ()):
            at = (*path, index)
            if not isinstance(rule, dict):
                self.error(at, "a rule must be a mapping (if:, changes:, exists:, when: ...)")
                continue
            self.when(at, rule)
            changes = rule.get("changes")
            if isinstance(changes, dict) and "regexp" in changes:
                self.error((*at, "changes", "regexp"), "is not supported yet")
            exists = rule.get("exists")
            if isinstance(exists, dict):
                for key in ("project", "regexp"):
                    if key in exists:
                        self.error((*at, "exists", key), "is not supported yet")

    def caches(self, path: YamlPath, value: Any) -> None:
        entries = value if isinstance(value, list) else [value]
        if len(entries) > MAX_CACHES:
            self.error(path, f"a job can use at most {MAX_CACHES} caches, got {len(entries)}")
        for index, entry in enumerate(entries):
            at = (*path, index) if isinstance(value, list) else path
            if not isinstance(entry, dict):
                continue
            policy = entry.get("policy")
            if policy is not None and not _POLICY.fullmatch(str(policy)):
                message = f"must be pull-push, pull, push or a $VARIABLE, got '{policy}'"
                self.error((*at, "policy"), message)
            key = entry.get("key")
            if isinstance(key, dict) and "files_commits" in key:
                self.error((*at, "key", "files_commits"), "is not supported yet")

    def parallel(self, name: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        total = 0
        for index, entry in enumerate(value.get("matrix") or ()):
            for variable, values in entry.items():
                items = values if isinstance(values, list) else [values]
                if not all(isinstance(v, str | int | float) for v in items):
                    at = (name, "parallel", "matrix", index, variable)
                    self.error(at, "values must be strings or numbers")
                    return
            total += math.prod(len(v) if isinstance(v, list) else 1 for v in entry.values())
        if total > MAX_PARALLEL:
            message = f"creates {total} jobs, more than GitLab's {MAX_PARALLEL}"
            self.error((name, "parallel", "matrix"), message)

    # --- relations between jobs ---------------------------------------------------------------

    def stage_index(self, job: LMap) -> int:
        stage = job.get("stage", "test")
        return self.stages.index(stage) if stage in self.stages else -1

    def needs(self, name: str, job: LMap) -> None:
        needs = job.get("needs")
        if not isinstance(needs, list):
            return
        if len(needs) > MAX_NEEDS:
            self.error((name, "needs"), f"a job can need at most {MAX_NEEDS} jobs")
        for index, item in enumerate(needs):
            at: YamlPath = (name, "needs", index)
            if isinstance(item, dict):
                for key in ("pipeline", "project"):
                    if key in item:
                        message = f"needs from another {key} are not supported"
                        self.error((*at, key), message)
                        break
                else:
                    self.need(name, job, at, item["job"], bool(item.get("optional")), item)
            elif isinstance(item, str):
                self.need(name, job, at, item, False, None)

    def need(
        self, name: str, job: LMap, at: YamlPath, target: str, optional: bool, item: Any
    ) -> None:
        other = self.job_named(target)
        if other is None:
            if not optional:
                hint = suggest(target, self.known_names())
                self.error(at, f"'{target}' is not a job of this pipeline{hint}")
            return
        if self.stage_index(other) > self.stage_index(job) >= 0:
            stage = other.get("stage", "test")
            self.error(at, f"'{target}' is in a later stage ({stage})")
        if isinstance(item, dict) and "parallel" in item and target in self.jobs:
            self.need_matrix(at, target, other, item["parallel"])

    def need_matrix(self, at: YamlPath, target: str, other: LMap, selection: Any) -> None:
        """needs:parallel:matrix must pick combinations the needed job's matrix creates."""
        matrix = other.get("parallel")
        if not isinstance(matrix, dict):
            self.error((*at, "parallel"), f"'{target}' has no parallel:matrix")
            return
        made = [c for entry in matrix.get("matrix") or () for c in matrix_combinations(entry)]
        for entry in selection.get("matrix") or ():
            for combo in matrix_combinations(entry):
                if combo not in made:
                    shown = ", ".join(f"{k}={v}" for k, v in combo.items())
                    self.error((*at, "parallel"), f"'{target}' has no matrix job {shown}")

    def dependencies(self, name: str, job: LMap) -> None:
        names = job.get("dependencies")
        if not isinstance(names, list):
            return
        needs = job.get("needs")
        needed = None
        if isinstance(needs, list):
            needed = {n if isinstance(n, str) else n.get("job") for n in needs}
        for index, target in enumerate(names):
            at: YamlPath = (name, "dependencies", index)
            other = self.job_named(target)
            if other is None:
                hint = suggest(target, self.known_names())
                self.error(at, f"'{target}' is not a job of this pipeline{hint}")
            elif needed is not None:
                # needs on a whole parallel job cover each of its instances
                if target not in needed and self.instances.get(target) not in needed:
                    self.error(at, f"'{target}' must also be listed in needs")
            elif self.stage_index(other) > self.stage_index(job) >= 0:
                # GitLab accepts the same stage (YamlProcessor: "current or prior stages");
                # such a job does not wait for it and gets none of its artifacts.
                stage = other.get("stage", "test")
                self.error(at, f"'{target}' is in a later stage ({stage})")

    def environment(self, name: str, value: Any) -> None:
        if not isinstance(value, dict) or "on_stop" not in value:
            return
        target = value["on_stop"]
        stopper = self.jobs.get(target)
        at: YamlPath = (name, "environment", "on_stop")
        if stopper is None:
            self.error(at, f"'{target}' is not a job of this pipeline{suggest(target, self.jobs)}")
            return
        env = stopper.get("environment")
        if not isinstance(env, dict) or env.get("action") != "stop":
            self.error(at, f"'{target}' must have environment:action: stop")

    def needs_cycles(self) -> None:
        graph = {
            name: [self.instances.get(n, n) for n in _need_names(job.get("needs"))]
            for name, job in self.jobs.items()
        }
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        reported: set[frozenset[str]] = set()

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            path.append(name)
            for target in graph.get(name, ()):
                if target not in graph:
                    continue
                if state.get(target) == 1:
                    loop = [*path[path.index(target) :], target]
                    if frozenset(loop) not in reported:
                        reported.add(frozenset(loop))
                        self.error((name, "needs"), f"needs cycle: {' -> '.join(loop)}")
                elif target not in state:
                    visit(target, path)
            path.pop()
            state[name] = 2

        for name in graph:
            if name not in state:
                visit(name, [])


def _instances(name: str, job: LMap) -> list[str]:
    """The names GitLab gives a parallel job's instances (none for a job that is not)."""
    value = job.get("parallel")
    if isinstance(value, int) and not isinstance(value, bool):
        return [count_name(name, index, value) for index in range(1, value + 1)]
    if isinstance(value, dict):
        return [
            matrix_name(name, combo)
            for entry in value.get("matrix") or ()
            if isinstance(entry, dict)
            for combo in matrix_combinations(entry)
        ]
    return []


def _need_names(needs: Any) -> Iterable[str]:
    for item in needs if isinstance(needs, list) else ():
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict) and isinstance(item.get("job"), str):
            yield item["job"]
