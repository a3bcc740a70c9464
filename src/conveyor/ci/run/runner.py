"""Runs one pipeline: schedules its jobs, runs each in a fresh copy of the checkout with the
shell or docker executor, passes artifacts, caches and dotenv variables between jobs, masks
secrets, retries per `retry`, and records everything in the state database.

The pure parts live elsewhere (schedule, rules, variables); this module is the I/O around them.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from conveyor.ci.run.artifacts import ArtifactStore
from conveyor.ci.run.blobs import BlobStore
from conveyor.ci.run.cache import CacheStore, cache_keys
from conveyor.ci.run.executors import (
    DockerExecutor,
    Executor,
    ShellExecutor,
    connect_docker,
)
from conveyor.ci.run.masking import Masker
from conveyor.ci.run.reports import TestReport, parse_dotenv_reports, parse_junit_reports
from conveyor.ci.run.workspace import checkout_files, copy_checkout
from conveyor.ci.select.expr import ExprError, translate_re2
from conveyor.ci.select.outcome import when_applies
from conveyor.ci.select.predefined import environment_variables, job_variables
from conveyor.ci.select.rules import PipelineSelection
from conveyor.ci.select.schedule import Schedule
from conveyor.ci.select.variables import Layer, expand, expand_all, merge_precedence
from conveyor.errors import ConveyorError, JobSetupError
from conveyor.model.pipeline import ImageSpec, JobRun, JobSpec, PipelineSpec
from conveyor.store.db import Store
from conveyor.store.pipelines import PipelineStore

ExecutorName = Literal["shell", "docker"]
DEFAULT_TIMEOUT = 3600.0  # GitLab's default job timeout: 1 hour
AFTER_SCRIPT_TIMEOUT = 300.0  # GitLab: after_script has its own 5 minute limit
DEFAULT_IMAGE = "python:3.11-slim-bookworm"  # the runner's default image (runner config)


class Reporter(Protocol):
    """Where live progress goes (the CLI prints it; tests collect it)."""

    def job_started(self, job: JobRun, job_id: int, executor: str) -> None: ...

    def job_output(self, job: JobRun, text: str) -> None: ...

    def job_finished(self, job: JobRun, result: JobResult) -> None: ...


@dataclass(frozen=True)
class JobResult:
    job_id: int
    status: Literal["success", "failed", "canceled"]
    exit_code: int | None
    failure_reason: str | None
    allowed_failure: bool
    duration: float
    tests: TestReport | None = None
    coverage: float | None = None
    retried: bool = False  # this attempt failed and the job runs again


@dataclass(frozen=True)
class PipelineResult:
    pipeline_id: int
    status: str
    duration: float
    jobs: dict[str, JobResult]
    tests: dict[str, int]


@dataclass
class RunConfig:
    project_dir: Path
    state_dir: Path
    executor: ExecutorName = "docker"
    cli_variables: dict[str, str] = field(default_factory=dict)
    project_variables: dict[str, str] = field(default_factory=dict)
    masked: set[str] = field(default_factory=set)  # values to mask, whatever prints them
    play: tuple[str, ...] = ()
    concurrency: int = 2
    default_image: str = DEFAULT_IMAGE
    default_timeout: float = DEFAULT_TIMEOUT
    protected_ref: bool = False
    keep_workspaces: bool = False
    auto_cancel: bool = True  # cancel older redundant pipelines of the same branch


_RETRY_REASONS = {
    "script_failure",
    "job_execution_timeout",
    "runner_system_failure",
    "unknown_failure",
    "stuck_or_timeout_failure",
    "api_failure",
    "scheduler_failure",
}


def should_retry(spec: JobSpec, attempt: int, reason: str, exit_code: int | None) -> bool:
    """GitLab's retry rule: attempts left, a matching `when`, a matching exit code if given."""
    if attempt > spec.retry.max:
        return False
    whens = set(spec.retry.when)
    if "always" not in whens and reason not in whens:
        return False
    if reason == "stuck_or_timeout_failure" or reason not in _RETRY_REASONS:
        return "always" in whens or reason in whens
    return not spec.retry.exit_codes or exit_code in spec.retry.exit_codes


def coverage_of(pattern: str | None, log: str) -> float | None:
    """GitLab's `coverage: /regex/` (Gitlab::Ci::Trace::Stream#extract_coverage): lines are
    searched from the last; on the last line with a match, the last captured group of the last
    match (the whole match when the regex has no group) holds the number, its first one."""
    if not pattern:
        return None
    body = pattern.strip()
    if body.startswith("/") and body.rfind("/") > 0:
        body = body[1 : body.rfind("/")]
    try:
        translate_re2(body)  # a pattern RE2 (GitLab's engine) refuses gives no coverage
        regex = re.compile(body)  # Python's own engine keeps the capture groups
    except (ExprError, re.error):
        return None
    for line in reversed(log.splitlines()):
        found = regex.findall(line)
        if not found:
            continue
        last = found[-1]
        text = last[-1] if isinstance(last, tuple) else last
        number = re.search(r"\d+(?:\.\d+)?", text)
        if number:
            return float(number.group(0))
    return None


class PipelineRunner:
    def __init__(self, cfg: RunConfig, store: Store, reporter: Reporter) -> None:
        self.cfg = cfg
        self.records = PipelineStore(store)
        self.reporter = reporter
        blobs = BlobStore(cfg.state_dir / "blobs")
        self.artifacts = ArtifactStore(cfg.state_dir / "artifacts", blobs)
        self.caches = CacheStore(cfg.state_dir / "cache", blobs)
        self.masker_values = {v for v in cfg.masked if v}
        self._lock = threading.Lock()
        self._job_ids: dict[str, int] = {}  # JobRun name -> id of its latest attempt
        self._dotenv: dict[str, dict[str, str]] = {}  # JobRun name -> dotenv report vars
        self._files: list[str] | None = None
        self._docker: Any = None  # shared by the pipeline's docker jobs
        self._reaper: list[threading.Thread] = []  # container removals still running
        self._active: dict[str, Executor] = {}  # JobRun name -> executor of its running script
        self._stages: dict[str, str] = {}  # JobRun name -> stage, for artifact passing

    # --- the pipeline ----------------------------------------------------------------------

    def run(
        self,
        spec: PipelineSpec,
        selection: PipelineSelection,
        predefined: Mapping[str, str],
    ) -> PipelineResult:
        t0 = time.monotonic()
        predefined = self._with_pipeline_name(spec, selection, predefined)
        pid = self.records.create_pipeline(
            predefined.get("CI_COMMIT_REF_NAME"),
            predefined.get("CI_COMMIT_SHA"),
            predefined.get("CI_PIPELINE_SOURCE", "push"),
            spec.file,
            self.cfg.executor,
        )
        if self.cfg.auto_cancel and predefined.get("CI_COMMIT_BRANCH"):
            self._cancel_redundant(predefined.get("CI_COMMIT_REF_NAME"), pid)
        jobs = selection.jobs
        groups = {
            j.name: g for j in jobs if (g := self._resource_group(spec, selection, predefined, j))
        }
        sched = Schedule(jobs=jobs, stages=spec.stages, play=self.cfg.play, groups=groups)
        results: dict[str, JobResult] = {}
        attempts: dict[str, int] = {}
        queue: deque[JobRun] = deque()
        running: dict[Future[JobResult], JobRun] = {}
        self._files = checkout_files(self.cfg.project_dir)
        self._stages = {j.name: j.stage for j in jobs}
        canceling = False
        self._expire()
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.concurrency)) as pool:
            while True:
                busy = {groups[j.name] for j in [*running.values(), *queue] if j.name in groups}
                queue.extend(sched.ready(time.monotonic(), busy_groups=busy))
                while queue and len(running) < self.cfg.concurrency:
                    job = queue.popleft()
                    attempts[job.name] = attempts.get(job.name, 0) + 1
                    sched.start(job.name)
                    fut = pool.submit(
                        self._job, pid, spec, selection, predefined, job, attempts[job.name]
                    )
                    running[fut] = job
                if not running:
                    wake = sched.next_wakeup()
                    if wake is None:
                        break
                    time.sleep(max(0.0, min(wake - time.monotonic(), 1.0)))
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED, timeout=0.5)
                if not canceling and self.records.cancel_requested(pid):
                    canceling = self._cancel_now(sched, queue)
                for fut in done:
                    job = running.pop(fut)
                    res = fut.result()
                    results[job.name] = res
                    self.reporter.job_finished(job, res)
                    if res.retried:
                        sched.retry(job.name)
                        queue.append(job)
                        continue
                    sched.finish(job.name, res.status, allowed_failure=res.allowed_failure)
        return self._finish(pid, sched, results, t0)

    # --- one job ---------------------------------------------------------------------------

    def _job(
        self,
        pid: int,
        spec: PipelineSpec,
        selection: PipelineSelection,
        predefined: Mapping[str, str],
        job: JobRun,
        attempt: int,
    ) -> JobResult:
        try:
            return self._job_inner(pid, spec, selection, predefined, job, attempt)
        except Exception as e:  # a bug must fail one job, not hang the pipeline
            self.reporter.job_output(
                job, f"conveyor: internal error: {e}\n{traceback.format_exc()}"
            )
            return JobResult(
                self._job_ids.get(job.name, 0), "failed", None, "unknown_failure", False, 0.0
            )

    def _job_inner(
        self,
        pid: int,
        spec: PipelineSpec,
        selection: PipelineSelection,
        predefined: Mapping[str, str],
        job: JobRun,
        attempt: int,
    ) -> JobResult:
        js = spec.jobs[job.spec]
        prev = self._job_ids.get(job.name)
        job_id = self.records.create_job(
            pid,
            job.name,
            job.stage,
            "running",
            job.when,
            job.allow_failure,
            attempt,
            retry_of=prev if attempt > 1 else None,
        )
        with self._lock:
            self._job_ids[job.name] = job_id
        build = self.cfg.state_dir / "builds" / str(job_id)
        ws, scripts = build / "ws", build / "scripts"
        log_path = self.cfg.state_dir / "logs" / f"{job_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        t0 = time.monotonic()
        use_docker = self._executor_for(js) == "docker"
        self.records.update_job(
            job_id,
            started_at=started,
            log_path=str(log_path),
            executor="docker" if use_docker else "shell",
            interruptible=job.interruptible,
        )
        self.reporter.job_started(job, job_id, "docker" if use_docker else "shell")

        env = self._variables(spec, selection, predefined, job, js, job_id, ws, use_docker)
        if js.environment is not None:
            e = js.environment
            self.records.update_job(
                job_id,
                environment={
                    "name": expand(e.name, env),
                    "url": expand(e.url, env) if e.url else None,
                    "action": e.action,
                    "on_stop": e.on_stop,
                },
            )
        masker = Masker(sorted(self.masker_values))
        log_text: list[str] = []
        with log_path.open("wb") as logf:

            def out(chunk: bytes) -> None:
                clean = masker.feed(chunk)
                if clean:
                    logf.write(clean)
                    logf.flush()
                    text = clean.decode(errors="replace")
                    log_text.append(text)
                    self.reporter.job_output(job, text)

            def say(msg: str) -> None:
                out(f"\x1b[36;1m{msg}\x1b[0;m\n".encode())

            say(
                f"Running with Conveyor on {'docker' if use_docker else 'shell'} executor "
                f"(job {job_id}, attempt {attempt})"
            )
            status, code, reason, tests = self._execute(
                spec, js, job, env, ws, scripts, use_docker, out, say
            )
            tail = masker.close()
            if tail:
                logf.write(tail)
                log_text.append(tail.decode(errors="replace"))
        # GitLab: `allow_failure: {exit_codes}` means allow_failure false, except that a failure
        # with one of those codes turns the job's allow_failure on (Ci::Build#drop).
        allowed = status == "failed" and (
            job.allow_failure or (code is not None and code in job.allow_failure_exit_codes)
        )
        retried = status == "failed" and should_retry(js, attempt, reason or "", code)
        coverage = coverage_of(js.coverage, "".join(log_text))
        self.records.update_job(
            job_id,
            status=status,
            finished_at=time.time(),
            exit_code=code,
            failure_reason=reason,
            coverage=coverage,
            tests=_tests_json(tests),
            allow_failure=bool(allowed or job.allow_failure),
        )
        if not self.cfg.keep_workspaces:
            shutil.rmtree(build, ignore_errors=True)
        return JobResult(
            job_id,
            status,
            code,
            reason,
            bool(allowed),
            time.monotonic() - t0,
            tests,
            coverage,
            retried,
        )

    def _finish(
        self, pid: int, sched: Schedule, results: dict[str, JobResult], t0: float
    ) -> PipelineResult:
        """Wait for cleanups, record jobs that never ran, and the pipeline's outcome."""
        for t in self._reaper:
            t.join()
        for name, st in sched.states.items():  # record jobs that never ran
            if name not in results:
                job_id = self.records.create_job(
                    pid, name, st.job.stage, st.status, st.job.when, st.job.allow_failure
                )
                self._job_ids[name] = job_id
        status = sched.pipeline_status()
        tests = _sum_tests(r.tests for r in results.values())
        covs = [r.coverage for r in results.values() if r.coverage is not None]
        coverage = sum(covs) / len(covs) if covs else None
        self.records.finish_pipeline(pid, status, tests, coverage)
        return PipelineResult(pid, status, time.monotonic() - t0, results, tests)

    def _cancel_now(self, sched: Schedule, queue: deque[JobRun]) -> bool:
        """A newer pipeline of this ref made this one redundant (GitLab's auto-cancel):
        nothing new starts and running jobs are stopped."""
        sched.cancel_pending()
        queue.clear()
        with self._lock:
            for ex in self._active.values():
                ex.cancel()
        return True

    def _cancel_redundant(self, ref: str | None, pid: int) -> None:
        """GitLab's default auto-cancel (`on_new_commit: conservative`): an older running
        pipeline of the same branch is canceled unless one of its started jobs is not
        `interruptible`."""
        for old in self.records.running_for_ref(ref, pid):
            started = [j for j in self.records.jobs(old.id) if j.started_at is not None]
            if all(j.interruptible for j in started):
                self.records.request_cancel(old.id)

    def _expire(self) -> None:
        """Drop artifacts past their `expire_in`, then blobs nothing refers to any more."""
        report = self.artifacts.expire(time.time())
        if report.removed:
            live = self.artifacts.live_digests() | self.caches.live_digests()
            self.artifacts.blobs.gc(live)

    def _with_pipeline_name(
        self, spec: PipelineSpec, selection: PipelineSelection, predefined: Mapping[str, str]
    ) -> Mapping[str, str]:
        """GitLab's CI_PIPELINE_NAME: `workflow:name` expanded with the predefined, top-level,
        workflow:rules, project and pipeline variables."""
        if not spec.workflow.name:
            return predefined
        known = merge_precedence(
            {
                Layer.PREDEFINED: predefined,
                Layer.YAML_GLOBAL: {k: v.value for k, v in spec.variables.items()},
                Layer.WORKFLOW_RULES: selection.workflow_variables,
                Layer.PROJECT: self.cfg.project_variables,
                Layer.PIPELINE: self.cfg.cli_variables,
            }
        )
        raw = {k for k, v in spec.variables.items() if not v.expand}
        name = expand(spec.workflow.name, expand_all(known, raw))
        return {**predefined, "CI_PIPELINE_NAME": name}

    def _resource_group(
        self,
        spec: PipelineSpec,
        selection: PipelineSelection,
        predefined: Mapping[str, str],
        job: JobRun,
    ) -> str | None:
        """The job's `resource_group` with the variables GitLab knows when it creates the
        pipeline expanded (`deploy-$CI_ENVIRONMENT_SLUG`, `cluster-$CI_NODE_INDEX`)."""
        js = spec.jobs[job.spec]
        if not js.resource_group:
            return None
        env = self._variables(spec, selection, predefined, job, js, 0, Path(), False)
        return expand(js.resource_group, env) or None

    @contextlib.contextmanager
    def _resource_lock(self, group: str, say: Callable[[str], None]) -> Iterator[None]:
        """`resource_group` across pipelines: one job of the group at a time on this host
        (the schedule already serialises them inside one pipeline)."""
        locks = self.cfg.state_dir / "resource_groups"
        locks.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", group)
        with (locks / f"{safe}.lock").open("w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"Waiting for resource_group {group}: another pipeline's job holds it")
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _executor_for(self, js: JobSpec) -> ExecutorName:
        """Like GitLab's runner selection by tags: a job tagged `shell` or `docker` goes to that
        executor; others to the one chosen for the run."""
        for tag in js.tags:
            if tag in ("shell", "docker"):
                return tag  # type: ignore[return-value]
        return self.cfg.executor

    def _variables(
        self,
        spec: PipelineSpec,
        selection: PipelineSelection,
        predefined: Mapping[str, str],
        job: JobRun,
        js: JobSpec,
        job_id: int,
        ws: Path,
        use_docker: bool,
    ) -> dict[str, str]:
        pre = dict(predefined)
        pre.update(job_variables(job, job_id, project_url=predefined.get("CI_PROJECT_URL", "")))
        build_dir = f"/builds/{predefined.get('CI_PROJECT_PATH', 'local/project')}"
        pre["CI_PROJECT_DIR"] = build_dir if use_docker else str(ws)
        # `conveyor` deploys from this job keep their state with the project, not in the
        # job's throw-away workspace, so later jobs (stop a review app) and the user see it.
        pre["CONVEYOR_STATE_HOME"] = str(self.cfg.project_dir / ".conveyor")
        pre["CI_BUILDS_DIR"] = "/builds" if use_docker else str(ws.parent)
        glob = {k: v.value for k, v in spec.variables.items()}
        # GitLab merges workflow:rules:variables into the top-level ones: `inherit` filters both.
        workflow = dict(selection.workflow_variables)
        if js.inherit_variables is False:
            glob, workflow = {}, {}
        elif isinstance(js.inherit_variables, tuple):
            glob = {k: v for k, v in glob.items() if k in js.inherit_variables}
            workflow = {k: v for k, v in workflow.items() if k in js.inherit_variables}
        raw = {k for k, v in spec.variables.items() if not v.expand}
        raw |= {k for k, v in js.variables.items() if not v.expand}
        dotenv: dict[str, str] = {}
        for dep in self._artifact_sources(spec, job):
            dotenv.update(self._dotenv.get(dep, {}))
        layers: dict[Layer, Mapping[str, str]] = {
            Layer.PREDEFINED: pre,
            Layer.YAML_GLOBAL: glob,
            Layer.WORKFLOW_RULES: workflow,
            Layer.YAML_JOB: {k: v.value for k, v in js.variables.items()},
            Layer.RULES: job.variables,
            Layer.DOTENV: dotenv,
            Layer.PROJECT: self.cfg.project_variables,
            Layer.PIPELINE: self.cfg.cli_variables,
        }
        expanded = expand_all(merge_precedence(layers), raw)
        if js.environment is None:
            return expanded
        # CI_ENVIRONMENT_* are predefined variables made from the expanded environment name;
        # other variables may refer to them, so merge and expand once more.
        pre.update(environment_variables(js.environment, expanded))
        return expand_all(merge_precedence(layers), raw)

    def _script(
        self,
        executor: Executor,
        js: JobSpec,
        env: dict[str, str],
        timeout: float,
        out: Callable[[bytes], None],
        say: Callable[[str], None],
    ) -> tuple[int | None, str | None]:
        """before_script + script in one shell: (exit code, GitLab failure reason or None)."""
        try:
            executor.open()
            say("Executing the script")
            run = executor.run([*js.before_script, *js.script], env, timeout, out)
        except JobSetupError as e:
            say(f"ERROR: Preparation failed: {e}")
            return None, "runner_system_failure"
        if run.timed_out:
            say(f"ERROR: Job failed: execution took longer than {timeout:g}s")
            return run.exit_code, "job_execution_timeout"
        return run.exit_code, None if run.exit_code == 0 else "script_failure"

    def _artifact_sources(self, spec: PipelineSpec, job: JobRun) -> list[str]:
        """Jobs whose artifacts (and dotenv variables) this job receives, per GitLab:
        `dependencies` if given, else `needs` with artifacts, else every earlier stage."""
        if job.dependencies is not None:
            return list(job.dependencies)
        if job.needs is not None:
            return [n.job for n in job.needs if n.artifacts]
        order = {s: i for i, s in enumerate(spec.stages)}
        mine = order.get(job.stage, 0)
        return [name for name, stage in self._stages.items() if order.get(stage, 0) < mine]

    def _execute(
        self,
        spec: PipelineSpec,
        js: JobSpec,
        job: JobRun,
        env: dict[str, str],
        ws: Path,
        scripts: Path,
        use_docker: bool,
        out: Callable[[bytes], None],
        say: Callable[[str], None],
    ) -> tuple[Literal["success", "failed", "canceled"], int | None, str | None, TestReport | None]:
        say("Preparing the workspace")
        if env.get("GIT_STRATEGY") == "none":
            # GitLab does not touch the repository: a fresh runner's build dir stays empty
            # (artifacts and caches are still restored below).
            ws.mkdir(parents=True, exist_ok=True)
            say("  GIT_STRATEGY none: no checkout")
        else:
            n = copy_checkout(self.cfg.project_dir, ws, self._files)
            say(f"  {n} files from {self.cfg.project_dir}")
        for dep in self._artifact_sources(spec, job):
            jid = self._job_ids.get(dep)
            manifest = self.artifacts.get(str(jid)) if jid is not None else None
            if manifest is not None:
                rep = self.artifacts.restore(manifest, ws)
                say(f"  artifacts of {dep}: {rep.files} files")
        for i, c in enumerate(js.cache):
            try:
                keys = cache_keys(
                    c.model_copy(update={"key": expand(c.key, env)}),
                    index=i,
                    protected_ref=self.cfg.protected_ref,
                    workspace=ws,
                )
                res = self.caches.restore(c, keys, ws)
                say(f"  cache {keys.key}: {res.outcome}")
            except ConveyorError as e:
                say(f"  cache skipped: {e}")
        executor = self._make_executor(js, env, ws, scripts, use_docker)
        with self._lock:
            self._active[job.name] = executor
        timeout = js.timeout or self.cfg.default_timeout
        group = js.resource_group and expand(js.resource_group, env)
        lock = self._resource_lock(group, say) if group else contextlib.nullcontext()
        with lock:
            try:
                code, reason = self._script(executor, js, env, timeout, out, say)
                status: Literal["success", "failed", "canceled"] = (
                    "success" if reason is None else "failed"
                )
                if getattr(executor, "canceled", False):
                    status, reason = "canceled", "canceled"
                    say("Job canceled: a newer pipeline for this ref made it redundant")
                if js.after_script:
                    say("Running after_script")
                    after_env = {**env, "CI_JOB_STATUS": status}
                    try:
                        executor.run(list(js.after_script), after_env, AFTER_SCRIPT_TIMEOUT, out)
                    except JobSetupError as e:
                        say(f"WARNING: after_script could not run: {e}")
            finally:
                executor.close(out)  # services go even when something above raised
                with self._lock:
                    self._active.pop(job.name, None)
        tests = self._finish_files(js, job, env, ws, status == "success", say)
        if status == "success":
            say("Job succeeded")
        elif status == "failed":
            say(f"ERROR: Job failed: exit code {code}" if code is not None else "ERROR: Job failed")
        return status, code, reason, tests

    def _make_executor(
        self,
        js: JobSpec,
        env: dict[str, str],
        ws: Path,
        scripts: Path,
        use_docker: bool,
    ) -> Executor:
        if not use_docker:
            return ShellExecutor(workspace=ws, scripts=scripts)
        image = js.image or ImageSpec(name=self.cfg.default_image)
        image = image.model_copy(update={"name": expand(image.name, env)})
        services = tuple(s.model_copy(update={"name": expand(s.name, env)}) for s in js.services)
        return DockerExecutor(
            image=image,
            workspace=ws,
            scripts=scripts,
            project_path=env.get("CI_PROJECT_PATH", "local/project"),
            services=services,
            service_env=env,
            client_factory=self._docker_client,
            reaper=self._reaper,
        )

    def _docker_client(self) -> Any:
        """One Docker client for the pipeline: a new one per job costs a connection and a ping."""
        with self._lock:
            if self._docker is None:
                self._docker = connect_docker()
            return self._docker

    def _finish_files(
        self,
        js: JobSpec,
        job: JobRun,
        env: dict[str, str],
        ws: Path,
        succeeded: bool,
        say: Callable[[str], None],
    ) -> TestReport | None:
        job_id = self._job_ids[job.name]
        tests: TestReport | None = None
        art = js.artifacts
        if art is not None:
            if art.reports_junit:
                try:
                    tests = parse_junit_reports(ws, art.reports_junit)
                    say(
                        f"JUnit: {tests.total} tests, {tests.failed} failed, "
                        f"{tests.errors} errors, {tests.skipped} skipped"
                    )
                except ConveyorError as e:
                    say(f"WARNING: JUnit report: {e}")
            if art.reports_dotenv:
                try:
                    self._dotenv[job.name] = parse_dotenv_reports(ws, art.reports_dotenv)
                except ConveyorError as e:
                    say(f"WARNING: dotenv report: {e}")
            if when_applies(art.when, succeeded) and (
                art.paths or art.untracked or art.reports_junit
            ):
                spec = art.model_copy(
                    update={
                        "paths": tuple(
                            expand(p, env)
                            for p in (*art.paths, *art.reports_junit, *art.reports_dotenv)
                        ),
                    }
                )
                try:
                    res = self.artifacts.collect(str(job_id), ws, spec)
                    say(f"Uploading artifacts: {res.manifest.files} files")
                    for w in res.warnings:
                        say(f"WARNING: {w}")
                    self.records.update_job(
                        job_id, artifacts={"files": res.manifest.files, "bytes": res.manifest.size}
                    )
                except ConveyorError as e:
                    say(f"WARNING: artifacts: {e}")
        for i, c in enumerate(js.cache):
            try:
                keys = cache_keys(
                    c.model_copy(update={"key": expand(c.key, env)}),
                    index=i,
                    protected_ref=self.cfg.protected_ref,
                    workspace=ws,
                )
                res_c = self.caches.save(
                    c, keys, ws, job_succeeded=succeeded, job_id=str(job_id), now=time.time()
                )
                if res_c.outcome != "skipped":
                    say(f"Saving cache {keys.key}: {res_c.outcome}")
            except ConveyorError as e:
                say(f"WARNING: cache not saved: {e}")
        return tests


def _tests_json(t: TestReport | None) -> dict[str, Any]:
    if t is None:
        return {}
    return {
        "total": t.total,
        "passed": t.passed,
        "failed": t.failed,
        "errors": t.errors,
        "skipped": t.skipped,
    }


def _sum_tests(reports: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for t in reports:
        for k, v in _tests_json(t).items():
            total[k] = total.get(k, 0) + int(v)
    return total
